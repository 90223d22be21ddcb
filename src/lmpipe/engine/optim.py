"""Optimizers and the learning-rate schedule, which follows the training budget's progress (0 -> 1)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from lmpipe.config.schema import TrainParams


def param_groups(model: nn.Module, lr: float, weight_decay: float,
                 lr_scale: Callable[[str], float] | None = None) -> list[dict]:
    """Trainable parameters grouped by (weight decay, learning rate).

    Biases and normalisation weights (tensors of one dimension) get no weight decay. `lr_scale(name)`
    multiplies a parameter's learning rate (layer-wise decay, head multipliers).
    """
    groups: dict[tuple[float, float], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = weight_decay if param.ndim >= 2 else 0.0
        group_lr = lr * (lr_scale(name) if lr_scale else 1.0)
        group = groups.setdefault((decay, group_lr), {"params": [], "names": [], "weight_decay": decay,
                                                       "lr": group_lr, "base_lr": group_lr})
        group["params"].append(param)
        group["names"].append(name)
    if not groups:
        raise ValueError("no trainable parameters: the strategy froze everything")
    return list(groups.values())


def build_optimizer(groups: list[dict], cfg: TrainParams, device: torch.device) -> torch.optim.Optimizer:
    # Fused kernels where torch has them for the device (CUDA; CPU since 2.4), else the multi-tensor path.
    fast = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, betas=tuple(cfg.betas), **fast)
    if cfg.optimizer == "adam":
        # Adam's weight decay is L2 added to the gradient (unlike AdamW's decoupled decay), as in torch.
        return torch.optim.Adam(groups, betas=tuple(cfg.betas), **fast)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, foreach=True)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, momentum=cfg.momentum, foreach=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def lr_factor(progress: float, cfg: TrainParams) -> float:
    """Linear warmup over the first `warmup` of the budget, then linear/cosine decay to min_lr_ratio."""
    progress = min(max(progress, 0.0), 1.0)
    if cfg.warmup > 0 and progress < cfg.warmup:
        return progress / cfg.warmup
    if cfg.schedule == "constant":
        return 1.0
    decay = (progress - cfg.warmup) / max(1.0 - cfg.warmup, 1e-12)
    if cfg.schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * decay))
    else:
        shape = 1.0 - decay
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]
