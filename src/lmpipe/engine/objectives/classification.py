"""Sequence classification: padded batches, summed cross-entropy, accuracy and probabilities."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.engine.objectives.base import Objective, pad_batch


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
        from lmpipe.evaluation.metrics import classification_from_confusion

        result = {"loss": sums["loss_sum"] / max(sums["targets"], 1)}
        result.update(classification_from_confusion(np.asarray(sums["confusion"])))
        return result
