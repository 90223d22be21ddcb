"""Held-out evaluation: one pass over an objective's evaluation batches, summed and reduced over processes."""

from __future__ import annotations

import contextlib

import torch

from lmpipe.engine.objectives.causal_lm import CausalLM


@torch.no_grad()
def evaluate(objective: CausalLM, batch_size: int, max_batches: int | None = None,
             autocast_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Held-out metrics of `objective` (summed over fixed batches, one process): loss, perplexity, per byte."""
    objective.eval()
    device = next(objective.model.parameters()).device
    sums: dict[str, float] = {}
    context = (torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
    with context:
        for i, batch in enumerate(objective.eval_batches(batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            out = objective({k: v.to(device) for k, v in batch.items()})
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value.double())
    return objective.metrics(sums)
