"""baseline: TF-IDF (word 1-2-grams) + logistic regression on the same splits, as the reference to beat."""

from __future__ import annotations

import pandas as pd

from lmpipe.evaluation.baseline import predict_proba, tfidf_logistic_regression
from lmpipe.evaluation.metrics import classification_report
from lmpipe.io import read_json, write_json
from lmpipe.stage import start
from lmpipe.tracking import Tracker

RAW = "data/raw"


def main() -> None:
    params = start("baseline")
    with Tracker("baseline", {"seed": params.seed}, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled) as tracker:
        label_names = read_json(f"{RAW}/labels.json")
        model = tfidf_logistic_regression(pd.read_parquet(f"{RAW}/train.parquet"), seed=params.seed)
        metrics = {}
        for split in ("validation", "test"):
            frame = pd.read_parquet(f"{RAW}/{split}.parquet")
            predictions = predict_proba(model, frame["text"].tolist(), len(label_names)).argmax(axis=1)
            report = classification_report(frame["label"].to_numpy(), predictions, label_names)
            metrics[split] = {k: v for k, v in report.items() if k != "confusion_matrix"}
        write_json("reports/baseline/metrics.json", metrics)
        tracker.log_metrics({f"{split}/{k}": v for split, m in metrics.items() for k, v in m.items()
                             if isinstance(v, float)})


if __name__ == "__main__":
    main()
