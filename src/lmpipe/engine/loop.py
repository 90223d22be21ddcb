"""The one training loop behind every training stage.

Read `train` top to bottom: seed, build the optimizer, resume from a checkpoint, then step, log, evaluate and
checkpoint on their schedules until the budget (steps, epochs, tokens or minutes) is spent. A step
(`_Run.step`) sets the learning rate from the budget's progress, picks the step's examples, splits them into
this process's micro-batches, forwards under autocast, normalises the summed loss by the step's true target
count (over all micro-batches and processes), backpropagates, clips and steps.

Under torchrun, `train.parallel` picks how the processes share the model: `ddp` keeps a full replica in each
(DistributedDataParallel); `fsdp` shards the parameters, gradients and optimizer state over them (FSDP2,
`distributed.shard`) and checkpoints through torch.distributed.checkpoint; train() then hands back the
original model object holding the full trained weights, on the host.
"""

from __future__ import annotations

import contextlib
import itertools
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
from lmpipe.engine import distributed
from lmpipe.engine.accel.cpu_kernels import use_fast_cpu_kernels
from lmpipe.engine.distributed import Dist, all_reduce_sum, barrier, broadcast_flag
from lmpipe.engine.evaluate import evaluate
from lmpipe.engine.objectives.base import Objective
from lmpipe.engine.optim import build_optimizer, lr_factor, param_groups, set_lr
from lmpipe.engine.precision import autocast, resolve_precision
from lmpipe.engine.schedule import Budget, StepSampler, ends_epoch, epoch_position
from lmpipe.engine.state import LogWindow, TrainState

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
    requires_grad there does not work under DDP, which fixes its parameter list when it wraps the model, nor
    under FSDP, where `objective.model` is then a sharded copy.
    """
    device = dist_info.device
    micro = _micro_batch_size(objective, cfg, dist_info.world)
    autocast_dtype = resolve_precision(cfg.precision, device)
    torch.manual_seed(seed)
    if device.type == "cpu" and cfg.fast_cpu_kernels:
        use_fast_cpu_kernels(objective.model, fuse_blocks=not cfg.compile)
    host_model = objective.model
    # One process has nothing to shard: fsdp then trains exactly as ddp does, without a wrapper.
    root = distributed.shard(objective, dist_info) if cfg.parallel == "fsdp" and dist_info.enabled else None
    objective.to(device)
    optimizer = build_optimizer(param_groups(objective.model, lr, cfg.weight_decay, lr_scale), cfg, device)
    budget = Budget(cfg, objective.train_size)
    sampler = StepSampler(objective.train_size, cfg.batch_size, seed,
                          objective.train_lengths() if cfg.group_by_length else None)
    resumable = checkpoint_dir if cfg.checkpoint_every else None
    if resumable and root is not None:
        state = ckpt.resume_sharded(resumable, objective.model, optimizer, dist_info)
    else:
        state = ckpt.resume(resumable, objective.model, optimizer) if resumable else None
    if state is None:
        state = TrainState()
    else:
        log.info("%s: resumed from step %d (%s)", desc, state.step, checkpoint_dir)
    run = _Run(objective, cfg, dist_info, state, optimizer=optimizer, sampler=sampler, seed=seed, micro=micro,
               autocast_dtype=autocast_dtype, tracker=tracker, desc=desc, lr_key=lr_key,
               total_steps=budget.total_steps, root=root)

    stop = False
    objective.train()
    start_time = time.perf_counter() - state.seconds
    while not stop:
        if on_step is not None:
            on_step(state.step, objective)
        current_lr = run.step(budget)
        state.seconds = time.perf_counter() - start_time
        stop = broadcast_flag(budget.done(state.step, state.tokens, state.seconds), dist_info)
        step = state.step
        if step % cfg.log_every == 0 or stop:
            run.log(current_lr)
        run.bar.update(1)
        if step % cfg.eval_every == 0 or stop or (keep_best and ends_epoch(step, objective.train_size, cfg.batch_size)):
            run.evaluate(keep_best)
            patience = cfg.early_stopping_patience
            if patience is not None and state.bad_evals >= patience and not stop:
                run.note(f"{desc} early stop at step {step}: no improvement in {patience} evaluations")
                stop = True
        if resumable and step % cfg.checkpoint_every == 0 and not stop:
            run.checkpoint(resumable)
    run.bar.close()
    run.divergence.check()

    if root is not None:
        _unshard(objective, root, host_model, state.best_weights if keep_best else None)
    elif keep_best and state.best_weights is not None:
        objective.model.load_state_dict(state.best_weights)
    if checkpoint_dir and dist_info.is_main:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # finished: the outputs are what DVC caches
    return _result(state, keep_best, autocast_dtype, dist_info)


def _unshard(objective: Objective, root: torch.nn.Module, host_model: torch.nn.Module,
             best_weights: dict[str, torch.Tensor] | None) -> None:
    """Put the original model back into `objective` holding the sharded model's full weights (the best
    evaluation's with keep_best, which rank 0 holds and sends to the others first), in every process."""
    sharded = objective.model
    distributed.reshard(root)
    if best_weights is not None:
        distributed.load_full_state_dict_from_main(sharded, best_weights)
    host_model.load_state_dict(distributed.full_state_dict(sharded))
    objective.model = host_model


