"""evaluate: every fine-tuned variant on the test split, side by side: metrics, confusion matrices."""

from __future__ import annotations

import pandas as pd

from lmpipe import runtime
from lmpipe.inference import predict_proba
from lmpipe.io import read_json, write_json, write_rows_csv
from lmpipe.metrics import classification_report
from lmpipe.params import to_dict
from lmpipe.tokenization import load_tokenizer, read_labelled
from lmpipe.tracking import Tracker
from transformers import AutoModelForSequenceClassification

VARIANTS = ("finetune", "freeze-finetune")
REPORTS = "reports/evaluate"


def main() -> None:
    params = runtime.start("evaluate")
    cfg = params.evaluate
    with Tracker("evaluate", {"evaluate": to_dict(cfg)}, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled) as tracker:
        label_names = read_json("data/raw/labels.json")
        ids, labels = read_labelled(f"data/tokenized/{cfg.split}.parquet")
        results = {}
        for variant in VARIANTS:
            path = f"models/{variant}"
            model = AutoModelForSequenceClassification.from_pretrained(path)
            tokenizer = load_tokenizer(path)
            probabilities = predict_proba(model, ids, tokenizer.pad_token_id, cfg.batch_size)
            predictions = probabilities.argmax(axis=1)
            report = classification_report(labels, predictions, label_names)
            results[variant] = report
            confusion_rows = pd.DataFrame({"actual": [label_names[i] for i in labels],
                                           "predicted": [label_names[i] for i in predictions]})
            write_rows_csv(f"{REPORTS}/confusion_{variant}.csv", confusion_rows.to_dict("records"))
            tracker.log_metrics({f"{variant}/{k}": v for k, v in report.items() if isinstance(v, float)})
        metrics = {variant: {k: v for k, v in r.items() if k != "confusion_matrix"} for variant, r in results.items()}
        if cfg.split == "test":  # the linear reference, scored by the baseline stage on the same split
            metrics["tfidf-baseline"] = read_json("reports/baseline/metrics.json")["test"]
        write_json(f"{REPORTS}/metrics.json", metrics)
        write_json(f"{REPORTS}/confusion_matrices.json",
                   {"labels": label_names, **{v: r["confusion_matrix"] for v, r in results.items()}})
        for variant, r in metrics.items():
            print(f"{variant:>16}: accuracy={r['accuracy']:.4f} f1_macro={r['f1_macro']:.4f}")


if __name__ == "__main__":
    main()
