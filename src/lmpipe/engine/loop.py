"""The one training loop behind every training stage.

Read it top to bottom: pick the step's examples, split them into this process's micro-batches, forward
under autocast, normalise the summed loss by the step's true target count (over all micro-batches and
processes), backward, clip, set the learning rate from the budget's progress, step, then log, evaluate and
checkpoint on their schedules, until the budget (steps, epochs, tokens or minutes) is spent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from lmpipe.config.schema import TrainParams
from lmpipe.engine import checkpoint as ckpt
from lmpipe.engine.accel.cpu_kernels import use_fast_cpu_kernels
from lmpipe.engine.distributed import Dist, all_reduce_sum, barrier, broadcast_flag
from lmpipe.engine.objectives.base import Objective
from lmpipe.engine.optim import build_optimizer, lr_factor, param_groups, set_lr
from lmpipe.engine.precision import resolve_precision
from lmpipe.engine.schedule import Budget, StepSampler

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite: training stopped and nothing was saved."""


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per logged step
    evals: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation
    best: dict[str, float] | None = None  # the selected evaluation (keep_best), else the last
    summary: dict[str, Any] = field(default_factory=dict)  # deterministic: steps, tokens, precision, processes
    telemetry: dict[str, float] = field(default_factory=dict)  # varies run to run: time, throughput, memory