def _micro_batch_size(objective: Objective, cfg: TrainParams, world: int) -> int:
    micro = cfg.micro_batch_size or cfg.batch_size // world
    if cfg.batch_size % (micro * world):
        raise ValueError(f"batch_size {cfg.batch_size} is not a multiple of micro_batch_size {micro} x {world} "
                         "processes")
    if objective.eval_size < world:
        raise ValueError(f"the evaluation set ({objective.eval_size} examples) needs at least one example "
                         f"for each of the {world} processes")
    return micro


class _Divergence:
    """The first non-finite step as [step, loss, gradient norm], kept on the device (no per-step sync) and read
    where the loop syncs anyway; step -1: none yet. The lr of the steps since the last check stays on the host."""

    def __init__(self, step: int, dist_info: Dist, desc: str, lr_key: str):
        self.dist_info, self.desc, self.lr_key = dist_info, desc, lr_key
        self.first = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64, device=dist_info.device)
        self.device_step = torch.full((), float(step), dtype=torch.float64, device=dist_info.device)
        self.recent_lr: dict[int, float] = {}

    def record(self, step: int, loss_sum: torch.Tensor, targets: float, grad_norm: torch.Tensor, lr: float) -> None:
        """Note step `step` (counted from 1) if it is the first with a non-finite loss or gradient norm."""
        self.device_step += 1
        self.recent_lr[step] = lr
        first = (self.first[0] < 0) & ~(torch.isfinite(loss_sum) & torch.isfinite(grad_norm))
        self.first.copy_(torch.where(first, torch.stack([self.device_step, loss_sum / max(targets, 1.0), grad_norm]),
                                     self.first))

    def check(self) -> None:
        """Raise TrainingDiverged if any process saw a non-finite step; every process stops together."""
        flag = all_reduce_sum((self.first[:1] >= 0).double(), self.dist_info)
        if flag.item() == 0:
            self.recent_lr.clear()
            return
        bad_step, loss, norm = self.first.tolist()
        bad_lr = self.recent_lr.get(int(bad_step), math.nan)
        where = f"at step {int(bad_step)}" if bad_step >= 0 else "on another process"
        raise TrainingDiverged(
            f"{self.desc}: training diverged {where}: loss {loss:g}, gradient norm {norm:g} at lr {bad_lr:.3g}; "
            f"stopped, nothing saved. Lower {self.lr_key}; gradient clipping (max_grad_norm) and a longer warmup "
            "also steady training")


