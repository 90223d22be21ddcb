"""LoRA fine-tuning through peft: targets, wrapping, and loading a saved adapter with its head."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn
from transformers import PreTrainedModel

from lmpipe.config.loader import ParamsError
from lmpipe.config.schema import LoraParams
from lmpipe.io import read_json
from lmpipe.models.load import load_classifier

HEAD_MODULES = ("pooler", "pre_classifier", "classifier", "score", "head")  # a classifier's head: trained, and saved with a LoRA adapter


def default_lora_targets(model: nn.Module) -> list[str]:
    """The attention query and value projections, under the names the architecture uses."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for pair in (["query", "value"], ["q_lin", "v_lin"], ["q_proj", "v_proj"], ["Wqkv"]):  # Wqkv: ModernBERT
        if set(pair) <= names:
            return pair
    raise ValueError(f"{type(model).__name__}: no known attention projections; set lora.target_modules")


def apply_lora(model: PreTrainedModel, cfg: LoraParams, path: str = "finetune.lora") -> nn.Module:
    """Wrap `model` in a peft LoRA model: adapters on the target modules; the head modules (pooler,
    classifier) are trained in full and saved with the adapter (modules_to_save)."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = cfg.target_modules or default_lora_targets(model)
    module_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in module_names]
    if missing:
        raise ParamsError(f"{path}.target_modules: {missing} name no module of {type(model).__name__}")
    heads = [h for h in HEAD_MODULES if any(n == h or n.endswith("." + h) for n, _ in model.named_modules())]
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                        target_modules=targets, modules_to_save=heads)
    return get_peft_model(model, config)


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def load_lora_classifier(base: str | Path, adapter: str | Path, label_names: list[str],
                         revision: str | None = None) -> nn.Module:
    """The base classifier with a saved adapter (and its head) applied, for inference or further training."""
    from peft import PeftModel

    saved = Path(adapter) / "labels.json"
    if saved.is_file() and read_json(saved) != label_names:
        raise ValueError(f"{adapter}: the adapter's labels {read_json(saved)} do not match the data's "
                         f"labels {label_names}")
    model = load_classifier(base, label_names, revision=revision)
    return PeftModel.from_pretrained(model, str(adapter))


def plain_model(model: nn.Module) -> PreTrainedModel:
    """A plain transformers model with the same function: LoRA merged into the weights (on a copy)."""
    model = getattr(model, "module", model)  # unwrap DDP
    if is_peft(model):
        return copy.deepcopy(model).merge_and_unload()
    return model
