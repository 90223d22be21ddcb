"""dvc.yaml: the fine-tuning variants declared once, named as the code names them, and plots a person can read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from lmpipe.config.schema import FINETUNE_SECTIONS, VARIANTS

ROOT = Path(__file__).resolve().parents[1]


def test_the_variant_stages_are_the_codes_variants_and_share_one_declaration():
    text = (ROOT / "dvc.yaml").read_text()
    stages = yaml.safe_load(text)["stages"]
    for variant, section in zip(VARIANTS, FINETUNE_SECTIONS):
        stage = stages[variant]
        assert stage["cmd"] == f"python -m stages.finetune {variant}"
        assert section in stage["params"]
        assert f"models/{variant}" in stage["outs"]
        assert stage["deps"] == stages[VARIANTS[0]]["deps"]
    assert text.count("- data/raw/validation.parquet") == 2, "deps written once for the variants (+ evaluate)"


def test_line_plots_give_every_series_its_own_colour_and_name():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["dvc", "plots", "show", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    checked = 0
    for title, renders in json.loads(out)["data"].items():
        for render in renders:
            spec = render["content"]
            if spec.get("mark", {}).get("type") != "line" and "layer" not in spec:
                continue
            files = {row.get("filename") for row in spec["data"]["values"]}
            if len(files) < 2:
                continue
            assert spec["encoding"]["color"]["field"] == "filename", f"{title}: colours must tell the series apart"
            checked += 1
    assert checked >= 8  # ROC, PR, reliability, the loss/accuracy/F1/lr curves


# Their reports include files that are neither metrics nor plots (summary.md, samples.md, confusion_matrices.json):
# they rerun when params go back to earlier values, over the restored models (docs/experiments.md).
RERUN_NOT_RESTORED = {"evaluate", "evaluate-clm"}


def test_every_training_stage_can_be_restored_from_the_run_cache():
    """DVC skips the run cache for a stage with a plain `cache: false` output (metrics and plots excepted,
    dvc.stage.Stage.run): such a stage trains again when params return to values it ran with."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = {stage.addressing.removeprefix("clm/dvc.yaml:"): stage for stage in repo.index.stages}
        assert {"pretrain-mlm", "pretrain-clm", *VARIANTS} <= set(stages)
        for name, stage in stages.items():
            plain_uncached = [str(out) for out in stage.outs
                              if not out.use_cache and not (out.is_metric or out.is_plot)]
            if name in RERUN_NOT_RESTORED:
                assert plain_uncached, f"{name} is restorable now: drop it from RERUN_NOT_RESTORED"
            else:
                assert plain_uncached == [], f"{name}: declare these as metrics or plots, or cache them"
