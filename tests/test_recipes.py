"""Recipes (recipes/*.yaml) and `python -m lmpipe.cli.recipe`: a recipe is params.yaml keys, validated against the
schema, run as one `dvc exp run` that leaves exactly the recipe's values in params.yaml."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_copy import commit, git, run

from lmpipe.cli.recipe import RecipeError, dvc_command, main, override_value, parse_set, read_recipe, validate
from lmpipe.config.schema import load_params

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))


def _workspace(tmp_path: Path, overrides: dict) -> Path:
    """A directory with the repository's params.yaml and a placeholder for every data file the overrides name
    (the schema checks only that they exist)."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for key, value in overrides.items():
        if key.startswith("data.files.") and isinstance(value, str) and value.startswith("data/external/"):
            (tmp_path / value).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / value).write_text("text,label\n")
    return tmp_path


def test_every_recipe_is_listed():
    assert RECIPES == ["imdb", "sst2"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_is_valid_params(recipe, tmp_path, monkeypatch):
    overrides = read_recipe(ROOT / "recipes" / f"{recipe}.yaml")
    monkeypatch.chdir(_workspace(tmp_path, overrides))
    validate(overrides, f"recipes/{recipe}.yaml")
    params = load_params("params.yaml", overrides)
    assert params.data.source == "files" and params.data.files.train.startswith(f"data/external/{recipe}/")
    assert params.model.max_position >= params.tokenizer.max_length


def test_imdb_carves_test_and_validation_and_pretrains_on_unlabelled_plus_train_reviews():
    overrides = read_recipe(ROOT / "recipes" / "imdb.yaml")
    assert overrides["data.files.test"] is None and overrides["data.test_fraction"] > 0
    assert overrides["evaluate.split"] == "validation" and overrides["data.clean_markup"] is True
    assert overrides["data.files.corpus"] == "data/external/imdb/unsup.txt" and overrides["data.corpus_add_train"]


def test_sst2_scores_dev_and_pretrains_on_its_own_training_text():
    overrides = read_recipe(ROOT / "recipes" / "sst2.yaml")
    assert overrides["data.files.test"] == "data/external/sst2/dev.tsv" and overrides["evaluate.split"] == "test"
    assert overrides["data.files.corpus"] is None and overrides["data.files.validation"] is None


def test_values_are_written_in_dvc_set_syntax():
    assert override_value(None) == "null" and override_value(True) == "true" and override_value(False) == "false"
    assert override_value(800) == "800" and override_value(2e-05) == "2e-05" and override_value(0.1) == "0.1"
    assert override_value("data/external/imdb/train.csv") == "data/external/imdb/train.csv"
    assert override_value(["negative", "positive"]) == "[negative,positive]"
    # strings that would read as another type, or hold characters of the grammar, are quoted
    assert override_value("null") == "'null'" and override_value("1") == "'1'" and override_value("[CLS]") == "'[CLS]'"
    assert override_value("it's a,b") == "'it\\'s a,b'"
    assert dvc_command("x", {"a.b": 1, "c": None}, ["--temp"]) == ["dvc", "exp", "run", "-n", "x", "-S", "a.b=1",
                                                                   "-S", "c=null", "--temp"]


def test_recipe_errors_name_the_recipe_and_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(_workspace(tmp_path, {}))
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("finetune:\n  train:\n    epoch: 1\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: finetune.train.epoch: unknown key"):
        validate(read_recipe(recipe), str(recipe))
    recipe.write_text("data:\n  source: files\n  files: {train: data/external/x/train.csv, test: data/external/x/t.csv}\n")
    with pytest.raises(RecipeError, match=r"data.files.train: file not found: .*\(copy or symlink .*docs/recipes.md\)"):
        validate(read_recipe(recipe), str(recipe))
    recipe.write_text("finetune: {}\n")
    with pytest.raises(RecipeError, match="finetune: an empty mapping changes nothing"):
        read_recipe(recipe)
    with pytest.raises(RecipeError, match="recipe not found"):
        read_recipe(tmp_path / "missing.yaml")
    assert parse_set("lr=2e-5") == ("lr", "2e-5") and parse_set("data.label_names=[a, b]")[1] == ["a", "b"]
    with pytest.raises(RecipeError, match="expected key=value"):
        parse_set("lr")
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert "recipe: " in capsys.readouterr().err


@pytest.mark.subprocess
def test_a_recipe_runs_as_one_dvc_experiment_with_exactly_its_values(tmp_path, monkeypatch):
    """The real DVC on a repository whose one stage copies params.yaml: what the stage saw is params.yaml with the
    recipe's values (and --set's) and nothing else changed; the experiment is recorded under its name."""
    overrides = read_recipe(ROOT / "recipes" / "sst2.yaml")
    repo = _workspace(tmp_path, overrides)
    shutil.copytree(ROOT / "recipes", repo / "recipes")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"show": {
        "cmd": f"{sys.executable} -c \"import shutil; shutil.copy('params.yaml', 'seen.yaml')\"",
        "params": [{"params.yaml": None}], "outs": [{"seen.yaml": {"cache": False}}]}}}))
    git(repo, "init", "-q")
    run(repo, "dvc", "init", "-q")
    commit(repo, "a repository")
    output = run(repo, sys.executable, "-m", "lmpipe.cli.recipe", "recipes/sst2.yaml", "--name", "sst2-test",
                 "--set", "lr=2e-5", "--set", "data.label_names=[neg, pos]")
    assert "dvc exp run -n sst2-test" in output
    monkeypatch.chdir(repo)  # the data files the params name are checked relative to the repository
    seen = load_params(repo / "seen.yaml")
    expected = load_params(ROOT / "params.yaml", {**overrides, "lr": 2e-5, "data.label_names": ["neg", "pos"]})
    assert dataclasses.asdict(seen) == dataclasses.asdict(expected)
    assert "sst2-test" in git(repo, "for-each-ref", "refs/exps")
