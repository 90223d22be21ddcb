"""The causal-LM objective (GPT-style next-token prediction) for the one training engine.

Blocks are fixed-length windows of a token stream in which documents are separated by the end-of-text token,
so no position is padding. Within a block, position t predicts token t + 1: the labels are shifted exactly
once, here (the model is called without `labels`, so Hugging Face does not shift them a second time). A
document's last token predicts end-of-text, and end-of-text predicts the next document's first token.

Like the other objectives, `forward` returns sums (summed loss, target count, correct predictions, and on
evaluation the bytes the targets cover), so the engine's accumulation and DDP normalisation apply unchanged
and evaluations can report perplexity per token and per byte (comparable across tokenizers).
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.engine.objectives.base import BlockObjective


def unigram_loss(train_blocks: np.ndarray, eval_blocks: np.ndarray, vocab_size: int) -> float:
    """Held-out loss (nats per target token) of the training set's add-one-smoothed unigram distribution:
    the level a model must beat to use any context."""
    counts = np.bincount(train_blocks[:, 1:].reshape(-1), minlength=vocab_size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-log_probs[eval_blocks[:, 1:].reshape(-1)].mean())


# Attention implementations that apply the causal mask themselves when transformers skips building one
# (it does so for sdpa: is_causal=True). Any other (custom) function gets an explicit mask, see `forward`.
_CAUSAL_SAFE_ATTENTION = {None, "eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"}


class CausalLM(BlockObjective):
    """Next-token prediction over packed blocks; evaluation also sums the UTF-8 bytes its targets cover."""

    name = "causal_lm"

    def __init__(self, model: nn.Module, train_blocks: np.ndarray, eval_blocks: np.ndarray,
                 eval_bytes: np.ndarray | None = None):
        if train_blocks.ndim != 2 or train_blocks.shape[1] < 2:
            raise ValueError(f"train blocks must be [n, length >= 2], got shape {train_blocks.shape}")
        if eval_blocks.ndim != 2 or eval_blocks.shape[1] < 2:
            raise ValueError(f"evaluation blocks must be [n, length >= 2], got shape {eval_blocks.shape}")
        if eval_bytes is not None and len(eval_bytes) != len(eval_blocks):
            raise ValueError(f"eval_bytes has {len(eval_bytes)} entries for {len(eval_blocks)} evaluation blocks")
        super().__init__(model, train_blocks, eval_blocks)
        self.eval_bytes = None if eval_bytes is None else torch.as_tensor(eval_bytes, dtype=torch.int64)

    def train_batch(self, indices: np.ndarray, step: int, seed: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.train_blocks[torch.as_tensor(indices, dtype=torch.int64)]}

    def eval_batches(self, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[dict[str, torch.Tensor]]:
        for start in range(rank * batch_size, len(self.eval_blocks), batch_size * world):
            batch = {"input_ids": self.eval_blocks[start:start + batch_size]}
            if self.eval_bytes is not None:
                batch["bytes"] = self.eval_bytes[start:start + batch_size]
            yield batch

    @staticmethod
    def count_targets(batch: dict[str, torch.Tensor]) -> int:
        ids = batch["input_ids"]
        return ids.shape[0] * (ids.shape[1] - 1)  # every position but the last predicts the next token

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"]
        kwargs = {}
        if getattr(self.model.config, "_attn_implementation", None) not in _CAUSAL_SAFE_ATTENTION:
            # transformers passes no mask when it can rely on is_causal; a custom attention function that
            # ignores is_causal (the engine's CPU kernel) would then let every position see the future.
            kwargs["attention_mask"] = causal_mask(ids)
        logits = self.model(input_ids=ids, **kwargs).logits[:, :-1].float()
        targets = ids[:, 1:]  # the one shift: position t predicts token t + 1
        out = {
            "loss_sum": F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"),
            "targets": torch.tensor(targets.numel(), device=ids.device),
            "correct": (logits.argmax(-1) == targets).sum(),
        }
        if "bytes" in batch:
            out["bytes"] = batch["bytes"].sum()
        return out

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        loss = sums["loss_sum"] / max(sums["targets"], 1)
        result = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                  "accuracy": sums["correct"] / max(sums["targets"], 1)}
        if sums.get("bytes"):
            per_byte = sums["loss_sum"] / sums["bytes"]  # nats per UTF-8 byte of the predicted text
            result.update(bits_per_byte=per_byte / math.log(2), byte_perplexity=math.exp(min(per_byte, 50.0)),
                          bytes_per_token=sums["bytes"] / max(sums["targets"], 1))
        return result


def causal_mask(input_ids: torch.Tensor) -> torch.Tensor:
    """A [batch, 1, length, length] boolean mask, True where a query position may attend (keys <= query)."""
    batch, length = input_ids.shape
    allowed = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
    return allowed[None, None].expand(batch, 1, length, length)


def target_bytes(tokenizer, blocks: np.ndarray, end_of_text_id: int) -> np.ndarray:
    """UTF-8 bytes covered by each block's targets (tokens 1..L-1), for perplexity per byte.

    The text is decoded per block without special tokens (exact for byte-level BPE except a character split
    across a block edge); each end-of-text counts as one byte, like the newline between documents in a file."""
    counts = np.empty(len(blocks), dtype=np.int64)
    for i, block in enumerate(blocks):
        targets = np.asarray(block[1:])
        text = tokenizer.decode(targets.tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        counts[i] = len(text.encode("utf-8")) + int((targets == end_of_text_id).sum())
    return counts
