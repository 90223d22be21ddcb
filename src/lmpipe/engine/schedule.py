"""Which examples each step trains on, where the epochs end, and how far through its budget a run is.

An epoch is one pass over the training examples in the sampler's stream: step s (counted from 1) reads stream
positions [(s - 1) * batch, s * batch), so epoch k ends at step ceil(k * n / batch), the step that reads its
last example. With n not a multiple of the batch, a step can straddle two epochs.
"""

from __future__ import annotations

import math

import numpy as np

from lmpipe.config.schema import TrainParams


class StepSampler:
    """Which examples each optimizer step uses: epoch after epoch of seeded permutations, so the data
    position is a pure function of (seed, step) and a resumed run reads exactly what it would have.

    With `lengths` (variable-length examples), each epoch's permutation is cut into pools of
    GROUP_POOL batches, sorted by length inside a pool, and the resulting batches are shuffled: batches
    hold examples of similar length, so dynamic padding wastes little compute (Hugging Face's
    group_by_length does the same)."""

    GROUP_POOL = 50

    def __init__(self, n_examples: int, batch_size: int, seed: int, lengths: np.ndarray | None = None):
        self.n, self.batch_size, self.seed = n_examples, batch_size, seed
        self.lengths = None if lengths is None else np.asarray(lengths)
        self._cache: dict[int, np.ndarray] = {}

    def _epoch(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k >= epoch - 1}
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(self.n)
            if self.lengths is not None:
                order = self._group_by_length(order, rng)
            self._cache[epoch] = order
        return self._cache[epoch]

    def _group_by_length(self, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pool = self.batch_size * self.GROUP_POOL
        pools = [chunk[np.argsort(self.lengths[chunk], kind="stable")] for chunk in np.split(
            order, range(pool, self.n, pool))]
        batches = np.split(np.concatenate(pools), range(self.batch_size, self.n, self.batch_size))
        return np.concatenate([batches[i] for i in rng.permutation(len(batches))])

    def indices(self, step: int) -> np.ndarray:
        start, stop = step * self.batch_size, (step + 1) * self.batch_size
        epochs = range(start // self.n, (stop - 1) // self.n + 1)
        stream = np.concatenate([self._epoch(e) for e in epochs])
        offset = epochs[0] * self.n
        return stream[start - offset:stop - offset]


def steps_for_epochs(epochs: float, n_examples: int, batch_size: int) -> int:
    """The step at which `epochs` passes over the examples are complete (fractions round up)."""
    return math.ceil(epochs * n_examples / batch_size)


def ends_epoch(step: int, n_examples: int, batch_size: int) -> bool:
    """Whether step `step` (counted from 1) reads the last example of an epoch."""
    return step * batch_size // n_examples > (step - 1) * batch_size // n_examples


def epoch_position(step: int, n_examples: int, batch_size: int) -> float:
    """Epochs done after `step` steps (2.5: halfway through the third)."""
    return step * batch_size / n_examples


class Budget:
    """Training progress in [0, 1] and the stopping rule, for a budget in steps, epochs, tokens or minutes."""

    def __init__(self, cfg: TrainParams, n_examples: int):
        self.cfg = cfg
        self.total_steps: int | None = None
        if cfg.steps is not None:
            self.total_steps = cfg.steps
        elif cfg.epochs is not None:
            self.total_steps = max(1, steps_for_epochs(cfg.epochs, n_examples, cfg.batch_size))

    def progress(self, step: int, tokens: int, seconds: float) -> float:
        if self.total_steps is not None:
            return step / self.total_steps
        if self.cfg.tokens is not None:
            return tokens / self.cfg.tokens
        return seconds / (self.cfg.minutes * 60)

    def done(self, step: int, tokens: int, seconds: float) -> bool:
        return self.progress(step, tokens, seconds) >= 1.0
