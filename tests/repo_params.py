"""Typed params sections for tests, taken from the repository's params files (the schema has no defaults).

    tokenizer_params(vocab_size=300)       # params.yaml's tokenizer section with one value changed
    train_params(steps=4, precision="fp32")  # pretrain.train; naming a budget sets the other budgets to null
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path
from typing import Any

from lmpipe.config.clm_schema import ClmParams, load_clm_params
from lmpipe.config.schema import BUDGET_KEYS, Params, load_params

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _params() -> Params:
    return load_params(ROOT / "params.yaml")


@functools.cache
def _clm_params() -> ClmParams:
    return load_clm_params(ROOT / "clm" / "params.yaml")


def repo_params() -> Params:
    """A fresh copy of params.yaml, validated."""
    return copy.deepcopy(_params())


def repo_clm_params() -> ClmParams:
    return copy.deepcopy(_clm_params())


def _replace(section: Any, overrides: dict[str, Any]) -> Any:
    section = dataclasses.replace(copy.deepcopy(section), **overrides)
    if hasattr(section, "check"):
        section.check("test")
    return section


def tokenizer_params(**overrides: Any):
    return _replace(_params().tokenizer, overrides)


def model_params(**overrides: Any):
    return _replace(_params().model, overrides)


def finetune_params(section: str = "finetune", **overrides: Any):
    return _replace(getattr(_params(), section), overrides)


def lora_params(**overrides: Any):
    return _replace(_params().finetune.lora, overrides)


def train_params(**overrides: Any):
    """pretrain.train of params.yaml; a budget named in `overrides` replaces the file's."""
    if any(k in overrides for k in BUDGET_KEYS):
        overrides = {**dict.fromkeys(BUDGET_KEYS), **overrides}
    return _replace(_params().pretrain.train, overrides)


def clm_tokenizer_params(**overrides: Any):
    return _replace(_clm_params().tokenizer, overrides)


def gpt_params(**overrides: Any):
    return _replace(_clm_params().model, overrides)


def params_with(override: dict[str, Any]) -> Params:
    """params.yaml with the nested `override` merged in, validated (a budget replaces the section's budget)."""
    import yaml

    from lmpipe.config.schema import params_from_dict

    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    _merge(raw, override)
    return params_from_dict(raw)


def _merge(tree: dict[str, Any], override: dict[str, Any]) -> None:
    if any(k in override for k in BUDGET_KEYS):
        tree.update(dict.fromkeys(BUDGET_KEYS))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = value
