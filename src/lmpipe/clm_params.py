"""The typed schema of clm/params.yaml, the causal-LM (GPT-2 style) pipeline's params file.

It reuses the main schema's machinery (`load_params`, `_require`) and sections (`DataParams` for the
corpus, `TrainParams` for the engine, `TrackingParams`), so the same keys mean the same things in both
pipelines and every error names the key's full path before any stage does expensive work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .params import DataParams, TrackingParams, TrainParams, _require, load_params, params_from_dict

CLM_PARAMS_FILE = "clm/params.yaml"  # relative to the repository root, where the clm stages run (wdir: ..)


@dataclass
class ClmTokenizerParams:
    vocab_size: int = 4096  # byte-level BPE: 256 byte symbols + merges + the end-of-text token
    min_frequency: int = 2
    end_of_text: str = "<|endoftext|>"  # separates packed documents; generation stops at it
    heldout_fraction: float = 0.02  # whole corpus documents held out for perplexity

    def check(self, path: str) -> None:
        _require(self.vocab_size >= 300, f"{path}.vocab_size", "must be >= 300 (256 bytes + merges + specials)")
        _require(self.min_frequency >= 1, f"{path}.min_frequency", "must be >= 1")
        _require(bool(self.end_of_text), f"{path}.end_of_text", "must not be empty")
        _require(0 < self.heldout_fraction < 0.5, f"{path}.heldout_fraction", "must be in (0, 0.5)")


@dataclass
class GPTParams:
    """A GPT-2 decoder from scratch (ignored when base_model is set, except context_length)."""

    layers: int = 4
    width: int = 256  # n_embd; the MLP is 4 x width, as in GPT-2
    heads: int = 4
    context_length: int = 128  # packed block length in tokens (n_positions of a new model)
    dropout: float = 0.1  # residual, embedding and attention dropout
    init_std: float = 0.02  # GPT-2's initializer_range

    def check(self, path: str) -> None:
        for name in ("layers", "width", "heads"):
            _require(getattr(self, name) > 0, f"{path}.{name}", "must be > 0")
        _require(self.context_length >= 8, f"{path}.context_length", "must be >= 8")
        _require(self.width % self.heads == 0, f"{path}.width",
                 f"must be divisible by {path}.heads ({self.width} % {self.heads} != 0)")
        _require(0 <= self.dropout < 1, f"{path}.dropout", "must be in [0, 1)")
        _require(0 < self.init_std < 1, f"{path}.init_std", "must be in (0, 1)")


@dataclass
class ClmPretrainParams:
    train: TrainParams = field(default_factory=lambda: TrainParams(batch_size=32, steps=200, lr=1e-3))

    def check(self, path: str) -> None:
        self.train.check(f"{path}.train", needs_lr=True)


@dataclass
class SamplingParams:
    """How evaluate-clm continues its prompts (the same knobs as the lmpipe-generate command)."""

    greedy: bool = False
    temperature: float = 0.8
    top_k: int = 50  # 0: off
    top_p: float = 0.95  # 1.0: off
    max_new_tokens: int = 40

    def check(self, path: str) -> None:
        _require(self.temperature > 0, f"{path}.temperature", "must be > 0")
        _require(self.top_k >= 0, f"{path}.top_k", "must be >= 0 (0: off)")
        _require(0 < self.top_p <= 1, f"{path}.top_p", "must be in (0, 1] (1: off)")
        _require(self.max_new_tokens > 0, f"{path}.max_new_tokens", "must be > 0")


@dataclass
class ClmEvaluateParams:
    batch_size: int = 32  # held-out blocks per forward pass
    max_batches: int | None = None  # cap on held-out batches; null: all of them
    precision: Literal["auto", "fp32", "bf16"] = "fp32"  # fp32: perplexities comparable across machines
    prompts: list[str] = field(default_factory=lambda: [
        "The film", "I expected a thriller, but", "Overall, the acting was"])
    samples_per_prompt: int = 2
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def check(self, path: str) -> None:
        _require(self.batch_size > 0, f"{path}.batch_size", "must be > 0")
        if self.max_batches is not None:
            _require(self.max_batches > 0, f"{path}.max_batches", "must be > 0 or null")
        _require(self.samples_per_prompt >= 0, f"{path}.samples_per_prompt", "must be >= 0")


@dataclass
class ClmParams:
    seed: int = 42
    # null: a GPT-2 from scratch (model: sizes) with a BPE tokenizer trained on the corpus; otherwise continued
    # training of a Hugging Face causal-LM directory or hub id (gpt2), with its own tokenizer.
    base_model: str | None = None
    data: DataParams = field(default_factory=DataParams)
    tokenizer: ClmTokenizerParams = field(default_factory=ClmTokenizerParams)
    model: GPTParams = field(default_factory=GPTParams)
    pretrain: ClmPretrainParams = field(default_factory=ClmPretrainParams)
    evaluate: ClmEvaluateParams = field(default_factory=ClmEvaluateParams)
    tracking: TrackingParams = field(default_factory=lambda: TrackingParams(experiment="lmpipe-clm"))

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
    return load_params(path, overrides, schema=ClmParams)


def clm_params_from_dict(raw: dict[str, Any]) -> ClmParams:
    return params_from_dict(raw, schema=ClmParams)
