"""The linear probe's pooling, measured: one feature extraction, every pooling, the stage's own probe fit.

    python -m bench.probe_pooling                         # models/pretrained, data/raw, params.yaml's freeze_finetune
    python -m bench.probe_pooling --model DIR --out bench/PROBE_POOLING.json

The freeze-finetune stage fits its probe on what a stock Hugging Face head computes (`mean` or `first`, each pooled
vector through the head's LayerNorm), so `mean_max` is not a param: no stock head takes a maximum over tokens.
This bench says what it would buy. One forward pass per example over the frozen encoder (train and validation
splits as the stage encodes them: params.yaml's freeze_finetune max_length, truncation, head_fraction) keeps every
layer's hidden states; each pooling below is then probed by `fit_probe` with the stage's C grid and folds, scored
on validation:

- first, mean, max: of the last layer's states over the real tokens; mean_max: mean and max concatenated;
- mean of layer k: the mean over tokens of an earlier layer's output (the last layer is `mean`).

Every pooled vector goes through a LayerNorm without scale or shift, as in the stage, so the `mean` and `first` rows
reproduce what the stage would score. Prints one line per pooling; writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/pretrained", help="the pretrained encoder's directory")
    parser.add_argument("--data", default="data/raw", help="the raw splits (train.parquet, validation.parquet)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="bench/PROBE_POOLING.json")
    args = parser.parse_args(argv)

    from transformers import AutoModel, AutoTokenizer

    from lmpipe.config.schema import load_params
    from lmpipe.engine.accel.cpu_kernels import keep_freed_memory
    from lmpipe.finetune.probe import evaluate_probe, fit_probe
    from lmpipe.io import read_json
    from lmpipe.text.encoding import encode_split

    params = load_params(args.params)
    cfg = params.freeze_finetune
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    encoder = AutoModel.from_pretrained(args.model).eval()
    keep_freed_memory()
    max_length = cfg.max_length or params.tokenizer.max_length
    splits = {name: encode_split(tokenizer, f"{args.data}/{name}.parquet", max_length, cfg.truncation,
                                 cfg.head_fraction) for name in ("train", "validation")}
    started = time.perf_counter()
    features = {name: pooled_features(encoder, ids, tokenizer.pad_token_id, cfg.probe.batch_size,
                                      cfg.train.precision) for name, (ids, _) in splits.items()}
    extract_seconds = time.perf_counter() - started
    print(json.dumps({"extract_seconds": round(extract_seconds, 1),
                      "examples": {k: len(v[0]) for k, v in splits.items()}}), flush=True)

    num_labels = len(read_json(f"{args.data}/labels.json"))
    rows = []
    for pooling in features["train"]:
        started = time.perf_counter()
        probe = fit_probe(features["train"][pooling], splits["train"][1], num_labels, cfg.probe, metric=cfg.metric,
                          class_weights=cfg.class_weights, seed=params.seed)
        scores = evaluate_probe(probe, features["validation"][pooling], splits["validation"][1], num_labels)
        rows.append({"pooling": pooling, "features": int(features["train"][pooling].shape[1]),
                     "validation_accuracy": scores["accuracy"], "validation_loss": scores["loss"], "c": probe.c,
                     "iterations": probe.iterations, "converged": probe.converged,
                     "fit_seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(rows[-1]), flush=True)
    result = {"model": args.model, "max_length": max_length, "truncation": cfg.truncation,
              "extract_seconds": round(extract_seconds, 1), "threads": torch.get_num_threads(), "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


@torch.no_grad()
def pooled_features(encoder: torch.nn.Module, ids: list[np.ndarray], pad_token_id: int, batch_size: int,
                    precision: str = "fp32") -> dict[str, np.ndarray]:
    """Every pooling of every example (rows in the order of `ids`), in one pass batched by length, on the CPU
    under the engine's autocast for `precision` (as the stage extracts its features)."""
    from lmpipe.engine.distributed import layer_stack
    from lmpipe.engine.objectives.base import pad_batch
    from lmpipe.engine.precision import resolve_precision

    layers = layer_stack(encoder)
    captured: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda module, args, output: captured.append(
        output[0] if isinstance(output, tuple) else output)) for layer in layers[:-1]]
    eps = getattr(encoder.config, "norm_eps", 1e-5)
    dtype = resolve_precision(precision, torch.device("cpu"))
    order = np.argsort([len(x) for x in ids], kind="stable")
    out: dict[str, np.ndarray] = {}
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = pad_batch([ids[i] for i in chunk], pad_token_id)
            captured.clear()
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                final = encoder(**batch).last_hidden_state  # after the final norm, as the classifier pools it
            mask = batch["attention_mask"].unsqueeze(-1)
            pooled = {"first": final[:, 0].float(), "mean": _masked_mean(final, mask),
                      "max": final.float().masked_fill(mask == 0, float("-inf")).amax(1)}
            pooled.update({f"mean of layer {k}": _masked_mean(hidden, mask)
                           for k, hidden in enumerate(captured, start=1)})
            normed = {name: F.layer_norm(v, v.shape[-1:], eps=eps) for name, v in pooled.items()}
            normed["mean_max"] = torch.cat([normed["mean"], normed["max"]], dim=-1)
            for name, value in normed.items():
                if name not in out:
                    out[name] = np.zeros((len(ids), value.shape[-1]), dtype=np.float32)
                out[name][chunk] = value.numpy()
    finally:
        for hook in hooks:
            hook.remove()
    return out


def _masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over the real tokens (mask: batch x tokens x 1)."""
    return (states.float() * mask).sum(1) / mask.sum(1)


if __name__ == "__main__":
    main()
