"""The params schema: the real params.yaml loads; bad values fail with their key path, before any work."""

import re
from pathlib import Path

import pytest
import yaml

from lmpipe.params import ParamsError, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_repo_params_yaml_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.pretrain.train.lr > 0
    assert params.freeze_finetune.strategy == "frozen_encoder"


def test_every_schema_key_is_spelled_out_in_params_yaml():
    """params.yaml documents every knob: no key of the schema is left to a hidden default."""
    import dataclasses

    from lmpipe.params import Params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())

    def missing(node, tree, path):
        for f in dataclasses.fields(node):
            key = f"{path}{f.name}"
            value = getattr(node, f.name)
            if f.name not in tree:
                if key.split(".")[-2:-1] != ["train"]:  # fine-tuning sections omit unused optimiser knobs
                    yield key
            elif dataclasses.is_dataclass(value):
                yield from missing(value, tree[f.name], key + ".")

    assert list(missing(Params(), raw, "")) == []


def test_dvc_written_exponent_is_read_as_float(tmp_path):
    # `dvc exp run -S lr=2e-5` writes this back; PyYAML reads `2e-05` as a string.
    text = re.sub(r"(?m)^lr: \S+", "lr: 2e-05", (ROOT / "params.yaml").read_text(), count=1)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert yaml.safe_load(text)["lr"] == "2e-05"
    params = load_params(path)
    assert params.lr == pytest.approx(2e-5) and isinstance(params.lr, float)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"lr": -1e-5}, "lr: must be > 0"),
        ({"lr": "fast"}, "lr: expected float, got 'fast'"),
        ({"pretrain": {"mask_rate": 1.0}}, "pretrain.mask_rate: must be in (0, 1)"),
        ({"model": {"hidden": 250}}, "model.hidden: must be divisible by model.heads"),
        ({"model": {"layers": "four"}}, "model.layers: expected int"),
        ({"evaluate": {"split": "dev"}}, "evaluate.split: 'dev' is not one of"),
        ({"data": {"sourse": "builtin"}}, "data.sourse: unknown key"),
        ({"finetune": {"train": {"bogus": 1}}}, "finetune.train.bogus: unknown key"),
        ({"finetune": {"train": {"lr": 1e-3}}}, "finetune.train.lr: fine-tuning stages use the top-level `lr`"),
        ({"finetune": {"train": {"epochs": 2, "steps": 10}}}, "finetune.train: set exactly one budget"),
        ({"pretrain": {"train": {"batch_size": 10, "micro_batch_size": 3}}}, "pretrain.train.micro_batch_size: must divide"),
        ({"tokenizer": {"max_length": 256}}, "model.max_position: must be >= tokenizer.max_length"),
        ({"data": {"source": "files"}}, "data.files.train: is required"),
        ({"data": {"source": "files", "files": {"train": "nope.csv", "test": "nope.csv"}}},
         "data.files.train: file not found: nope.csv"),
        ({"freeze_finetune": {"strategy": "freeze_bottom", "freeze_layers": 9}}, "freeze_finetune.freeze_layers"),
        ({"data": {"builtin": {"label_noise": 0.7}}}, "data.builtin.label_noise: must be in [0, 0.5)"),
    ],
)
def test_bad_values_name_their_key(override, message):
    with pytest.raises(ParamsError) as err:
        params_from_dict(override)
    assert message in str(err.value)


def test_naming_one_budget_replaces_the_default():
    params = params_from_dict({"finetune": {"train": {"steps": 5}}})
    assert params.finetune.train.steps == 5 and params.finetune.train.epochs is None
    # partial sections keep the section's own defaults, not the class defaults
    assert params.freeze_finetune.lr_scale == 10.0
    assert params.pretrain.train.batch_size == 64


def test_integral_float_accepted_for_int_and_bool_rejected():
    assert params_from_dict({"seed": 3.0}).seed == 3
    with pytest.raises(ParamsError, match="seed: expected int"):
        params_from_dict({"seed": True})
    with pytest.raises(ParamsError, match="tokenizer.lowercase: expected bool"):
        params_from_dict({"tokenizer": {"lowercase": "yes"}})


def test_freeze_layers_bound_uses_model_layers_only_for_this_projects_encoder():
    deep = {"strategy": "freeze_bottom", "freeze_layers": 8}
    with pytest.raises(ParamsError, match="freeze_finetune.freeze_layers"):
        params_from_dict({"freeze_finetune": deep})  # model.layers is 4: checked here
    # pretrained from another model (e.g. 12-layer bert-base): model.layers says nothing; checked on load
    params = params_from_dict({"pretrain": {"init_from": "bert-base-uncased"}, "freeze_finetune": deep})
    assert params.freeze_finetune.freeze_layers == 8