class _Run:
    """One run's moving parts: the objective as the loop calls it (under DDP or FSDP, compiled), the optimizer,
    the sampler and the state; `train` calls step, log, evaluate and checkpoint on their schedules."""

    def __init__(self, objective: Objective, cfg: TrainParams, dist_info: Dist, state: TrainState, *,
                 optimizer: torch.optim.Optimizer, sampler: StepSampler, seed: int, micro: int,
                 autocast_dtype: torch.dtype | None, tracker: Any, desc: str, lr_key: str, total_steps: int | None,
                 root: torch.nn.Module | None = None):
        self.objective, self.cfg, self.dist_info, self.state = objective, cfg, dist_info, state
        self.optimizer, self.sampler, self.seed, self.micro = optimizer, sampler, seed, micro
        self.autocast_dtype, self.tracker, self.desc = autocast_dtype, tracker, desc
        self.device = dist_info.device
        self.root = root  # the FSDP root unit (train.parallel: fsdp), else None
        self.runner: torch.nn.Module = objective
        if root is not None:
            self.runner = root
        elif dist_info.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.runner = DistributedDataParallel(objective, device_ids=device_ids)
        if cfg.compile:
            self.runner = torch.compile(self.runner)
        # Every process gets at least one evaluation batch: one with none would skip the collectives.
        self.eval_batch_size = min(2 * micro, math.ceil(objective.eval_size / dist_info.world))
        self.eval_padding = self._eval_padding() if root is not None else 0
        self.bar = tqdm(total=total_steps, initial=state.step, desc=desc, disable=not dist_info.is_main,
                        dynamic_ncols=True, unit="step", mininterval=1.0)
        # The loss is summed on the device and read back only when a row is logged or a checkpoint is written:
        # an `.item()` per step would make the CPU wait for the GPU and stop batch preparation overlapping it.
        self.pending_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.divergence = _Divergence(state.step, dist_info, desc, lr_key)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        moved = _to(batch, self.device)
        if self.cfg.compile:
            for key, dims in self.objective.dynamic_dims.items():
                for dim in dims if key in moved else ():
                    torch._dynamo.maybe_mark_dynamic(moved[key], dim)
        return moved

    def step(self, budget: Budget) -> float:
        """One optimizer step on this process's share of the step's examples; returns the step's lr."""
        cfg, objective, state, dist_info = self.cfg, self.objective, self.state, self.dist_info
        step_start = time.perf_counter()
        current_lr = set_lr(self.optimizer, lr_factor(budget.progress(state.step, state.tokens, state.seconds), cfg))

        per_rank = cfg.batch_size // dist_info.world
        mine = self.sampler.indices(state.step)[dist_info.rank * per_rank:(dist_info.rank + 1) * per_rank]
        batches = [objective.train_batch(mine[i:i + self.micro], state.step, self.seed)
                   for i in range(0, len(mine), self.micro)]
        counts = torch.tensor([sum(objective.count_targets(b) for b in batches),
                               sum(objective.count_tokens(b) for b in batches)], dtype=torch.float64)
        step_targets, step_tokens = all_reduce_sum(counts, dist_info).tolist()
        # DDP and FSDP average gradients over processes; scaling by `world` turns that average back into a sum.
        scale = dist_info.world / max(step_targets, 1.0)
        step_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            with self._gradient_sync(last):
                with autocast(self.device.type, self.autocast_dtype):
                    out = self.runner(self.to_device(batch))
                (out["loss_sum"] * scale).backward()
            step_loss += out["loss_sum"].detach().double()
        self.pending_loss += step_loss
        grad_norm = _grad_norm(objective.model.parameters(), cfg.max_grad_norm)
        grad_norm = _full_tensor(grad_norm).to(self.device, torch.float64)
        self.divergence.record(state.step + 1, step_loss, step_targets, grad_norm, current_lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

        state.step += 1
        state.tokens += int(step_tokens)
        window = state.window
        window.targets += sum(objective.count_targets(b) for b in batches)
        window.tokens += int(step_tokens)
        window.seconds += time.perf_counter() - step_start
        return current_lr

    def _gradient_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        """Whether this micro-batch's backward reduces gradients over the processes: only the step's last does."""
        if self.root is not None:
            distributed.set_gradient_sync(self.root, sync)
            return contextlib.nullcontext()
        if sync or not self.dist_info.enabled:
            return contextlib.nullcontext()
        return self.runner.no_sync()

    def log(self, current_lr: float) -> None:
        """A history row for the steps since the last one (loss over every process's targets)."""
        self.divergence.check()
        self._flush_loss()
        state, window = self.state, self.state.window
        loss_sum, targets = all_reduce_sum(torch.tensor([window.loss_sum, window.targets], dtype=torch.float64),
                                           self.dist_info).tolist()
        row = {"step": state.step, "loss": loss_sum / max(targets, 1), "lr": current_lr,
               "tokens": state.tokens, "tokens_per_s": window.tokens / max(window.seconds, 1e-9)}
        state.history.append(row)
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{current_lr:.2e}",
                             tok_s=f"{row['tokens_per_s']:.0f}", refresh=False)
        if self.tracker is not None:
            self.tracker.log_metrics({f"train/{k}": v for k, v in row.items() if k != "step"}, step=state.step)
        state.window = LogWindow()

    def evaluate(self, keep_best: bool) -> None:
        """An evaluation row; the best one so far (and with keep_best its weights) and the evaluations since."""
        self.divergence.check()
        objective, state = self.objective, self.state
        metrics = evaluate(objective, self.eval_batch_size, self.cfg.eval_batches, self.autocast_dtype,
                           dist_info=self.dist_info, forward=self._eval_forward())
        row = {"step": state.step, "epoch": epoch_position(state.step, objective.train_size, self.cfg.batch_size),
               **metrics}
        state.evals.append(row)
        improved = _is_better(metrics, state.best, objective)
        if improved:
            state.best, state.bad_evals = row, 0
            if keep_best:
                state.best_weights = self._weights_on_main()
        else:
            state.bad_evals += 1
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        self.note(f"{self.desc} eval step={state.step} {shown}{' *' if improved else ''}")
        if self.tracker is not None:
            self.tracker.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=state.step)

    def _eval_forward(self) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        """The evaluation's forward. Under FSDP every forward gathers parameters, a collective, so a process
        with fewer evaluation batches first runs its first batch `eval_padding` extra times (outputs dropped)."""
        padding = self.eval_padding

        def forward(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            nonlocal padding
            batch = self.to_device(batch)
            for _ in range(padding):
                self.runner(batch)
            padding = 0
            return self.runner(batch)

        return forward

    def _eval_padding(self) -> int:
        """How many evaluation batches this process has fewer than the process with the most."""
        mine = sum(1 for _ in itertools.islice(self.objective.eval_batches(
            self.eval_batch_size, self.dist_info.rank, self.dist_info.world), self.cfg.eval_batches))
        if mine == 0:
            raise ValueError(f"{self.desc}: process {self.dist_info.rank} has no evaluation batch; evaluate on a "
                             "larger held-out set or with fewer processes")
        most = distributed.all_reduce_max(torch.tensor([mine]), self.dist_info).item()
        return int(most - mine)

    def _weights_on_main(self) -> dict[str, torch.Tensor]:
        """The model's full weights on the host: under FSDP gathered to rank 0 only (others get an empty dict)."""
        if self.root is not None:
            distributed.reshard(self.root)
            return distributed.full_state_dict_on_main(self.objective.model)
        return {k: v.detach().to("cpu", copy=True) for k, v in self.objective.model.state_dict().items()}

    def checkpoint(self, directory: Path) -> None:
        self.divergence.check()  # a diverged state is never checkpointed
        self._flush_loss()  # the window is part of the checkpoint
        if self.root is not None:  # every process writes its shards
            distributed.reshard(self.root)
            ckpt.save_sharded(directory, self.state, self.objective.model, self.optimizer, self.dist_info)
            return
        if self.dist_info.is_main:
            ckpt.save(directory, self.state, self.objective.model, self.optimizer)
        barrier(self.dist_info)

    def note(self, message: str) -> None:
        if self.dist_info.is_main:
            self.bar.write(message)

    def _flush_loss(self) -> None:
        self.state.window.loss_sum += self.pending_loss.item()
        self.pending_loss.zero_()


def _result(state: TrainState, keep_best: bool, autocast_dtype: torch.dtype | None, dist_info: Dist) -> TrainResult:
    summary = {
        "steps": state.step,
        "tokens": state.tokens,
        "precision": str(autocast_dtype).replace("torch.", "") if autocast_dtype else "fp32",
        "world_size": dist_info.world,
    }
    telemetry = {
        "train_seconds": state.seconds,
        "tokens_per_s": _mean_throughput(state.history),
        "peak_memory_mb": _peak_memory_mb(dist_info.device),
    }
    best = state.best if keep_best else (state.evals[-1] if state.evals else None)
    return TrainResult(history=state.history, evals=state.evals, best=best, summary=summary, telemetry=telemetry)


def _grad_norm(parameters, max_norm: float | None) -> torch.Tensor:
    """The total gradient norm (of the gradients every process reduced), clipped to max_norm when it is set."""
    parameters = list(parameters)
    if max_norm is not None:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    grads = [p.grad for p in parameters if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: measures without touching the gradients
        return torch.nn.utils.get_total_norm(grads)
    return torch.nn.utils.clip_grad_norm_(parameters, math.inf)


def _full_tensor(value: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP's sharded gradients' norm) as the plain tensor every process agrees on."""
    full = getattr(value, "full_tensor", None)
    return full() if full is not None else value


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
