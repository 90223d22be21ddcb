"""The training loop's state, which is also what a checkpoint stores of the loop.

A checkpoint is read back with `torch.load(weights_only=True)`, so `to_dict` holds only numbers, strings,
lists, dicts and tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch


@dataclass
class LogWindow:
    """The steps since the last logged row; checkpointed, so a resumed run logs the rows an uninterrupted one
    would."""

    loss_sum: float = 0.0  # this process's summed loss (its micro-batches' sums, read back from the device)
    targets: int = 0  # this process's target count
    tokens: int = 0  # every process's tokens
    seconds: float = 0.0  # time inside the steps, for throughput


@dataclass
class TrainState:
    """Where a run is: its budget counters, its rows so far, and the best evaluation."""

    step: int = 0
    tokens: int = 0
    seconds: float = 0.0  # wall-clock time trained, carried over a resume (for a budget in minutes)
    history: list[dict[str, float]] = field(default_factory=list)  # one row per logged step
    evals: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation
    best: dict[str, float] | None = None  # the best evaluation row so far
    best_weights: dict[str, torch.Tensor] | None = None  # its weights, on the CPU (keep_best only)
    bad_evals: int = 0  # evaluations since the best one (early stopping)
    window: LogWindow = field(default_factory=LogWindow)

    def to_dict(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: that would deep-copy the best weights.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "window"}
        return {**data, "window": asdict(self.window)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(**{**data, "window": LogWindow(**data["window"])})
