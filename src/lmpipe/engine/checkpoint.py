"""Resumable training state, written atomically to a git-ignored cache keyed by a fingerprint.

The key covers the stage's params, its input files and the package's code, so a changed run starts
fresh instead of silently resuming another run's state (what a DVC `persist` output would do).

Two layouts: `state.pt`, one file that rank 0 writes (one process, or DDP's identical replicas); and, under
`train.parallel: fsdp`, `step-<step>/`, a torch.distributed.checkpoint directory to which every process
writes its own shards of the model and optimizer, beside a `loop-<rank>.pt` per process (the loop's state
and RNG states). It is written as `.step-<step>.tmp/` and renamed when every process has finished, so a
run killed mid-write resumes from the previous complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from lmpipe.engine.distributed import Dist, barrier, broadcast_int
from lmpipe.engine.state import TrainState
from lmpipe.io import atomic_path

STATE_FILE = "state.pt"
SHARDED_PREFIX = "step-"  # + the step, zero-padded: a complete sharded checkpoint
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


def sharded_checkpoints(directory: Path) -> list[Path]:
    """The complete sharded checkpoints in `directory`, oldest first."""
    return sorted(directory.glob(f"{SHARDED_PREFIX}*")) if directory.is_dir() else []


def _sharded_name(step: int) -> str:
    return f"{SHARDED_PREFIX}{step:09d}"


def save_sharded(directory: Path, state: TrainState, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 info: Dist) -> None:
    """Every process: its shards of the FSDP `model` and `optimizer` (torch.distributed.checkpoint) and its
    loop and RNG states, into a temporary directory that rank 0 renames into place once all have written;
    older checkpoints are then removed. On several machines `directory` must be on a shared file system."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    final = directory / _sharded_name(state.step)
    tmp = directory / f".{final.name}.tmp"
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while writing it
        tmp.mkdir(parents=True)
    barrier(info)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=tmp)
    with open(tmp / f"loop-{info.rank}.pt", "wb") as f:
        torch.save({"loop": state.to_dict(), "rng": rng_state(), "world": info.world}, f)
        f.flush()
        os.fsync(f.fileno())
    barrier(info)  # every process's files are on disk
    if info.is_main:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        _fsync_directory(directory)
        for old in sharded_checkpoints(directory):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        for stale in directory.glob(f".{SHARDED_PREFIX}*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    barrier(info)


def resume_sharded(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   info: Dist) -> TrainState | None:
    """Load the latest complete sharded checkpoint into the FSDP `model`, `optimizer` and this process's RNGs
    and return its loop state; None if there is none. The processes must be as many as wrote it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    complete = sharded_checkpoints(directory)
    # Rank 0's choice for all: on a shared file system another machine may list the directory a moment late.
    step = broadcast_int(int(complete[-1].name[len(SHARDED_PREFIX):]) if complete else -1, info)
    if step < 0:
        return None
    path = directory / _sharded_name(step)
    loop_file = path / f"loop-{info.rank}.pt"
    saved = torch.load(loop_file, map_location="cpu", weights_only=True) if loop_file.exists() else None
    if saved is None or saved["world"] != info.world:
        raise ValueError(f"{path}: written by {saved['world'] if saved else 'fewer'} processes, resumed by "
                         f"{info.world}; resume with as many, or delete the directory to start afresh")
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.load({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state)
    set_rng_state(saved["rng"])
    return TrainState.from_dict(saved["loop"])


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
