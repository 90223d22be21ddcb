"""End to end: the real `dvc repro` on a copy of this repository with tiny params, then DVC's rerun rules.

One module-scoped pipeline run is shared by the tests below, which run in file order (they build on
each other's state); `--dist loadgroup` keeps them on one pytest-xdist worker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["download", "tokenize", "baseline", "pretrain-mlm", "finetune", "freeze-finetune", "evaluate"]
TINY = {
    "data": {"builtin": {"corpus_documents": 400, "train_size": 96, "validation_size": 32, "test_size": 48}},
    "tokenizer": {"vocab_size": 400, "max_length": 64},
    "model": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "max_position": 64},
    "pretrain": {"train": {"batch_size": 16, "steps": 6, "eval_every": 3, "checkpoint_every": 2, "log_every": 2}},
    "finetune": {"train": {"batch_size": 16, "epochs": 1, "log_every": 2}},
    "freeze_finetune": {"train": {"batch_size": 16, "epochs": 1, "log_every": 2}},
}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


def _merge(tree: dict, override: dict) -> None:
    for key, value in override.items():
        if isinstance(value, dict):
            _merge(tree.setdefault(key, {}), value)
        else:
            tree[key] = value


def _run(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo / "src")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DVC_ROOT", None)
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _set_params(repo: Path, override: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    _merge(params, override)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for name in tracked:
        source = ROOT / name
        if source.is_file() and not name.startswith(("tests/", "bench/", "reports/", "dvc.lock")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _set_params(repo, TINY)
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    output = _run(repo, "dvc", "repro")
    assert _ran(output) == set(STAGES)
    return repo


def test_every_stage_writes_its_outputs(repo):
    assert json.loads((repo / "data/raw/labels.json").read_text()) == ["negative", "positive"]
    tokenizer = AutoTokenizer.from_pretrained(repo / "data/tokenizer")
    assert tokenizer.mask_token == "[MASK]" and len(tokenizer) <= 400

    pretrained = repo / "models/pretrained"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in pretrained.iterdir()}
    AutoModelForMaskedLM.from_pretrained(pretrained)
    pretrain = json.loads((repo / "reports/pretrain/metrics.json").read_text())
    assert pretrain["steps"] == 6 and pretrain["heldout_perplexity"] > 1

    for variant in ("finetune", "freeze-finetune"):
        model = AutoModelForSequenceClassification.from_pretrained(repo / "models" / variant)
        assert model.config.id2label == {0: "negative", 1: "positive"}
        metrics = json.loads((repo / f"reports/{variant}/metrics.json").read_text())
        assert 0 < metrics["trainable_fraction"] <= 1
        assert (repo / f"reports/{variant}/train_curve.csv").read_text().startswith("step,loss")
    frozen = json.loads((repo / "reports/freeze-finetune/metrics.json").read_text())
    assert frozen["trainable_fraction"] < 0.2

    evaluation = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    assert 0 <= evaluation["tfidf-baseline"]["accuracy"] <= 1
    for variant in ("finetune", "freeze-finetune"):
        assert set(evaluation[variant]) >= {"accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class"}
        rows = (repo / f"reports/evaluate/confusion_{variant}.csv").read_text().splitlines()
        assert rows[0] == "actual,predicted" and len(rows) == 1 + 48

    # data and models are DVC outputs, git-ignored; metrics are small and stay in git
    ignored = (repo / "data/.gitignore").read_text() + (repo / "models/.gitignore").read_text()
    assert "/raw" in ignored and "/pretrained" in ignored


def test_mlflow_has_a_run_per_stage(repo):
    with sqlite3.connect(repo / "mlflow.db") as db:
        stages = {row[0] for row in db.execute("select value from tags where key = 'stage'")}
        steps = db.execute("select count(*) from metrics where key = 'train/loss'").fetchone()[0]
    assert set(STAGES) <= stages
    assert steps >= 3


def test_second_repro_runs_nothing(repo):
    assert _ran(_run(repo, "dvc", "repro")) == set()


def test_forced_rerun_reproduces_metrics_exactly(repo):
    """Same params and seed: identical metrics, so `dvc metrics diff` against the last run shows nothing."""
    before = (repo / "reports/finetune/metrics.json").read_text()
    _run(repo, "dvc", "repro", "--force", "--single-item", "finetune")
    assert (repo / "reports/finetune/metrics.json").read_text() == before
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first run")
    _run(repo, "dvc", "repro", "--force", "--single-item", "pretrain-mlm")
    assert _run(repo, "dvc", "metrics", "diff", "HEAD").strip() == ""
    assert _ran(_run(repo, "dvc", "repro")) == set()  # identical outputs: nothing downstream is stale


def test_plots_render(repo, tmp_path):
    _run(repo, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    for plot in declared:
        (title,) = plot
        assert title in html
    assert '"actual": "negative"' in html  # the confusion data itself is embedded


def test_lr_change_reruns_only_finetuning_and_evaluate(repo):
    _set_params(repo, {"lr": 7e-4})  # differs from params.yaml
    assert _ran(_run(repo, "dvc", "repro")) == {"finetune", "freeze-finetune", "evaluate"}


def test_vocab_change_reruns_tokenize_and_after(repo):
    _set_params(repo, {"tokenizer": {"vocab_size": 380}})
    assert _ran(_run(repo, "dvc", "repro")) == set(STAGES) - {"download", "baseline"}


def test_source_change_reruns_the_stages_that_import_it(repo):
    with open(repo / "src/lmpipe/finetuning.py", "a") as f:
        f.write("\n# a comment changes the file's hash\n")
    ran = _ran(_run(repo, "dvc", "repro"))
    assert {"finetune", "freeze-finetune"} <= ran
    assert not ran & {"download", "tokenize", "pretrain-mlm"}


def test_exp_run_with_lr_as_written(repo):
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "after reruns")
    output = _run(repo, "dvc", "exp", "run", "-S", "lr=2e-5")
    assert _ran(output) == {"finetune", "freeze-finetune", "evaluate"}
    assert "2e-05" in (repo / "params.yaml").read_text()
    shown = json.loads(_run(repo, "dvc", "exp", "show", "--json", "--no-pager"))
    text = json.dumps(shown)
    assert '"lr": 2e-05' in text or '"lr": "2e-05"' in text
    assert "accuracy" in text
