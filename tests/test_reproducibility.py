"""Two fresh builds, the same bits: what a user who clones the repository and runs `make pipeline` gets.

Repository A is this repository's code with tiny params for both pipelines; `dvc repro --all-pipelines` builds
everything and the result is committed, as main holds it. Repository B is a `git clone` of A: no DVC cache, no
outputs, no run cache. `dvc repro --all-pipelines --force` there rebuilds every stage in fresh processes, and every
versioned file must come out byte-identical (`git status` clean, so dvc.lock and every metrics file match),
every model's weights and every tokenizer too, and `dvc status` must have nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_copy import CLM_TINY, MAIN_TINY, commit, copy_source, git, ran, run

pytestmark = pytest.mark.slow
MAIN_STAGES = {"check-params", "download", "tokenize", "baseline", "pretrain-mlm", "finetune", "freeze-finetune", "finetune-scratch",
               "evaluate"}
CLM_STAGES = {f"clm/dvc.yaml:{stage}" for stage in ("check-params-clm", "tokenize-clm", "pretrain-clm", "evaluate-clm")}
BUILT = ("models/**/model.safetensors", "data/tokenizer/tokenizer.json", "data/clm/tokenizer/tokenizer.json",
         "data/tokenized/*.parquet", "data/clm/tokenized/*.parquet", "data/raw/*.parquet",
         "reports/evaluate/predictions.csv")


def _built_files(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for pattern in BUILT for p in sorted(repo.glob(pattern))}


def test_a_fresh_clone_rebuilds_every_output_bit_for_bit(tmp_path):
    first = copy_source(tmp_path / "a", {"params.yaml": MAIN_TINY, "clm/params.yaml": CLM_TINY})
    assert ran(run(first, "dvc", "repro", "--all-pipelines", tracking=False)) == MAIN_STAGES | CLM_STAGES
    commit(first, "pipeline outputs")

    clone = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(first), str(clone))
    assert not (clone / "models" / "pretrained").exists()  # nothing to reuse: outputs live in A's cache only
    # --force: also the stages whose only outputs are git-tracked metrics (baseline, evaluate-clm) rerun
    assert ran(run(clone, "dvc", "repro", "--all-pipelines", "--force", tracking=False)) == MAIN_STAGES | CLM_STAGES

    assert git(clone, "status", "--porcelain") == ""  # dvc.lock, metrics, curves, summary: the same bytes
    assert "up to date" in run(clone, "dvc", "status")
    built, rebuilt = _built_files(first), _built_files(clone)
    assert len(built) >= 12 and sorted(built) == sorted(rebuilt)
    assert [name for name in built if built[name] != rebuilt[name]] == []
