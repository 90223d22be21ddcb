"""The linear baseline every run is compared with: TF-IDF word n-grams and logistic regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def tfidf_logistic_regression(train: pd.DataFrame, ngram_max: int = 2, c: float = 1.0, seed: int = 0):
    """Fit on train texts; returns the fitted sklearn pipeline (predict_proba on raw texts)."""
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True, min_df=1),
        LogisticRegression(C=c, max_iter=2000, random_state=seed),
    )
    model.fit(train["text"].tolist(), train["label"].to_numpy())
    return model


def predict_proba(model, texts: list[str], num_labels: int) -> np.ndarray:
    """Probabilities for every label id, also for labels absent from the training split."""
    out = np.zeros((len(texts), num_labels), dtype=np.float64)
    out[:, model.classes_] = model.predict_proba(texts)
    return out
