"""The params schema: the real params.yaml loads; bad values fail with their key path, before any work."""

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml
from repo_params import params_with

from lmpipe.config.clm_schema import ClmParams, load_clm_params
from lmpipe.config.loader import ParamsError
from lmpipe.config.schema import Params, load_params

ROOT = Path(__file__).resolve().parents[1]


def test_repo_params_files_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.pretrain.lr > 0
    assert params.freeze_finetune.strategy == "linear_probe"
    assert load_clm_params(ROOT / "clm" / "params.yaml").pretrain.lr > 0


def _schema_classes(cls: type) -> set[type]:
    classes = {cls}
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            classes |= _schema_classes(hint)
    return classes


@pytest.mark.parametrize("schema", [Params, ClmParams])
def test_the_schema_has_no_code_defaults(schema):
    """Every value comes from the params file: no field of any section may carry a default that could silently
    decide a result (or differ from the file)."""
    with_defaults = [f"{cls.__name__}.{f.name}" for cls in _schema_classes(schema) for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert with_defaults == []


@pytest.mark.parametrize("file, key", [("params.yaml", "finetune.train.group_by_length"),
                                       ("params.yaml", "pretrain.train.momentum"),
                                       ("clm/params.yaml", "pretrain.train.fast_cpu_kernels"),
                                       ("clm/params.yaml", "data.hub.corpus_split")])
def test_a_key_left_out_of_the_file_is_an_error_naming_it(tmp_path, file, key):
    """So every field of the schema must appear in params.yaml / clm/params.yaml (both load above)."""
    raw = yaml.safe_load((ROOT / file).read_text())
    *parents, leaf = key.split(".")
    node = raw
    for name in parents:
        node = node[name]
    del node[leaf]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    load = load_clm_params if file.startswith("clm/") else load_params
    with pytest.raises(ParamsError, match=re.escape(f"{key}: missing")):
        load(path)


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
        ({"finetune": {"train": {"lr": 1e-3}}}, "finetune.train.lr: unknown key"),
        ({"pretrain": {"lr": 0}}, "pretrain.lr: must be > 0"),
        ({"finetune": {"train": {"epochs": 2, "steps": 10}}}, "finetune.train: set exactly one budget"),
        ({"pretrain": {"train": {"batch_size": 10, "micro_batch_size": 3}}}, "pretrain.train.micro_batch_size: must divide"),
        ({"tokenizer": {"max_length": 256}}, "model.max_position: must be >= tokenizer.max_length"),
        ({"finetune_scratch": {"max_length": 256}}, "finetune_scratch.max_length: must be <= model.max_position (128)"),
        ({"data": {"source": "files"}}, "data.files.train: is required"),
        ({"data": {"source": "files", "files": {"train": "nope.csv", "test": "nope.csv"}}},
         "data.files.train: file not found: nope.csv"),
        ({"freeze_finetune": {"strategy": "freeze_bottom", "freeze_layers": 9}}, "freeze_finetune.freeze_layers"),
        ({"finetune_scratch": {"seed": -1}}, "finetune_scratch.seed: must be >= 0 or null"),
        ({"data": {"builtin": {"label_noise": 0.7}}}, "data.builtin.label_noise: must be in [0, 0.5)"),
        ({"data": {"test_fraction": 0}}, "data.test_fraction: must be in (0, 1)"),
        ({"data": {"validation_fraction": 0.5, "test_fraction": 0.5}},
         "data.test_fraction: plus validation_fraction (0.5) must leave rows to train on"),
    ],
)
def test_bad_values_name_their_key(override, message):
    with pytest.raises(ParamsError) as err:
        params_with(override)
    assert message in str(err.value)


def test_a_second_budget_must_null_the_first(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["finetune"]["train"]["steps"] = 5  # epochs: 3 is still set
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=re.escape("finetune.train: set exactly one budget of steps, epochs, tokens, "
                                                    "minutes, the others to null (got ['steps', 'epochs'])")):
        load_params(path)
    raw["finetune"]["train"]["epochs"] = None
    path.write_text(yaml.safe_dump(raw))
    assert load_params(path).finetune.train.steps == 5


def test_integral_float_accepted_for_int_and_bool_rejected():
    assert params_with({"seed": 3.0}).seed == 3
    with pytest.raises(ParamsError, match="seed: expected int"):
        params_with({"seed": True})
    with pytest.raises(ParamsError, match="tokenizer.lowercase: expected bool"):
        params_with({"tokenizer": {"lowercase": "yes"}})


def test_freeze_layers_bound_uses_model_layers_only_for_this_projects_encoder():
    deep = {"strategy": "freeze_bottom", "freeze_layers": 8}
    with pytest.raises(ParamsError, match="freeze_finetune.freeze_layers"):
        params_with({"freeze_finetune": deep})  # model.layers is 4: checked here
    # pretrained from another model (e.g. 12-layer bert-base): model.layers says nothing; checked on load
    params = params_with({"pretrain": {"init_from": "bert-base-uncased"}, "freeze_finetune": deep})
    assert params.freeze_finetune.freeze_layers == 8
