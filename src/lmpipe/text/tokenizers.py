"""Tokenizer training (deterministic WordPiece for the encoder, byte-level BPE for the causal LM) and loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from lmpipe.config.clm_schema import ClmTokenizerParams
from lmpipe.config.schema import TokenizerParams


def train_tokenizer(texts: Iterable[str] | Iterable[list[str]], cfg: TokenizerParams) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer trained on `texts`, wrapped so `save_pretrained` writes tokenizer.json.

    Deterministic: the same texts and params give a byte-identical tokenizer.json in any process, with any
    thread count. The `tokenizers` trainer alone is not (tokenizers#1794): it numbers the continuation pieces
    (`##x`) in hash-map order and breaks ties between equally frequent merges by id, so each process learns a
    different vocabulary. Here a first pass with no merges finds the continuation alphabet, the real training
    reserves those pieces first, in sorted order (as special tokens, which the trainer numbers in the order
    given), and they are then turned back into ordinary vocabulary.
    """
    _require_reiterable(texts)
    sp = cfg.special_tokens
    specials = [sp.pad, sp.unk, sp.cls, sp.sep, sp.mask]
    alphabet = _new_wordpiece(cfg)
    alphabet.train_from_iterator(texts, trainer=trainers.WordPieceTrainer(
        vocab_size=0, special_tokens=specials, show_progress=False))
    continuation = sorted(t for t in alphabet.get_vocab() if t.startswith(CONTINUATION_PREFIX))
    tok = _new_wordpiece(cfg)
    trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                        special_tokens=specials + continuation, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok = _only_added_tokens(tok, specials)
    cls_id, sep_id = tok.token_to_id(sp.cls), tok.token_to_id(sp.sep)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{sp.cls} $A {sp.sep}",
        pair=f"{sp.cls} $A {sp.sep} $B:1 {sp.sep}:1",
        special_tokens=[(sp.cls, cls_id), (sp.sep, sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=sp.unk,
        pad_token=sp.pad,
        cls_token=sp.cls,
        sep_token=sp.sep,
        mask_token=sp.mask,
        model_max_length=cfg.max_length,
    )


CONTINUATION_PREFIX = "##"


def _new_wordpiece(cfg: TokenizerParams) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token=cfg.special_tokens.unk, continuing_subword_prefix=CONTINUATION_PREFIX))
    tok.normalizer = normalizers.BertNormalizer(lowercase=cfg.lowercase, strip_accents=cfg.lowercase or None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def _only_added_tokens(tok: Tokenizer, keep: Sequence[str]) -> Tokenizer:
    """The same tokenizer with every added token but `keep` turned into ordinary vocabulary (an added token is
    matched in raw text before normalisation and dropped by `skip_special_tokens`)."""
    state = json.loads(tok.to_str())
    state["added_tokens"] = [t for t in state["added_tokens"] if t["content"] in keep]
    return Tokenizer.from_str(json.dumps(state))


def _require_reiterable(texts: Iterable) -> None:
    """Training reads the texts (strings, or batches of strings: the trainer takes both) more than once: a list,
    or a collection such as corpus shards whose every iteration starts over, not a one-shot iterator."""
    if iter(texts) is texts:
        raise TypeError("tokenizer training reads the texts twice: pass a list or a re-iterable collection, "
                        "not an iterator")


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(path))


def train_bpe_tokenizer(texts: Iterable[str] | Iterable[list[str]], cfg: ClmTokenizerParams,
                        context_length: int) -> PreTrainedTokenizerFast:
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
