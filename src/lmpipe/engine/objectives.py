"""Objectives: how a batch becomes a loss, and which metrics an evaluation keeps.

An objective is an `nn.Module` around a Hugging Face model, so DDP and `torch.compile` wrap the whole
loss computation. Its `forward(batch)` returns *sums* (loss summed over target tokens, target count,
correct predictions, ...): sums add across micro-batches, evaluation batches and processes, so the engine
normalises a step's loss by its true target count and evaluations never keep per-example outputs.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .sparse_mlm import final_hidden_at, query_index

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


# --------------------------------------------------------------------------------------------- masked LM


class MaskedLM(BlockObjective):
    """BERT's masked-LM objective with dynamic masking over fixed-length packed blocks.

    The vocabulary projection (the largest matmul of a small encoder) and, where the architecture allows, the
    encoder's last layer (`sparse_mlm`) run only at the selected positions.
    """

    name = "masked_lm"
    # the number of selected positions, and the most in one row (both bucketed)
    dynamic_dims = {"positions": (0,), "targets": (0,), "query_slots": (0,), "query_columns": (1,)}

    def __init__(self, model: nn.Module, train_blocks: np.ndarray, eval_blocks: np.ndarray, *, mask_rate: float,
                 mask_token_fraction: float, random_token_fraction: float, mask_token_id: int,
                 special_token_ids: Sequence[int], vocab_size: int, eval_seed: int = 0):
        super().__init__(model, train_blocks, eval_blocks)
        self.mask_rate = mask_rate
        self.mask_token_fraction = mask_token_fraction
        self.random_token_fraction = random_token_fraction
        self.mask_token_id = mask_token_id
        self.special_ids = torch.tensor(sorted(set(special_token_ids)), dtype=torch.int64)
        self.vocab_size = vocab_size
        self.eval_seed = eval_seed

    def mask(self, input_ids: torch.Tensor, keys: np.ndarray) -> dict[str, torch.Tensor]:
        """Select mask_rate of the non-special tokens; 80% -> [MASK], 10% -> random token, 10% kept.
        Row r's randomness is a function of keys[r] alone (`row_uniforms`)."""
        draws = torch.from_numpy(row_uniforms(keys, input_ids.shape[1], streams=3))
        maskable = ~torch.isin(input_ids, self.special_ids)
        selected = (draws[0] < self.mask_rate) & maskable
        action = draws[1]
        random_tokens = (draws[2] * self.vocab_size).long().clamp_(max=self.vocab_size - 1)
        labels = torch.where(selected, input_ids, IGNORE)
        masked = input_ids.clone()
        to_mask = selected & (action < self.mask_token_fraction)
        to_random = selected & (action >= self.mask_token_fraction) & (
            action < self.mask_token_fraction + self.random_token_fraction)
        masked[to_mask] = self.mask_token_id
        masked[to_random] = random_tokens[to_random]
        return {"input_ids": masked, "labels": labels}

    @staticmethod
    def gather_targets(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Add the flat indices of the selected positions and their targets, padded to a multiple of
        POSITION_BUCKET (padding targets are ignored): few distinct shapes keep oneDNN's and
        torch.compile's caches small, where an exact count would give a new shape every step. Also adds the
        index tensors of the sparse last layer (`sparse_mlm.query_index`)."""
        flat = batch["labels"].reshape(-1)
        positions = (flat != IGNORE).nonzero().squeeze(1)
        padded = -(-max(len(positions), 1) // POSITION_BUCKET) * POSITION_BUCKET
        pad = padded - len(positions)
        batch["targets"] = torch.cat([flat[positions], flat.new_full((pad,), IGNORE)])
        batch["positions"] = torch.cat([positions, positions.new_zeros(pad)])
        rows, seq_len = batch["labels"].shape
        batch.update(query_index(batch["positions"], len(positions), seq_len, rows))
        return batch

    def train_batch(self, indices: np.ndarray, step: int, seed: int) -> dict[str, torch.Tensor]:
        # Each example's mask is keyed by (seed, step, example): the same example gets the same mask whichever
        # process or micro-batch draws it, so DDP and accumulation see exactly one batch's masks. Vectorised
        # over the batch: on a GPU the batch is built while the previous step runs, and must not be slower.
        indices = np.asarray(indices, dtype=np.int64)
        rows = self.mask(self.train_blocks[torch.from_numpy(indices)], mix_keys(seed, step, indices))
        return self.gather_targets(rows)

    def eval_batches(self, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        # Fixed masks: every evaluation of every run scores the same masked positions.
        batch = self.mask(self.eval_blocks, mix_keys(self.eval_seed, np.arange(len(self.eval_blocks))))
        for start in range(rank * batch_size, len(self.eval_blocks), batch_size * world):
            yield self.gather_targets({key: value[start:start + batch_size] for key, value in batch.items()})

    @staticmethod
    def count_targets(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = mlm_logits(self.model, final_hidden_at(self.model.base_model, batch)).float()
        targets = batch["targets"]
        valid = targets != IGNORE
        return {
            "loss_sum": F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum"),
            "targets": valid.sum(),
            "correct": ((logits.argmax(-1) == targets) & valid).sum(),
        }

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        loss = sums["loss_sum"] / max(sums["targets"], 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                "masked_accuracy": sums["correct"] / max(sums["targets"], 1)}


# --------------------------------------------------------------------------------------------- classification


class Classification(Objective):
    """Sequence classification with dynamic padding; evaluation keeps a confusion matrix, never logits."""

    name = "classification"
    dynamic_dims = {"input_ids": (0, 1), "attention_mask": (0, 1), "labels": (0,)}  # dynamic padding

    def __init__(self, model: nn.Module, train_ids: list[np.ndarray], train_labels: np.ndarray,
                 eval_ids: list[np.ndarray], eval_labels: np.ndarray, *, num_labels: int, pad_token_id: int,
                 select_metric: str = "accuracy", class_weights: torch.Tensor | None = None):
        super().__init__(model)
        # Weights the training loss per class; evaluation stays unweighted, so validation loss means the same
        # with and without them. A buffer, so it moves with .to(device).
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.train_ids, self.train_labels = train_ids, torch.as_tensor(train_labels, dtype=torch.int64)
        self.eval_ids, self.eval_labels = eval_ids, torch.as_tensor(eval_labels, dtype=torch.int64)
        self.num_labels = num_labels
        self.pad_token_id = pad_token_id
        self.select_metric = select_metric
        self.select_mode = "min" if select_metric == "loss" else "max"

    @property
    def train_size(self) -> int:
        return len(self.train_ids)

    @property
    def eval_size(self) -> int:
        return len(self.eval_ids)

    def train_lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.train_ids), dtype=np.int64, count=len(self.train_ids))

    def collate(self, ids: Sequence[np.ndarray], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**pad_batch(ids, self.pad_token_id), "labels": labels}

    def train_batch(self, indices: np.ndarray, step: int, seed: int) -> dict[str, torch.Tensor]:
        return self.collate([self.train_ids[i] for i in indices], self.train_labels[indices])

    def eval_batches(self, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        # Sorted by length so padding is minimal; the order does not change summed statistics.
        order = np.argsort([len(x) for x in self.eval_ids], kind="stable")
        for start in range(rank * batch_size, len(order), batch_size * world):
            chunk = order[start:start + batch_size]
            yield self.collate([self.eval_ids[i] for i in chunk], self.eval_labels[chunk])

    @staticmethod
    def count_targets(batch: dict[str, torch.Tensor]) -> int:
        return len(batch["labels"])

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        labels = batch["labels"]
        predictions = logits.argmax(-1)
        confusion = torch.bincount(labels * self.num_labels + predictions, minlength=self.num_labels ** 2)
        return {
            # summed: each example weighted by its class (when weighted), the engine divides by the count
            "loss_sum": F.cross_entropy(logits, labels, weight=self.class_weights if self.training else None,
                                        reduction="sum"),
            "targets": torch.tensor(len(labels)),
            "correct": (predictions == labels).sum(),
            "confusion": confusion.view(self.num_labels, self.num_labels),
        }

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        from ..metrics import classification_from_confusion

        result = {"loss": sums["loss_sum"] / max(sums["targets"], 1)}
        result.update(classification_from_confusion(np.asarray(sums["confusion"])))
        return result


def pad_batch(ids: Sequence[np.ndarray], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token id sequences to the longest one; the attention mask marks real tokens."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_token_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.int64)
    for row, x in enumerate(ids):
        input_ids[row, :len(x)] = torch.as_tensor(x)
        attention_mask[row, :len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def mlm_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits of a Hugging Face *ForMaskedLM model's head for the given final hidden states."""
    if hasattr(model, "cls"):  # BERT
        return model.cls(hidden)
    if hasattr(model, "lm_head"):  # RoBERTa and its pre-LayerNorm variant
        return model.lm_head(hidden)
    if hasattr(model, "head") and hasattr(model, "decoder"):  # ModernBERT
        return model.decoder(model.head(hidden))
    raise TypeError(f"{type(model).__name__}: no masked-LM head (cls, lm_head or head + decoder)")


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
