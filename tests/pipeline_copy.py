"""A copy of this repository's code and params in a temporary git repository, for end-to-end runs of the real
DVC pipelines (tests/test_pipeline_e2e.py, tests/test_clm.py, tests/test_reproducibility.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Pipeline outputs and work in progress stay behind: a copy starts from code and params.
NOT_SOURCE = ("tests/", "bench/", "reports/", "models/", "data/raw/", "data/tokenized/", "data/tokenizer/", "data/clm/",
              "dvc.lock", "clm/dvc.lock")

MAIN_TINY = {
    "data": {"builtin": {"corpus_documents": 400, "train_size": 96, "validation_size": 32, "test_size": 48}},
    "tokenizer": {"vocab_size": 400, "max_length": 64},
    "model": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "max_position": 64},
    "pretrain": {"train": {"batch_size": 16, "steps": 6, "eval_every": 3, "checkpoint_every": 2, "log_every": 2}},
    "finetune": {"train": {"batch_size": 16, "epochs": 1, "log_every": 2}},
    "freeze_finetune": {"train": {"batch_size": 16, "epochs": 1, "log_every": 2}},
    "finetune_scratch": {"train": {"batch_size": 16, "epochs": 1, "log_every": 2}},
}
CLM_TINY = {
    "data": {"builtin": {"corpus_documents": 300, "train_size": 20, "validation_size": 10, "test_size": 10}},
    "tokenizer": {"vocab_size": 320, "heldout_fraction": 0.1},
    "model": {"layers": 1, "width": 32, "heads": 2, "context_length": 32},
    "pretrain": {"train": {"batch_size": 8, "steps": 6, "eval_every": 3, "checkpoint_every": 2, "log_every": 2}},
    "evaluate": {"prompts": ["The film", ""], "samples_per_prompt": 1, "sampling": {"max_new_tokens": 8}},
}


def copy_source(repo: Path, params: dict[str, dict], skip: tuple[str, ...] = ()) -> Path:
    """The repository's tracked and untracked-but-not-ignored source files (no outputs) in `repo`, with each params
    file in `params` ({"params.yaml": overrides, ...}) overridden, committed to a new git repository."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in names:
        source = ROOT / name
        if source.is_file() and not name.startswith(NOT_SOURCE + skip):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    for file, override in params.items():
        set_params(repo / file, override)
    git(repo, "init", "-q")
    commit(repo, "source")
    return repo


def set_params(path: Path, override: dict) -> None:
    tree = yaml.safe_load(path.read_text())
    _merge(tree, override)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))


def _merge(tree: dict, override: dict) -> None:
    for key, value in override.items():
        if isinstance(value, dict):
            _merge(tree.setdefault(key, {}), value)
        else:
            tree[key] = value


def environment(repo: Path, tracking: bool = True) -> dict[str, str]:
    """This interpreter's tools first on PATH, the copy's own code importable, MLflow in the copy (or off)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo / "src")}
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT"):
        env.pop(name, None)
    if not tracking:
        env["LMPIPE_TRACKING"] = "0"
    return env


def run(repo: Path, *args: str, tracking: bool = True) -> str:
    """A command in `repo` (see `environment`); fails the test with its output."""
    result = subprocess.run(args, cwd=repo, env=environment(repo, tracking), capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
