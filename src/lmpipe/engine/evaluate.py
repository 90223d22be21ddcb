"""Held-out evaluation: one pass over an objective's evaluation batches, summed and reduced over processes.

The training loop evaluates with it, and so does the causal-LM evaluate stage.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmpipe.engine.distributed import Dist, all_reduce_sum
from lmpipe.engine.objectives.base import Objective
from lmpipe.engine.precision import autocast

Batch = dict[str, torch.Tensor]


@torch.no_grad()
def evaluate(objective: Objective, batch_size: int, max_batches: int | None = None,
             autocast_dtype: torch.dtype | None = None, *, dist_info: Dist | None = None,
             forward: Callable[[Batch], Batch] | None = None) -> dict[str, float]:
    """The objective's metrics over this process's shard of its evaluation set (at most `max_batches` batches
    of `batch_size`), its outputs summed in float64 and then over every process.

    forward(batch): one batch's outputs on the device; the training loop passes its wrapped (DDP, compiled)
    module. By default the objective itself, on its parameters' device. The objective runs in eval mode and
    returns to training mode afterwards if it was training.
    """
    dist_info = Dist() if dist_info is None else dist_info
    device = next(objective.parameters()).device
    if forward is None:
        def forward(batch: Batch) -> Batch:
            return objective({k: v.to(device) for k, v in batch.items()})

    was_training = objective.training
    objective.eval()
    sums: dict[str, torch.Tensor] = {}
    with autocast(device.type, autocast_dtype):
        for i, batch in enumerate(objective.eval_batches(batch_size, dist_info.rank, dist_info.world)):
            if max_batches is not None and i >= max_batches:
                break
            for key, value in forward(batch).items():
                sums[key] = sums.get(key, 0) + value.detach().double()
    objective.train(was_training)
    totals = {key: all_reduce_sum(value, dist_info).cpu() for key, value in sums.items()}
    return objective.metrics({k: v.item() if v.numel() == 1 else v.numpy() for k, v in totals.items()})
