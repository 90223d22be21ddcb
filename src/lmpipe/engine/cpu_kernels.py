"""Faster CPU training for Hugging Face encoders: cheap dropout masks and bf16 matmul attention.

Measured on the 2-core AVX-512-bf16 CPU (bench/RESULTS.md): torch's CPU dropout draws one mt19937 number per
element on one thread (`bernoulli_`, a quarter of a pretraining step), and SDPA with dropout > 0 takes its
math path, which upcasts q, k and v to fp32. Here a dropout mask costs one 64-bit draw per 4 elements and
attention runs its two matmuls in the autocast dtype with an fp32 softmax. Both draw from torch's global
generator, so seeding and checkpointed RNG states keep runs reproducible and resumable.

Only the modules change: parameters and the saved Hugging Face directory are exactly those of the original
model (the attention function is chosen at run time, not written to config.json).
"""

from __future__ import annotations

import ctypes
import logging
import sys

import torch
from torch import nn

log = logging.getLogger(__name__)
ATTENTION_NAME = "lmpipe_cpu"
_LANE_BITS = 15


def dropout_keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A keep-mask already scaled by 1/(1-p): four 15-bit lanes of one int64 draw per element quadruple
    (15, because `random_()` leaves an int64's sign bit 0, so the top lane has only 15 random bits).

    The drop probability is round(p * 2^15) / 2^15 (p = 0.1 gives 0.100006)."""
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
    lanes = bits.view(torch.int16)[:n].view(x.shape)
    keep = (lanes & 0x7FFF) >= int(round(p * 2**_LANE_BITS))
    return keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class FastDropout(nn.Module):
    """`nn.Dropout` with `dropout_keep_mask` (same p, same train/eval behaviour)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * dropout_keep_mask(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def matmul_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs) -> tuple[torch.Tensor, None]:
    """Attention as two matmuls in the input dtype, an fp32 softmax and the cheap dropout mask.

    Same signature and output layout ([batch, seq, heads, head_dim]) as transformers' attention functions."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)).float() * scaling
    is_causal = kwargs.get("is_causal")
    is_causal = getattr(module, "is_causal", False) if is_causal is None else is_causal
    if attention_mask is None and is_causal and query.shape[2] > 1:
        # transformers skips building the mask of a decoder when SDPA's is_causal can stand in for it
        q_len, k_len = query.shape[2], key.shape[2]
        future = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).triu(k_len - q_len + 1)
        scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask[..., : key.shape[-2]].float()
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    if dropout > 0 and module.training:
        probs = probs * dropout_keep_mask(probs, dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, matmul_attention)
    # Without a mask function registered under the same name transformers passes no mask at all.
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve blocks up to 32 MiB from its heap and not to return freed memory to the
    system. A training step allocates and frees the same large activations every step; by default glibc
    maps each one afresh and the kernel zeroes every page at first touch (measured here: 6-8% of a
    pretraining step). Returns False where this is not glibc (nothing changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**30))


def use_fast_cpu_kernels(model: nn.Module) -> int:
    """Swap `model`'s dropouts and attention for the CPU versions above, in place, and keep freed memory in
    the process (`keep_freed_memory`); returns how many dropouts were swapped. Models that do not take a custom
    attention function keep their own (and still get the dropouts)."""
    keep_freed_memory()
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                setattr(module, name, FastDropout(child.p).train(child.training))
                swapped += 1
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        _register()
        try:
            setter(ATTENTION_NAME)
        except (ValueError, NotImplementedError) as error:  # an architecture without the attention interface
            log.info("fast CPU attention not available for %s: %s", type(model).__name__, error)
    return swapped
