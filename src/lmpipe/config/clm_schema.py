"""The typed schema of clm/params.yaml, the causal-LM (GPT-2 style) pipeline's params file.

It reuses the main schema's machinery (`load_params`, `_require`) and sections (`DataParams` for the
corpus, `TrainParams` for the engine, `TrackingParams`), so the same keys mean the same things in both
pipelines and every error names the key's full path before any stage does expensive work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lmpipe.config.loader import (
    _join,
    _require,
    build_params,
    read_params,
    require_heads_divide,
    require_positive,
    require_probability,
)
from lmpipe.config.schema import MAX_SEQUENCE_LENGTH, DataParams, TrackingParams, TrainParams, check_tokenizer_streaming

CLM_PARAMS_FILE = "clm/params.yaml"  # relative to the repository root, where the clm stages run (wdir: ..)


@dataclass
class ClmTokenizerParams:
    vocab_size: int  # byte-level BPE: 256 byte symbols + merges + the end-of-text token
    min_frequency: int
    end_of_text: str  # separates packed documents; generation stops at it
    heldout_fraction: float  # whole corpus documents held out for perplexity
    train_documents: int | None  # a seeded sample of the training documents trains the tokenizer; null: all
    workers: int  # processes encoding the corpus shards (the output is the same for any number)

    def check(self, path: str) -> None:
        check_tokenizer_streaming(self, path)
        _require(self.vocab_size >= 300, f"{path}.vocab_size", "must be >= 300 (256 bytes + merges + specials)")
        _require(self.min_frequency >= 1, f"{path}.min_frequency", "must be >= 1")
        _require(bool(self.end_of_text), f"{path}.end_of_text", "must not be empty")
        _require(0 < self.heldout_fraction < 0.5, f"{path}.heldout_fraction", "must be in (0, 0.5)")


@dataclass
class GPTParams:
    """A GPT-2 decoder from scratch (ignored when base_model is set, except context_length)."""

    layers: int
    width: int  # n_embd; the MLP is 4 x width, as in GPT-2
    heads: int
    context_length: int  # packed block length in tokens (n_positions of a new model)
    dropout: float  # residual, embedding and attention dropout
    init_std: float  # GPT-2's initializer_range

    def check(self, path: str) -> None:
        require_positive(self, path, "layers", "width", "heads")
        _require(8 <= self.context_length <= MAX_SEQUENCE_LENGTH, f"{path}.context_length",
                 f"must be in [8, {MAX_SEQUENCE_LENGTH:,}] (attention memory grows with its square)")
        require_heads_divide(self, path, "width")
        require_probability(self, path, "dropout")
        _require(0 < self.init_std < 1, f"{path}.init_std", "must be in (0, 1)")


@dataclass
class ClmPretrainParams:
    lr: float  # peak learning rate of the schedule
    train: TrainParams

    def check(self, path: str) -> None:
        _require(self.lr > 0, f"{path}.lr", "must be > 0")


@dataclass
class SamplingParams:
    """How evaluate-clm continues its prompts (the same knobs as the lmpipe-generate command)."""

    greedy: bool
    temperature: float
    top_k: int  # 0: off
    top_p: float  # 1.0: off
    max_new_tokens: int

    def check(self, path: str) -> None:
        _require(self.temperature > 0, _join(path, "temperature"), "must be > 0 (greedy decodes by argmax)")
        _require(self.top_k >= 0, _join(path, "top_k"), "must be >= 0 (0: off)")
        _require(0 < self.top_p <= 1, _join(path, "top_p"), "must be in (0, 1] (1: off)")
        _require(self.max_new_tokens > 0, _join(path, "max_new_tokens"), "must be > 0")


@dataclass
class ClmEvaluateParams:
    batch_size: int  # held-out blocks per forward pass
    max_batches: int | None  # cap on held-out batches; null: all of them
    precision: Literal["auto", "fp32", "bf16"]  # fp32: perplexities comparable across machines
    prompts: list[str]
    samples_per_prompt: int
    sampling: SamplingParams

    def check(self, path: str) -> None:
        _require(self.batch_size > 0, f"{path}.batch_size", "must be > 0")
        if self.max_batches is not None:
            _require(self.max_batches > 0, f"{path}.max_batches", "must be > 0 or null")
        _require(self.samples_per_prompt >= 0, f"{path}.samples_per_prompt", "must be >= 0")


@dataclass
class ClmParams:
    seed: int
    # null: a GPT-2 from scratch (model: sizes) with a BPE tokenizer trained on the corpus; otherwise continued
    # training of a Hugging Face causal-LM directory or hub id (gpt2), with its own tokenizer.
    base_model: str | None
    data: DataParams
    tokenizer: ClmTokenizerParams
    model: GPTParams
    pretrain: ClmPretrainParams
    evaluate: ClmEvaluateParams
    tracking: TrackingParams

    def check(self, path: str = "") -> None:
        _require(self.seed >= 0, "seed", "must be >= 0")
        if self.base_model is not None:
            _require(bool(self.base_model.strip()), "base_model", "must be a directory, a hub id or null")
            looks_local = self.base_model.startswith((".", "/", "~")) or Path(self.base_model).exists()
            if looks_local:
                _require(Path(self.base_model).expanduser().is_dir(), "base_model",
                         f"directory not found: {self.base_model}")
        _require(self.evaluate.sampling.max_new_tokens < self.model.context_length, "evaluate.sampling.max_new_tokens",
                 f"must be < model.context_length ({self.model.context_length})")


def load_clm_params(path: str | Path = CLM_PARAMS_FILE, overrides: dict[str, Any] | None = None) -> ClmParams:
    """Read, coerce and validate the causal-LM params file; `overrides` maps dotted keys to values."""
    return read_params(path, ClmParams, overrides)


def clm_params_from_dict(raw: dict[str, Any]) -> ClmParams:
    return build_params(raw, ClmParams)
