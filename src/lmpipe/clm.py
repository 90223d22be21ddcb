"""Causal-LM building blocks: a byte-level BPE tokenizer, packed blocks, GPT-2 models, held-out evaluation.

Used by the clm pipeline's stages (stages/*_clm.py) and the tests. Everything saves and loads as plain Hugging
Face directories (AutoTokenizer, AutoModelForCausalLM).
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel,
                          PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast)

from .clm_params import ClmTokenizerParams, GPTParams
from .engine.causal_lm import CausalLM
from .tokenization import encode_texts


def train_bpe_tokenizer(texts: Sequence[str], cfg: ClmTokenizerParams, context_length: int) -> PreTrainedTokenizerFast:
    """GPT-2's tokenizer design (byte-level BPE, no normaliser, no unknown token) trained on `texts`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                  special_tokens=[cfg.end_of_text], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # every byte encodes
    tok.train_from_iterator(texts, trainer=trainer)
    eot = cfg.end_of_text
    # As GPT-2: end-of-text is bos, eos and (for batched generation) pad; nothing is added when encoding.
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot, unk_token=eot, pad_token=eot,
                                   model_max_length=context_length)


def load_base_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a causal-LM directory or hub id; it must have an end-of-text (eos) token."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
    except (OSError, ValueError) as error:
        raise ValueError(f"base_model {base_model!r}: cannot load its tokenizer: {error}") from None
    if tokenizer.eos_token_id is None:
        raise ValueError(f"base_model {base_model!r}: its tokenizer has no eos_token to separate documents")
    return tokenizer


def base_context_length(base_model: str) -> int:
    """The longest sequence the base model's positions allow (n_positions / max_position_embeddings)."""
    try:
        config = AutoConfig.from_pretrained(base_model)
    except (OSError, ValueError) as error:
        raise ValueError(f"base_model {base_model!r}: cannot load its config: {error}") from None
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    return 2 ** 31  # relative positions (e.g. rotary): no hard limit


def pack_documents(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_length: int,
                   what: str = "the corpus") -> np.ndarray:
    """One stream `eot doc1 eot doc2 eot ...` cut into blocks of block_length tokens (the tail is dropped).

    Every document is preceded by end-of-text, so its first token is predicted from a document start, as an
    empty prompt is at generation time; its last token predicts end-of-text, which is how generation stops."""
    eot = tokenizer.eos_token_id
    stream: list[int] = [eot]
    for ids in encode_texts(tokenizer, texts, None, special_tokens=False):
        if ids:
            stream.extend(ids)
            stream.append(eot)
    n_blocks = len(stream) // block_length
    if n_blocks == 0:
        raise ValueError(f"{what} hold {len(stream)} tokens, fewer than one block of {block_length} "
                         "(lower model.context_length or give more documents)")
    return np.asarray(stream[:n_blocks * block_length], dtype=np.int32).reshape(n_blocks, block_length)


def build_gpt2(cfg: GPTParams, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 with the sizes from params (MLP 4 x width, tied input/output embeddings)."""
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.context_length, n_embd=cfg.width,
                        n_layer=cfg.layers, n_head=cfg.heads, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                        attn_pdrop=cfg.dropout, initializer_range=cfg.init_std,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")


def load_causal_lm(path: str, context_length: int | None = None) -> PreTrainedModel:
    """A causal LM from a directory or hub id (continued training, evaluation, generation), with SDPA attention."""
    if context_length is not None and context_length > base_context_length(path):
        raise ValueError(f"model.context_length {context_length} exceeds {path!r}'s {base_context_length(path)} positions")
    try:
        return AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r}: cannot load a causal language model: {error}") from None


@torch.no_grad()
def evaluate(objective: CausalLM, batch_size: int, max_batches: int | None = None,
             autocast_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Held-out metrics of `objective` (summed over fixed batches, one process): loss, perplexity, per byte."""
    objective.eval()
    device = next(objective.model.parameters()).device
    sums: dict[str, float] = {}
    context = (torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
    with context:
        for i, batch in enumerate(objective.eval_batches(batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            out = objective({k: v.to(device) for k, v in batch.items()})
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + float(value.double())
    return objective.metrics(sums)


def unigram_loss(train_blocks: np.ndarray, eval_blocks: np.ndarray, vocab_size: int) -> float:
    """Held-out loss (nats per target token) of the training set's add-one-smoothed unigram distribution:
    the level a model must beat to use any context."""
    counts = np.bincount(train_blocks[:, 1:].reshape(-1), minlength=vocab_size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-log_probs[eval_blocks[:, 1:].reshape(-1)].mean())


def describe(model: PreTrainedModel) -> str:
    c = model.config
    layers = getattr(c, "n_layer", getattr(c, "num_hidden_layers", "?"))
    width = getattr(c, "n_embd", getattr(c, "hidden_size", "?"))
    return f"{type(model).__name__} {layers} layers x {width}, vocab {c.vocab_size}"
