"""finetune / freeze-finetune / finetune-scratch: a classifier on a base model (this project's pretrained
encoder, the same architecture from random weights, or any Hugging Face model with its own tokenizer);
which weights train, at which learning rates, is a param (see lmpipe.finetune.strategies); strategy linear_probe
trains nothing by gradient but fits a logistic regression on frozen features (lmpipe.finetune.probe).

Usage: python -m stages.finetune finetune | freeze-finetune | finetune-scratch
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lmpipe.config.loader import to_dict
from lmpipe.config.schema import VARIANTS, FinetuneParams
from lmpipe.engine import checkpoint, distributed, reports
from lmpipe.engine.loop import train
from lmpipe.engine.precision import resolve_precision
from lmpipe.finetune.probe import HEAD_LAYOUTS, probe_metrics, run_linear_probe, write_probe_reports
from lmpipe.finetune.saving import save_finetuned
from lmpipe.finetune.strategies import (
    GradualUnfreezing,
    apply_strategy,
    base_source,
    check_stage_setup,
    layer_lr_scale,
    make_objective,
    unfreeze_period_steps,
)
from lmpipe.io import atomic_outputs, read_json
from lmpipe.models.build import count_parameters
from lmpipe.models.load import effective_max_length, load_classifier, load_error
from lmpipe.stage import checkpoint_dir, seed_everything, start
from lmpipe.text.encoding import encode_split
from lmpipe.tracking import Tracker

PRETRAINED, RAW = "models/pretrained", "data/raw"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=VARIANTS)
    stage = parser.parse_args().stage
    section = stage.replace("-", "_")
    params = start(stage)
    info = distributed.setup()
    cfg = params.finetune_section(stage)
    check_stage_setup(cfg, section, info.world)
    lr = params.lr * cfg.lr_scale
    seed = params.seed if cfg.seed is None else cfg.seed
    seed_everything(seed)  # the head (scratch: every weight) is initialised from it, before train() reseeds
    source, scratch = base_source(cfg, PRETRAINED)
    requested_length = cfg.max_length or params.tokenizer.max_length
    logged = {"seed": seed, "lr": params.lr, "max_length": requested_length, section: to_dict(cfg)}
    with Tracker(stage, logged, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled and info.is_main) as tracker:
        label_names = read_json(f"{RAW}/labels.json")
        # The base model's own tokenizer encodes the data (trust_remote_code stays off).
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=cfg.base_revision)
            model = load_classifier(source, label_names, classifier_dropout=cfg.classifier_dropout, scratch=scratch,
                                    revision=cfg.base_revision)
        except OSError as error:  # not found, or (offline) not cached
            raise load_error(error, source, f"{section}.base_model") from None
        max_length = effective_max_length(requested_length, tokenizer, model)
        train_ids, train_labels = encode_split(tokenizer, f"{RAW}/train.parquet", max_length, cfg.truncation,
                                                 cfg.head_fraction)
        val_ids, val_labels = encode_split(tokenizer, f"{RAW}/validation.parquet", max_length, cfg.truncation,
                                             cfg.head_fraction)
        if cfg.strategy == "linear_probe":  # one process (check_stage_setup), no training loop
            _fit_probe(stage, seed, cfg, model, tokenizer, label_names, max_length, (train_ids, train_labels),
                       (val_ids, val_labels), tracker)
            return
        model = apply_strategy(model, cfg, section)
        trainable, total = count_parameters(model)
        on_step = None
        if cfg.strategy == "gradual_unfreezing":
            on_step = GradualUnfreezing(model, unfreeze_period_steps(cfg, len(train_ids)))
        objective = make_objective(model, train_ids, train_labels, val_ids, val_labels, num_labels=len(label_names),
                                   pad_token_id=tokenizer.pad_token_id, cfg=cfg, section=section)
        inputs = [path for path in (source, RAW) if Path(path).exists()]  # a hub id is named by `logged`
        fingerprint = checkpoint.fingerprint(stage, logged, inputs)
        result = train(objective, cfg.train, lr=lr, seed=seed, dist_info=info, tracker=tracker,
                       checkpoint_dir=checkpoint_dir(stage, fingerprint), keep_best=True, desc=stage,
                       lr_scale=layer_lr_scale(model, cfg.layer_lr_decay), on_step=on_step,
                       lr_key=f"lr (this stage trains at lr x {section}.lr_scale)")
        if on_step is not None:  # what actually trained: the budget may end before every layer is released
            trainable = on_step.released_parameters()
        if info.is_main:
            preprocessing = {"max_length": max_length, "truncation": cfg.truncation,
                             "head_fraction": cfg.head_fraction, "base_model": cfg.base_model}
            best = {f"validation_{k}": v for k, v in result.best.items() if k not in ("step", "epoch")}
            metrics = {**best, "best_step": result.best["step"], "best_epoch": result.best["epoch"],
                       "trainable_parameters": trainable, "trainable_fraction": trainable / total,
                       "total_parameters": total, "max_length": max_length, "lr": lr, **result.summary}
            with atomic_outputs():  # the classifier and its reports are replaced together, or not at all
                save_finetuned(model, tokenizer, f"models/{stage}", preprocessing, label_names,
                               save_adapter=cfg.lora.save_adapter)
                reports.write_training_reports(f"reports/{stage}", metrics, result, tracker)
    distributed.teardown()


def _fit_probe(stage: str, seed: int, cfg: FinetuneParams, model: PreTrainedModel,
               tokenizer: PreTrainedTokenizerBase, label_names: list[str], max_length: int,
               train_split: tuple[list[np.ndarray], np.ndarray], val_split: tuple[list[np.ndarray], np.ndarray],
               tracker: Tracker) -> None:
    """strategy linear_probe: features once, a cross-validated logistic regression, saved as the final layer."""
    run = run_linear_probe(model, *train_split, *val_split, num_labels=len(label_names),
                           pad_token_id=tokenizer.pad_token_id, cfg=cfg, seed=seed, section=stage.replace("-", "_"))
    final = model.get_submodule(HEAD_LAYOUTS[model.config.model_type].final)
    dtype = resolve_precision(cfg.train.precision, next(model.parameters()).device)
    metrics = probe_metrics(run, cfg, trainable=sum(p.numel() for p in final.parameters()),
                            total=count_parameters(model)[1], max_length=max_length,
                            precision=str(dtype or torch.float32).removeprefix("torch."))
    preprocessing = {"max_length": max_length, "truncation": cfg.truncation, "head_fraction": cfg.head_fraction,
                     "base_model": cfg.base_model}
    with atomic_outputs():  # the classifier and its reports are replaced together, or not at all
        save_finetuned(model, tokenizer, f"models/{stage}", preprocessing, label_names, save_adapter=False,
                       tables={"probe_cv.csv": run.probe.cv})
        write_probe_reports(f"reports/{stage}", metrics, run, tracker)


if __name__ == "__main__":
    main()
