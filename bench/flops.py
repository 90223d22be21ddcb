"""FLOPs of a masked-LM pretraining step, and the machine's matmul peak to measure them against.

"Useful" model FLOPs, the same count for every row (attention and matmuls only, as usual):

    per optimizer step = 6 * N_enc * T  +  12 * L * S * H * T  +  6 * (N_head + H * V) * M

    T = tokens in the step (batch x seq; packed blocks, no padding), M = expected masked positions in the step
    (mask_rate x non-special tokens), N_enc = parameters of the encoder layers (embeddings excluded),
    N_head = the MLM head's transform (dense + LayerNorm), H * V = the vocabulary projection (tied to the word
    embeddings), L layers, S sequence length, H hidden size. 6 = 2 (multiply-add) x 3 (forward + backward).

The vocabulary projection is counted only at the masked positions, which is all that MLM needs: our MaskedLM
objective computes it only there, the Hugging Face `*ForMaskedLM` classes compute it at every position. The FLOPs
each engine really executes are counted too, as "executed": the Trainer's head at all T positions; ours less than
"useful", as its last layer runs queries, attention output and MLP only at the masked positions
(engine/accel/sparse_mlm.py).
"""

from __future__ import annotations

import time

# Dense bf16 tensor-core peak from the vendor's data sheet (no sparsity), for model-FLOPs utilisation (MFU).
SPEC_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H200": 989.4,
                    "A100": 312.0, "L4": 121.0, "A10G": 70.0, "RTX 4090": 165.2}


def flop_model(params, vocab: int, non_special_fraction: float) -> dict:
    """Parameter counts and FLOPs per optimizer step (useful, and executed by each engine) for `params`."""
    import torch

    from lmpipe.models.build import MASKED_LM_CLASSES, encoder_config

    m = params.model
    tokenizer = type("Vocab", (), {"__len__": lambda self: vocab, "pad_token_id": 0, "cls_token_id": 2,
                                   "sep_token_id": 3})()  # what encoder_config reads from a tokenizer
    with torch.device("meta"):
        model = MASKED_LM_CLASSES[m.architecture][1](encoder_config(m, tokenizer))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    n_enc = count(model.base_model) - count(model.base_model.embeddings)  # layers (+ a final norm)
    n_head = count(model) - count(model.base_model) - vocab  # the MLM head's transform (decoder tied; bias out)
    h, layers = m.hidden, m.layers
    s = params.tokenizer.max_length
    b = params.pretrain.train.batch_size
    tokens = b * s
    masked = params.pretrain.mask_rate * non_special_fraction * tokens
    body = 6 * n_enc * tokens + 12 * layers * s * h * tokens
    head_per_position = 6 * (n_head + h * vocab)
    # our sparse last layer (engine/accel/sparse_mlm.py): at the unselected positions only its keys and values
    # (and the norm before them) are computed
    if m.architecture == "modernbert":
        last = model.base_model.layers[-1]
        n_everywhere = count(last.attn.Wqkv) * 2 // 3 + count(last.attn_norm)  # Wqkv's key and value rows
    else:
        last = model.base_model.encoder.layer[-1]
        attention = last.attention
        n_everywhere = count(attention.self.key) + count(attention.self.value) + (
            count(attention.LayerNorm) if hasattr(attention, "LayerNorm") else 0)
    skipped = (tokens - masked) * (6 * (count(last) - n_everywhere) + 12 * s * h)
    return {
        "n_encoder": n_enc, "n_head_transform": n_head, "n_vocab_projection": h * vocab,
        "n_total": count(model), "tokens_per_step": tokens, "masked_per_step": masked,
        "useful_per_step": body + head_per_position * masked,
        "executed_ours_per_step": body - skipped + head_per_position * masked,
        "executed_trainer_per_step": body + head_per_position * tokens,
    }


def matmul_peak(dtype_name: str, n: int, seconds: float, device: str = "cpu") -> float:
    """TFLOP/s of repeated n x n @ n x n matmuls in `dtype` (best of several timed windows)."""
    import torch

    dtype = getattr(torch, dtype_name)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        torch.matmul(a, b)
    sync()
    flop = 2.0 * n ** 3
    once = time.perf_counter()
    torch.matmul(a, b)
    sync()
    reps = max(2, int(seconds / 4 / max(time.perf_counter() - once, 1e-6)))
    best = 0.0
    for _ in range(4):
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        sync()
        best = max(best, flop * reps / (time.perf_counter() - t))
    return best / 1e12
