"""Faster CPU training for Hugging Face encoders: cheap dropout masks, bf16 matmul attention, and fewer memory
passes in ModernBERT's attention and GeGLU blocks.

Why (bench/RESULTS.md has the measurements): torch's CPU dropout draws one mt19937 number per element on one
thread (`bernoulli_`, a large share of a pretraining step), and SDPA with dropout > 0 takes its math path,
which upcasts q, k and v to fp32. Here a dropout mask takes one 16-bit lane of a 64-bit draw per
element, drawn and compared by numpy in parallel threads, and attention runs its matmuls and softmax in the
autocast dtype (the softmax computes in fp32 internally). Mask seeds come from torch's global generator, so
seeding and checkpointed RNG states keep runs reproducible and resumable.

On a CPU every elementwise op is a pass over memory. ModernBERT's rotary embedding makes ~16 such passes over q
and k (fp32 copies, `rotate_half`'s cat, casts back), and autograd concatenates the GeGLU gradients; two
autograd functions below rotate in 3 passes in the autocast dtype and write gradients in place.

Only the modules change: parameters and the saved Hugging Face directory are exactly those of the original
model (the attention function is chosen at run time, not written to config.json).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.engine.accel.transformers_compat import patches_supported

log = logging.getLogger(__name__)


ATTENTION_NAME = "lmpipe_cpu"


_LANE_BITS = 16


_RANDOM_STREAMS = 4  # fixed, so a seed gives the same masks on any number of cores


_PARALLEL_MIN_DRAWS = 1 << 14


_INT_TYPES = {2: (torch.int16, np.int16), 4: (torch.int32, np.int32), 8: (torch.int64, np.int64)}


_random_pool: ThreadPoolExecutor | None = None


def _forget_random_pool() -> None:
    global _random_pool
    _random_pool = None  # a forked child has none of the parent's threads


os.register_at_fork(after_in_child=_forget_random_pool)


def _fill_keep_mask(out: np.ndarray, start: int, seed: int, draws: int, threshold: int, scale_bits: int) -> None:
    """out[start: start + 4 * draws] = scale_bits where a random int16 lane >= threshold, else 0 (numpy's SFC64
    generator and ufuncs release the GIL, so streams fill in parallel)."""
    lanes = np.random.SFC64(seed).random_raw(draws).view(np.int16)[: out.size - start]
    np.multiply(np.greater_equal(lanes, threshold), scale_bits, out=out[start: start + lanes.size])


@torch.compiler.disable  # numpy and threads: runs eagerly, a clean graph break under torch.compile
def dropout_keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A keep-mask already scaled by 1/(1-p), from one random 16-bit lane per element (four per 64-bit draw).

    The drop probability is round(p * 2^16) / 2^16 (p = 0.1 gives 0.100006). On the CPU the mask is written
    as the bit pattern of 0 or the scale in x's dtype by _RANDOM_STREAMS numpy SFC64 streams in parallel
    threads (faster than torch's single-threaded mt19937 `random_` plus torch's compare and casts here).
    The streams' seeds come from torch's global generator, so torch.manual_seed and the checkpointed torch RNG
    state still reproduce every mask."""
    global _random_pool
    threshold = int(round(p * 2**_LANE_BITS)) - 2 ** (_LANE_BITS - 1)
    scale = 1.0 / (1.0 - p)
    if x.device.type != "cpu" or x.dtype.itemsize not in _INT_TYPES:
        # from=int64 min with no `to` draws all 64 bits; the default range leaves the sign bit 0
        bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device).random_(-2**63, None)
        keep = bits.view(torch.int16)[: x.numel()].view(x.shape) >= threshold
        return keep.view(torch.uint8).to(x.dtype).mul_(scale)
    int_type, np_int_type = _INT_TYPES[x.dtype.itemsize]
    scale_bits = np_int_type(torch.tensor(scale, dtype=x.dtype).view(int_type).item())
    mask = torch.empty(x.shape, dtype=int_type)
    out = mask.view(-1).numpy()
    draws = (x.numel() + 3) // 4
    streams = _RANDOM_STREAMS if draws >= _PARALLEL_MIN_DRAWS else 1
    seeds = [seed % 2**64 for seed in torch.empty(streams, dtype=torch.int64).random_(-2**63, None).tolist()]
    sizes = [draws // streams + (i < draws % streams) for i in range(streams)]
    starts = [4 * sum(sizes[:i]) for i in range(streams)]
    if streams == 1:
        _fill_keep_mask(out, 0, seeds[0], draws, threshold, scale_bits)
    else:
        if _random_pool is None:
            _random_pool = ThreadPoolExecutor(min(streams, torch.get_num_threads()), "lmpipe-dropout")
        list(_random_pool.map(_fill_keep_mask, [out] * streams, starts, seeds, sizes, [threshold] * streams,
                              [scale_bits] * streams))
    return mask.view(x.dtype)


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
    """Attention as two matmuls in the input dtype, a softmax and the cheap dropout mask.

    The softmax runs on the scores' dtype: torch's CPU softmax computes bf16 inputs in fp32 and rounds once, so
    the forward equals an fp32 softmax of the (already bf16) scores; only its backward reads the rounded
    probabilities. Same signature and output layout ([batch, seq, heads, head_dim]) as transformers'
    attention functions."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3))
    if scaling != 1.0:
        scores = scores * scaling
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
            mask = attention_mask[..., : key.shape[-2]]
            scores = scores + mask.clamp(min=torch.finfo(scores.dtype).min).to(scores.dtype)
    probs = torch.softmax(scores, dim=-1)
    if dropout > 0 and module.training:
        probs = probs * dropout_keep_mask(probs, dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor, out: torch.Tensor) -> None:
    """out = x * cos + swap_halves(x) * signed_sin in x's dtype: signed_sin [-s1, s2] gives the rotation,
    [s2, -s1] its transpose (the backward). x, out: [..., D] in any layout; cos, signed_sin broadcastable to x.

    Under bf16 autocast this rotates in bf16 (as transformers' Llama does), where ModernBERT's own code upcasts
    q and k to fp32: 3 passes instead of ~8, and a mean relative difference of ~0.2% against the fp32 result."""
    half = x.shape[-1] // 2
    cos, signed_sin = cos.to(x.dtype), signed_sin.to(x.dtype)
    torch.mul(x, cos, out=out)
    out[..., :half].addcmul_(x[..., half:], signed_sin[..., :half])
    out[..., half:].addcmul_(x[..., :half], signed_sin[..., half:])


def _signed_sins(sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`_rotate`'s sin factors for the rotation ([-s1, s2]) and for its transpose ([s2, -s1])."""
    first, second = sin.chunk(2, dim=-1)
    return torch.cat((-first, second), dim=-1), torch.cat((second, -first), dim=-1)


class _RotaryHeads(torch.autograd.Function):
    """A projection's output [B, S, P*H*D] (P blocks of H heads, e.g. ModernBERT's fused q, k, v) -> P contiguous
    [B, H, S, D] tensors. Block i is rotated (`_rotate`) and multiplied by scales[i], or copied where scales[i]
    is None (v). E.g. scales (head_dim ** -0.5, 1.0, None): q rotated with the attention scaling folded in (so
    the scores need no extra pass), k rotated, v copied. cos, sin: [B or 1, S, D].
    The backward writes all blocks' gradients into one [B, S, P*H*D] tensor."""

    @staticmethod
    def forward(ctx, projected: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int,
                scales: tuple[float | None, ...]):
        batch, seq, _ = projected.shape
        x = projected.view(batch, seq, len(scales), heads, -1)
        cos = cos.float().unsqueeze(2)  # [B or 1, S, 1, D]
        sin, sin_transposed = _signed_sins(sin.float().unsqueeze(2))
        outputs = []
        for index, scale in enumerate(scales):
            out = torch.empty(batch, heads, seq, x.shape[-1], dtype=projected.dtype, device=projected.device)
            if scale is None:
                out.transpose(1, 2).copy_(x[:, :, index])
            else:
                _rotate(x[:, :, index], cos * scale, sin * scale, out.transpose(1, 2))
            outputs.append(out)
        ctx.save_for_backward(cos, sin_transposed)
        ctx.scales = scales
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        cos, sin_transposed = ctx.saved_tensors
        present = next(g for g in grads if g is not None)
        batch, heads, seq, dim = present.shape
        grad = torch.empty(batch, seq, len(grads), heads, dim, dtype=present.dtype, device=present.device)
        for index, (g, scale) in enumerate(zip(grads, ctx.scales)):
            if g is None:
                grad[:, :, index].zero_()
            elif scale is None:
                grad[:, :, index].copy_(g.transpose(1, 2))
            else:
                _rotate(g.transpose(1, 2), cos * scale, sin_transposed * scale, grad[:, :, index])
        return grad.view(batch, seq, -1), None, None, None, None


class _GeGLUDropout(torch.autograd.Function):
    """dropout(gelu(input) * gate) from the [..., 2I] output of ModernBERT's Wi (input, gate = its two halves).
    The GELU and its backward run on a contiguous copy of `input` (torch's CPU kernels are much slower on the
    strided half), and the backward writes both halves' gradients into one [..., 2I] tensor, where autograd's
    chunk backward would concatenate."""

    @staticmethod
    def forward(ctx, projected: torch.Tensor, p: float, approximate: str):
        inputs, gate = projected.chunk(2, dim=-1)
        inputs = inputs.contiguous()
        activated = F.gelu(inputs, approximate=approximate)
        out = activated * gate
        mask = None
        if p > 0:
            mask = dropout_keep_mask(out, p)
            out.mul_(mask)
        ctx.approximate = approximate
        ctx.save_for_backward(inputs, gate, activated, mask)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        inputs, gate, activated, mask = ctx.saved_tensors
        if mask is not None:
            grad_out = grad_out * mask
        grad = grad_out.new_empty(*grad_out.shape[:-1], 2 * grad_out.shape[-1])
        grad_inputs, grad_gate = grad.chunk(2, dim=-1)
        torch.mul(grad_out, activated, out=grad_gate)
        grad_inputs.copy_(torch.ops.aten.gelu_backward(grad_out * gate, inputs, approximate=ctx.approximate))
        return grad, None, None


def _gelu_approximation(act: nn.Module) -> str | None:
    """torch's name for `act`'s GELU ('none' or 'tanh'), or None when it is another function."""
    from transformers.activations import GELUActivation

    if isinstance(act, nn.GELU):
        return act.approximate
    if type(act) is GELUActivation and act.act is F.gelu:
        return "none"
    return None


@functools.cache  # one pair of subclasses per process, so every swapped model shares them
def _modernbert_fast_classes() -> dict[type, type]:
    """ModernBERT's attention and MLP classes -> subclasses whose forward uses the functions above (same
    parameters, same values up to float rounding). Swapped by class, so state dicts and saving are unchanged."""
    from transformers.models.modernbert.modeling_modernbert import ModernBertAttention, ModernBertMLP

    class FastModernBertAttention(ModernBertAttention):
        def forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
            if self.config._attn_implementation != ATTENTION_NAME or position_embeddings is None:
                return super().forward(hidden_states, position_embeddings, attention_mask, **kwargs)
            cos, sin = position_embeddings
            query, key, value = _RotaryHeads.apply(self.Wqkv(hidden_states), cos, sin,
                                                   self.config.num_attention_heads, (self.head_dim ** -0.5, 1.0, None))
            attended, _ = matmul_attention(self, query, key, value, attention_mask, scaling=1.0,
                                           dropout=self.attention_dropout if self.training else 0.0)
            return self.out_drop(self.Wo(attended.reshape(*hidden_states.shape[:-1], -1))), None

    class FastModernBertMLP(ModernBertMLP):
        def forward(self, hidden_states):
            approximate = _gelu_approximation(self.act)
            if approximate is None:
                return super().forward(hidden_states)
            p = self.drop.p if self.training and isinstance(self.drop, (nn.Dropout, FastDropout)) else 0.0
            return self.Wo(_GeGLUDropout.apply(self.Wi(hidden_states), p, approximate))

    return {ModernBertAttention: FastModernBertAttention, ModernBertMLP: FastModernBertMLP}


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
    maps each one afresh and the kernel zeroes every page at first touch, a measurable share of a pretraining
    step (bench/RESULTS.md). Returns False where this is not glibc (nothing changes there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**30))


def use_fast_cpu_kernels(model: nn.Module, fuse_blocks: bool = True) -> int:
    """Swap `model`'s dropouts and attention for the CPU versions above (and, with `fuse_blocks`, ModernBERT's
    attention and MLP blocks for their fused subclasses), in place, and keep freed memory in the process
    (`keep_freed_memory`); returns how many dropouts were swapped. Models that do not take a custom attention
    function keep their own (and still get the dropouts).

    Under torch.compile pass fuse_blocks=False: inductor fuses transformers' own blocks better than it traces
    the autograd functions (bench/RESULTS.md). Outside the tested transformers releases nothing is swapped
    (`transformers_compat`)."""
    if not patches_supported():
        return 0
    keep_freed_memory()
    swapped = 0
    fast_classes = _modernbert_fast_classes() if fuse_blocks else {}
    for module in list(model.modules()):
        fast = fast_classes.get(type(module))
        if fast is not None:
            module.__class__ = fast
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