def train(
    objective: Objective,
    cfg: TrainParams,
    *,
    lr: float,
    seed: int,
    dist_info: Dist,
    tracker: Any = None,
    checkpoint_dir: Path | None = None,
    keep_best: bool = False,
    lr_scale: Callable[[str], float] | None = None,
    on_step: Callable[[int, Objective], None] | None = None,
    desc: str = "train",
    lr_key: str = "the learning rate",
) -> TrainResult:
    """Train `objective.model` in place; returns the history, evaluations and a summary.

    A NaN or infinite loss or gradient norm raises TrainingDiverged (naming the step, the lr and `lr_key`, the
    params key to lower) at the next log, evaluation or checkpoint step, before anything is evaluated or saved.

    keep_best: restore the weights of the best evaluation (by objective.select_metric) at the end.
    on_step(step, objective): called before each step, for observers (tests snapshot weights there). Changing
    requires_grad there does not work under DDP, which fixes its parameter list when it wraps the model.
    """
    device = dist_info.device
    world = dist_info.world
    micro = cfg.micro_batch_size or cfg.batch_size // world
    if cfg.batch_size % (micro * world):
        raise ValueError(f"batch_size {cfg.batch_size} is not a multiple of micro_batch_size {micro} x {world} processes")
    if objective.eval_size < world:
        raise ValueError(f"the evaluation set ({objective.eval_size} examples) needs at least one example "
                         f"for each of the {world} processes")
    # Every process gets at least one evaluation batch: one with none would skip the collectives.
    eval_batch_size = min(2 * micro, math.ceil(objective.eval_size / world))
    autocast_dtype = resolve_precision(cfg.precision, device)
    torch.manual_seed(seed)
    if device.type == "cpu" and cfg.fast_cpu_kernels:
        use_fast_cpu_kernels(objective.model, fuse_blocks=not cfg.compile)
    objective.to(device)
    optimizer = build_optimizer(param_groups(objective.model, lr, cfg.weight_decay, lr_scale), cfg, device)
    budget = Budget(cfg, objective.train_size)
    lengths = objective.train_lengths() if cfg.group_by_length else None
    sampler = StepSampler(objective.train_size, cfg.batch_size, seed, lengths)

    # The logging window lives in the state too, so a resumed run logs the same rows as an uninterrupted one.
    state: dict[str, Any] = {"step": 0, "tokens": 0, "seconds": 0.0, "history": [], "evals": [],
                             "best": None, "best_weights": None, "bad_evals": 0, "window": _empty_window()}
    resumed = ckpt.load(checkpoint_dir) if checkpoint_dir and cfg.checkpoint_every else None
    if resumed is not None:
        objective.model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        ckpt.set_rng_state(resumed["rng"])
        state.update(resumed["loop"])
        log.info("%s: resumed from step %d (%s)", desc, state["step"], checkpoint_dir)

    runner: torch.nn.Module = objective
    if dist_info.enabled:
        runner = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        runner = torch.compile(runner)

    def to_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        moved = _to(batch, device)
        if cfg.compile:
            for key, dims in objective.dynamic_dims.items():
                for dim in dims if key in moved else ():
                    torch._dynamo.maybe_mark_dynamic(moved[key], dim)
        return moved

    def autocast():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=autocast_dtype)

    def evaluate() -> dict[str, float]:
        objective.eval()
        sums: dict[str, torch.Tensor] = {}
        with torch.no_grad(), autocast():
            for i, batch in enumerate(objective.eval_batches(eval_batch_size, dist_info.rank, world)):
                if cfg.eval_batches is not None and i >= cfg.eval_batches:
                    break
                out = runner(to_device(batch))
                for key, value in out.items():
                    sums[key] = sums.get(key, 0) + value.detach().double()
        objective.train()
        for key in sums:
            sums[key] = all_reduce_sum(sums[key], dist_info).cpu()
        return objective.metrics({k: v.item() if v.numel() == 1 else v.numpy() for k, v in sums.items()})

    total = budget.total_steps
    bar = tqdm(total=total, initial=state["step"], desc=desc, disable=not dist_info.is_main, dynamic_ncols=True,
               unit="step", mininterval=1.0)
    window = state["window"]
    # The loss is summed on the device and read back only when a row is logged or a checkpoint is written:
    # an `.item()` per step would make the CPU wait for the GPU and stop batch preparation overlapping it.
    pending_loss = torch.zeros((), dtype=torch.float64, device=device)

    def flush_loss() -> None:
        window["loss_sum"] += pending_loss.item()
        pending_loss.zero_()

    # The first non-finite step as [step, loss, gradient norm], kept on the device (no per-step sync) and read
    # where the loop syncs anyway; step -1: none yet. The lr of the steps since the last check stays on the host.
    divergence = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64, device=device)
    device_step = torch.full((), float(state["step"]), dtype=torch.float64, device=device)
    recent_lr: dict[int, float] = {}

    def stop_if_diverged() -> None:
        flag = all_reduce_sum((divergence[:1] >= 0).double(), dist_info)  # every process stops together
        if flag.item() == 0:
            recent_lr.clear()
            return
        bad_step, loss, norm = divergence.tolist()
        bad_lr = recent_lr.get(int(bad_step), math.nan)
        where = f"at step {int(bad_step)}" if bad_step >= 0 else "on another process"
        raise TrainingDiverged(
            f"{desc}: training diverged {where}: loss {loss:g}, gradient norm {norm:g} at lr {bad_lr:.3g}; "
            f"stopped, nothing saved. Lower {lr_key}; gradient clipping (max_grad_norm) and a longer warmup "
            "also steady training")

    epoch_steps = max(1, objective.train_size // cfg.batch_size)
    stop = False
    objective.train()
    start_time = time.perf_counter() - state["seconds"]
    while not stop:
        step = state["step"]
        if on_step is not None:
            on_step(step, objective)
        step_start = time.perf_counter()
        factor = lr_factor(budget.progress(step, state["tokens"], state["seconds"]), cfg)
        current_lr = set_lr(optimizer, factor)

        indices = sampler.indices(step)
        per_rank = cfg.batch_size // world
        mine = indices[dist_info.rank * per_rank:(dist_info.rank + 1) * per_rank]
        batches = [objective.train_batch(mine[i:i + micro], step, seed) for i in range(0, len(mine), micro)]
        counts = torch.tensor([sum(objective.count_targets(b) for b in batches),
                               sum(objective.count_tokens(b) for b in batches)], dtype=torch.float64)
        step_targets, step_tokens = all_reduce_sum(counts, dist_info).tolist()
        # DDP averages gradients over processes; scaling by `world` turns that average back into a sum.
        scale = world / max(step_targets, 1.0)
        step_loss = torch.zeros((), dtype=torch.float64, device=device)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or not dist_info.enabled else runner.no_sync()
            with sync:
                with autocast():
                    out = runner(to_device(batch))
                (out["loss_sum"] * scale).backward()
            step_loss += out["loss_sum"].detach().double()
        pending_loss += step_loss
        grad_norm = _grad_norm(objective.model.parameters(), cfg.max_grad_norm).to(device, torch.float64)
        device_step += 1
        recent_lr[step + 1] = current_lr
        first = (divergence[0] < 0) & ~(torch.isfinite(step_loss) & torch.isfinite(grad_norm))
        divergence.copy_(torch.where(first, torch.stack([device_step, step_loss / max(step_targets, 1.0), grad_norm]),
                                     divergence))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        state["step"] = step = step + 1
        state["tokens"] += int(step_tokens)
        step_seconds = time.perf_counter() - step_start
        window["targets"] += sum(objective.count_targets(b) for b in batches)
        window["tokens"] += int(step_tokens)
        window["seconds"] += step_seconds
        state["seconds"] = time.perf_counter() - start_time
        stop = broadcast_flag(budget.done(step, state["tokens"], state["seconds"]), dist_info)

        if step % cfg.log_every == 0 or stop:
            stop_if_diverged()
            flush_loss()
            pair = all_reduce_sum(torch.tensor([window["loss_sum"], window["targets"]], dtype=torch.float64),
                                  dist_info).tolist()
            row = {"step": step, "loss": pair[0] / max(pair[1], 1), "lr": current_lr,
                   "tokens": state["tokens"], "tokens_per_s": window["tokens"] / max(window["seconds"], 1e-9)}
            state["history"].append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{current_lr:.2e}",
                            tok_s=f"{row['tokens_per_s']:.0f}", refresh=False)
            if tracker is not None:
                tracker.log_metrics({f"train/{k}": v for k, v in row.items() if k != "step"}, step=step)
            window = state["window"] = _empty_window()
        bar.update(1)

        end_of_epoch = step % epoch_steps == 0
        if step % cfg.eval_every == 0 or stop or (keep_best and end_of_epoch):
            stop_if_diverged()
            metrics = evaluate()
            row = {"step": step, "epoch": step * cfg.batch_size / objective.train_size, **metrics}
            state["evals"].append(row)
            improved = _is_better(metrics, state["best"], objective)
            if improved:
                state["best"], state["bad_evals"] = row, 0
                if keep_best:
                    state["best_weights"] = {k: v.detach().to("cpu", copy=True)
                                             for k, v in objective.model.state_dict().items()}
            else:
                state["bad_evals"] += 1
            if dist_info.is_main:
                shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                bar.write(f"{desc} eval step={step} {shown}{' *' if improved else ''}")
            if tracker is not None:
                tracker.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=step)
            patience = cfg.early_stopping_patience
            if patience is not None and state["bad_evals"] >= patience and not stop:
                if dist_info.is_main:
                    bar.write(f"{desc} early stop at step {step}: no improvement in {patience} evaluations")
                stop = True

        if checkpoint_dir and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not stop:
            stop_if_diverged()  # a diverged state is never checkpointed
            flush_loss()  # the window is part of the checkpoint
            if dist_info.is_main:
                ckpt.save(checkpoint_dir, {"model": objective.model.state_dict(),
                                           "optimizer": optimizer.state_dict(),
                                           "rng": ckpt.rng_state(), "loop": state})
            barrier(dist_info)
    bar.close()
    stop_if_diverged()

    if keep_best and state["best_weights"] is not None:
        objective.model.load_state_dict(state["best_weights"])
    if checkpoint_dir and dist_info.is_main:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # finished: the outputs are what DVC caches
    summary = {
        "steps": state["step"],
        "tokens": state["tokens"],
        "precision": str(autocast_dtype).replace("torch.", "") if autocast_dtype else "fp32",
        "world_size": world,
    }
    telemetry = {
        "train_seconds": state["seconds"],
        "tokens_per_s": _mean_throughput(state["history"]),
        "peak_memory_mb": _peak_memory_mb(device),
    }
    best = state["best"] if keep_best else (state["evals"][-1] if state["evals"] else None)
    return TrainResult(history=state["history"], evals=state["evals"], best=best, summary=summary,
                       telemetry=telemetry)


def _grad_norm(parameters, max_norm: float | None) -> torch.Tensor:
    """The total gradient norm (of the gradients every process reduced), clipped to max_norm when it is set."""
    parameters = list(parameters)
    if max_norm is not None:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    grads = [p.grad for p in parameters if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: measures without touching the gradients
        return torch.nn.utils.get_total_norm(grads)
    return torch.nn.utils.clip_grad_norm_(parameters, math.inf)


def _empty_window() -> dict[str, float]:
    return {"loss_sum": 0.0, "targets": 0, "tokens": 0, "seconds": 0.0}


def _is_better(metrics: dict[str, float], best: dict[str, float] | None, objective: Objective) -> bool:
    if best is None:
        return True
    key = objective.select_metric
    return metrics[key] < best[key] if objective.select_mode == "min" else metrics[key] > best[key]


def _mean_throughput(history: list[dict[str, float]]) -> float:
    rates = [row["tokens_per_s"] for row in history[1:]] or [row["tokens_per_s"] for row in history]
    return float(np.median(rates)) if rates else 0.0


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cuda":
        # From pinned memory the copy is queued behind the running step instead of waiting for the GPU.
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
