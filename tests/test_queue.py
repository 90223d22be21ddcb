"""Sweeps on more than one worker: `dvc exp run --queue` then `dvc queue start -j 2` on a copy of the pipeline.

Queued experiments run in temporary copies of the repository, two at a time here: their MLflow runs must land in
the real repository's store (DVC_ROOT), each under its own experiment name, and neither may see the other's
checkpoints or outputs.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from pipeline_copy import MAIN_TINY, copy_source, run

pytestmark = pytest.mark.slow

EXPERIMENTS = {"lr-low": "2e-4", "lr-high": "8e-4"}


def _wait_for_queue(repo: Path, timeout_s: float = 1500) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = run(repo, "dvc", "queue", "status")
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(5)
    raise AssertionError(f"the queue did not finish in {timeout_s} s:\n{status}")


def test_two_queued_experiments_run_on_two_workers(tmp_path):
    repo = copy_source(tmp_path / "repo", {"params.yaml": MAIN_TINY}, skip=("clm/",))
    for name, lr in EXPERIMENTS.items():
        run(repo, "dvc", "exp", "run", "--queue", "-n", name, "-S", f"lr={lr}")
    run(repo, "dvc", "queue", "start", "-j", "2")
    status = _wait_for_queue(repo)
    assert status.count("Success") == 2, status
    check_experiments(repo)


def check_experiments(repo: Path) -> None:

    shown = json.loads(run(repo, "dvc", "exp", "show", "--json", "--no-pager"))
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                if rev.get("name") in EXPERIMENTS:
                    found[rev["name"]] = rev["data"]
    assert set(found) == set(EXPERIMENTS), json.dumps(shown)[:3000]
    for name, data in found.items():
        params = data["params"]["params.yaml"]["data"]
        assert float(params["lr"]) == float(EXPERIMENTS[name])
        metrics = data["metrics"]["reports/evaluate/metrics.json"]["data"]
        assert 0 <= metrics["finetune"]["accuracy"] <= 1
    accuracies = {json.dumps(d["metrics"]["reports/finetune/metrics.json"]["data"], sort_keys=True)
                  for d in found.values()}
    assert len(accuracies) == 2  # different learning rates trained different models

    # MLflow: every stage of both experiments logged into the real repository's store, tagged with its name.
    with sqlite3.connect(repo / "mlflow.db") as db:
        rows = db.execute("SELECT run_uuid, value FROM tags WHERE key = 'dvc_exp_name'").fetchall()
    stages_per_experiment = {name: sum(1 for _, value in rows if value == name) for name in EXPERIMENTS}
    assert all(count >= 5 for count in stages_per_experiment.values()), stages_per_experiment
    assert not (repo / ".cache" / "checkpoints").exists() or not any((repo / ".cache" / "checkpoints").iterdir())
