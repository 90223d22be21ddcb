"""Resumable training state, written atomically to a git-ignored cache keyed by a fingerprint.

The key covers the stage's params, its input files and the package's code, so a changed run starts
fresh instead of silently resuming another run's state (what a DVC `persist` output would do).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from lmpipe.engine.state import TrainState
from lmpipe.io import atomic_path

STATE_FILE = "state.pt"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def fingerprint(stage: str, params: Any, inputs: Iterable[str | Path]) -> str:
    digest = hashlib.sha256()
    digest.update(stage.encode())
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    for path in sorted(Path(p) for p in inputs):
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            digest.update(_file_digest(file))
    for file in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32),
                         int(state["numpy"]["pos"]), 0, 0.0))
    random.setstate((3, tuple(state["python"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> dict[str, torch.Tensor]:
    _, keys, pos, _, _ = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": torch.tensor(pos)}


def _python_state() -> torch.Tensor:
    return torch.tensor(random.getstate()[1], dtype=torch.int64)


def save(directory: Path, state: TrainState, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Write the loop's state with the weights, the optimizer's state and every RNG's state, atomically."""
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state(),
               "loop": state.to_dict()}
    with atomic_path(directory / STATE_FILE) as tmp:
        torch.save(payload, tmp)


def load(directory: Path) -> dict[str, Any] | None:
    """The saved payload (model, optimizer, rng, loop), or None when there is no checkpoint."""
    path = directory / STATE_FILE
    if not path.exists():
        return None
    # weights_only: a checkpoint is data, never code.
    return torch.load(path, map_location="cpu", weights_only=True)


def resume(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainState | None:
    """Load a checkpoint into `model`, `optimizer` and the RNGs and return the loop's state; None if there is none."""
    saved = load(directory)
    if saved is None:
        return None
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    set_rng_state(saved["rng"])
    return TrainState.from_dict(saved["loop"])
