"""Masked-LM pretraining: (seed, step, example)-keyed masking, so a resumed or distributed run masks the same tokens."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.engine.accel.sparse_mlm import final_hidden_at, query_index
from lmpipe.engine.objectives.base import IGNORE, POSITION_BUCKET, BlockObjective, mix_keys, row_uniforms


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


def mlm_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits of a Hugging Face *ForMaskedLM model's head for the given final hidden states."""
    if hasattr(model, "cls"):  # BERT
        return model.cls(hidden)
    if hasattr(model, "lm_head"):  # RoBERTa and its pre-LayerNorm variant
        return model.lm_head(hidden)
    if hasattr(model, "head") and hasattr(model, "decoder"):  # ModernBERT
        return model.decoder(model.head(hidden))
    raise TypeError(f"{type(model).__name__}: no masked-LM head (cls, lm_head or head + decoder)")
