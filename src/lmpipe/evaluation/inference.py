"""Batched class probabilities from a sequence classifier, sorted by length to minimise padding."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lmpipe.engine.objectives.base import pad_batch
from lmpipe.engine.precision import resolve_precision


def require_finite_weights(model: torch.nn.Module, source: str) -> None:
    """A ValueError naming `source` when any weight is NaN or infinite (a diverged training run): its
    predictions would be NaN probabilities."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{source}: weight {name} holds NaN or infinite values (training diverged); "
                             "retrain it, e.g. with a lower learning rate")


@torch.no_grad()
def predict_proba(model: torch.nn.Module, ids: Sequence[np.ndarray], pad_token_id: int, batch_size: int = 128,
                  precision: str = "auto", device: torch.device | None = None, progress: bool = False) -> np.ndarray:
    """Probabilities (N x num_labels, float32) in the order of `ids`."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    dtype = resolve_precision(precision, device)
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="predict", unit="batch"):
        chunk = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in pad_batch([ids[i] for i in chunk], pad_token_id).items()}
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(**batch).logits
        out[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out
