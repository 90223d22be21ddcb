"""Objectives: how a batch becomes a loss, and which metrics an evaluation keeps.

An objective is an `nn.Module` around a Hugging Face model, so DDP and `torch.compile` wrap the whole
loss computation. Its `forward(batch)` returns *sums* (loss summed over target tokens, target count,
correct predictions, ...): sums add across micro-batches, evaluation batches and processes, so the engine
normalises a step's loss by its true target count and evaluations never keep per-example outputs.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

IGNORE = -100


POSITION_BUCKET = 64


class Objective(nn.Module):
    """What the engine needs from an objective. Subclasses hold the model and the data."""

    name: str = "objective"
    #: the evaluation metric to select on, and whether larger is better
    select_metric: str = "loss"
    select_mode: str = "min"
    #: batch tensors whose sizes change from batch to batch, and in which dimensions: marked dynamic for
    #: torch.compile, which otherwise compiles a static graph, then recompiles when the first new size arrives
    dynamic_dims: dict[str, tuple[int, ...]] = {}

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def train_size(self) -> int:
        raise NotImplementedError

    @property
    def eval_size(self) -> int:
        raise NotImplementedError

    def train_lengths(self) -> np.ndarray | None:
        """Token count of each training example when they vary (the engine then batches similar lengths
        together); None for fixed-length examples."""
        return None

    def train_batch(self, indices: np.ndarray, step: int, seed: int) -> dict[str, torch.Tensor]:
        """The training examples `indices` as tensors; randomness (masking) depends only on (seed, step, indices)."""
        raise NotImplementedError

    def eval_batches(self, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        """This process's shard of the evaluation set, in fixed batches."""
        raise NotImplementedError

    @staticmethod
    def count_targets(batch: dict[str, torch.Tensor]) -> int:
        """How many targets the batch's loss sums over (known before the forward pass)."""
        raise NotImplementedError

    @staticmethod
    def count_tokens(batch: dict[str, torch.Tensor]) -> int:
        """Non-padding input tokens, for throughput."""
        return int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn summed statistics into metrics."""
        raise NotImplementedError


class BlockObjective(Objective):
    """An objective over fixed-length packed blocks of token ids (masked LM, causal LM)."""

    def __init__(self, model: nn.Module, train_blocks: np.ndarray, eval_blocks: np.ndarray):
        super().__init__(model)
        self.train_blocks = torch.from_numpy(np.ascontiguousarray(train_blocks, dtype=np.int64))
        self.eval_blocks = torch.from_numpy(np.ascontiguousarray(eval_blocks, dtype=np.int64))

    @property
    def train_size(self) -> int:
        return len(self.train_blocks)

    @property
    def eval_size(self) -> int:
        return len(self.eval_blocks)


def pad_batch(ids: Sequence[np.ndarray], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token id sequences to the longest one; the attention mask marks real tokens."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_token_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.int64)
    for row, x in enumerate(ids):
        input_ids[row, :len(x)] = torch.as_tensor(x)
        attention_mask[row, :len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix_finalize(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele et al. 2014): a bijection of uint64 that scrambles every bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def mix_keys(*values: int | np.ndarray) -> np.ndarray:
    """One 64-bit key per element of the broadcast integer arguments (e.g. seed, step, example indices), so
    nearby inputs give unrelated random streams."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        state = np.uint64(0x9E3779B97F4A7C15)
        for value in values:
            v = np.asarray(value).astype(np.uint64)
            state = _splitmix_finalize(state ^ (v + _GOLDEN + (state << np.uint64(6)) + (state >> np.uint64(2))))
        return np.atleast_1d(state)


def row_uniforms(keys: np.ndarray, length: int, streams: int) -> np.ndarray:
    """[streams, rows, length] float64 uniforms in [0, 1): SplitMix64's sequence started at each row's key
    (counter-based, so a row's numbers depend on its key alone, not on the batch around it)."""
    counter = (np.arange(streams, dtype=np.uint64)[:, None, None] * np.uint64(length)
               + np.arange(1, length + 1, dtype=np.uint64)[None, None, :])
    with np.errstate(over="ignore"):
        z = _splitmix_finalize(np.asarray(keys, dtype=np.uint64)[None, :, None] + counter * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2 ** 53)
