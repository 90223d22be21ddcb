"""finetune / freeze-finetune: a classifier on the pretrained encoder; which weights train is a param.

Usage: python -m stages.finetune finetune | freeze-finetune
"""

from __future__ import annotations

import argparse

from lmpipe import runtime
from lmpipe.engine import checkpoint, distributed
from lmpipe.engine.loop import train
from lmpipe.engine.objectives import Classification
from lmpipe.finetuning import apply_strategy
from lmpipe.io import read_json
from lmpipe.modeling import count_parameters, load_classifier, save_model
from lmpipe.params import to_dict
from lmpipe.tokenization import load_tokenizer, read_labelled
from lmpipe.tracking import Tracker

PRETRAINED, RAW, TOKENIZED = "models/pretrained", "data/raw", "data/tokenized"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=["finetune", "freeze-finetune"])
    stage = parser.parse_args().stage
    params = runtime.start(stage)
    info = distributed.setup()
    cfg = params.finetune_section(stage)
    lr = params.lr * cfg.lr_scale
    logged = {"seed": params.seed, "lr": params.lr, stage.replace("-", "_"): to_dict(cfg)}
    with Tracker(stage, logged, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled and info.is_main) as tracker:
        label_names = read_json(f"{RAW}/labels.json")
        tokenizer = load_tokenizer(PRETRAINED)
        model = load_classifier(PRETRAINED, label_names, classifier_dropout=cfg.classifier_dropout,
                                scratch=cfg.base_model == "scratch")
        apply_strategy(model, cfg)
        trainable, total = count_parameters(model)
        train_ids, train_labels = read_labelled(f"{TOKENIZED}/train.parquet")
        val_ids, val_labels = read_labelled(f"{TOKENIZED}/validation.parquet")
        objective = Classification(model, train_ids, train_labels, val_ids, val_labels, num_labels=len(label_names),
                                   pad_token_id=tokenizer.pad_token_id, select_metric=cfg.metric)
        fingerprint = checkpoint.fingerprint(stage, logged, [PRETRAINED, TOKENIZED])
        result = train(objective, cfg.train, lr=lr, seed=params.seed, dist_info=info, tracker=tracker,
                       checkpoint_dir=runtime.checkpoint_dir(stage, fingerprint), keep_best=True, desc=stage)
        if info.is_main:
            save_model(model, tokenizer, f"models/{stage}")
            best = {f"validation_{k}": v for k, v in result.best.items() if k not in ("step", "epoch")}
            metrics = {**best, "best_step": result.best["step"], "best_epoch": result.best["epoch"],
                       "trainable_parameters": trainable, "trainable_fraction": trainable / total,
                       "lr": lr, **result.summary}
            runtime.write_training_reports(f"reports/{stage}", metrics, result, tracker)
    distributed.teardown()


if __name__ == "__main__":
    main()
