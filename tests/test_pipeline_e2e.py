"""End to end: the real `dvc repro` on a copy of this repository with tiny params, then DVC's rerun rules.

One module-scoped pipeline run is shared by the tests below, which run in file order (they build on
each other's state); `--dist loadfile` (the Makefile's) keeps a file on one pytest-xdist worker.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml
from pipeline_copy import MAIN_TINY, commit, copy_source, environment, git, ran, run, set_params
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

EVALUATED = ["finetune", "freeze-finetune", "finetune-scratch", "tfidf-baseline"]
STAGES = ["check-params", "download", "tokenize", "baseline", "pretrain-mlm", "finetune", "freeze-finetune",
          "finetune-scratch", "evaluate"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    # clm/ is the second pipeline (its own e2e test in test_clm.py); without its reports/ it would leave
    # `dvc metrics diff` metrics files it cannot load.
    repo = copy_source(tmp_path_factory.mktemp("pipeline") / "repo", {"params.yaml": MAIN_TINY}, skip=("clm/",))
    output = run(repo, "dvc", "repro")
    assert ran(output) == set(STAGES)
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

    for variant in ("finetune", "freeze-finetune", "finetune-scratch"):
        model = AutoModelForSequenceClassification.from_pretrained(repo / "models" / variant)
        assert model.config.id2label == {0: "negative", 1: "positive"}
        metrics = json.loads((repo / f"reports/{variant}/metrics.json").read_text())
        assert 0 < metrics["trainable_fraction"] <= 1
        assert (repo / f"reports/{variant}/train_curve.csv").read_text().startswith("step,loss")
    frozen = json.loads((repo / "reports/freeze-finetune/metrics.json").read_text())
    assert frozen["trainable_fraction"] < 0.2
    # strategy linear_probe: the score of every C tried is kept with the classifier it chose
    probe_cv = list(csv.DictReader((repo / "models/freeze-finetune/probe_cv.csv").open()))
    probe_params = yaml.safe_load((repo / "params.yaml").read_text())["freeze_finetune"]["probe"]
    assert len(probe_cv) == len(probe_params["c_values"])
    assert frozen["probe_c"] in {float(row["c"]) for row in probe_cv}

    evaluation = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    baseline = json.loads((repo / "reports/baseline/metrics.json").read_text())["test"]
    assert evaluation["tfidf-baseline"]["accuracy"] == baseline["accuracy"]  # the refit is the same model
    assert evaluation["pretrained_encoder"]["heldout_perplexity"] == pretrain["heldout_perplexity"]
    for variant in EVALUATED:
        assert set(evaluation[variant]) >= {"accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class",
                                            "roc_auc", "pr_auc", "ece", "log_loss"}
        rows = (repo / f"reports/evaluate/confusion_{variant}.csv").read_text().splitlines()
        assert rows[0] == "actual,predicted" and len(rows) == 1 + 48
        for curve, header in [("roc", "fpr,tpr"), ("pr", "recall,precision"),
                              ("calibration", "confidence,accuracy,examples")]:
            lines = (repo / f"reports/evaluate/curves/{curve}_{variant}.csv").read_text().splitlines()
            assert lines[0] == header and len(lines) >= 2
    gain = evaluation["comparison"]["pretraining_gain"]["accuracy"]
    assert gain == pytest.approx(evaluation["finetune"]["accuracy"] - evaluation["finetune-scratch"]["accuracy"])

    with open(repo / "reports/evaluate/predictions.csv", newline="") as f:
        predictions = list(csv.DictReader(f))
    assert len(predictions) == len(EVALUATED) * 48 and {r["variant"] for r in predictions} == set(EVALUATED)
    assert all(abs(float(r["p_negative"]) + float(r["p_positive"]) - 1) < 1e-4 for r in predictions)

    summary = (repo / "reports/summary.md").read_text()
    for variant in EVALUATED:
        assert f"| {variant} |" in summary or f"| **{variant}** (best f1_macro) |" in summary
    assert f"finetune − finetune-scratch | {gain:+.4f} |" in summary
    assert f"perplexity **{pretrain['heldout_perplexity']:.2f}**" in summary

    # data, models and the predictions file are DVC outputs, git-ignored; metrics are small and stay in git
    ignored = (repo / "data/.gitignore").read_text() + (repo / "models/.gitignore").read_text()
    assert "/raw" in ignored and "/pretrained" in ignored
    assert "/predictions.csv" in (repo / "reports/evaluate/.gitignore").read_text()


def test_mlflow_has_a_run_per_stage(repo):
    with sqlite3.connect(repo / "mlflow.db") as db:
        stages = {row[0] for row in db.execute("select value from tags where key = 'stage'")}
        steps = db.execute("select count(*) from metrics where key = 'train/loss'").fetchone()[0]
    assert set(STAGES) - {"check-params"} <= stages  # check-params only reads the file: no run of its own
    assert steps >= 3
    # the evaluate run holds the whole comparison: every variant's metrics, summary.md and the plots
    with sqlite3.connect(repo / "mlflow.db") as db:
        (run,) = db.execute("select run_uuid from tags where key = 'stage' and value = 'evaluate'").fetchone()
        keys = {row[0] for row in db.execute("select key from metrics where run_uuid = ?", (run,))}
    assert {f"{v}/{m}" for v in EVALUATED for m in ("accuracy", "roc_auc", "ece")} <= keys
    assert {"comparison/pretraining_gain/accuracy", "pretrained_encoder/heldout_perplexity"} <= keys
    artifacts = repo / "mlartifacts" / run / "artifacts"
    assert {"summary.md", "plots/roc.png", "plots/pr.png", "evaluate/metrics.json", "evaluate/curves/roc_finetune.csv",
            "plots/confusion_finetune-scratch.png"} <= {p.relative_to(artifacts).as_posix()
                                                       for p in artifacts.rglob("*") if p.is_file()}


def test_second_repro_runs_nothing(repo):
    assert ran(run(repo, "dvc", "repro")) == set()


def test_forced_rerun_reproduces_metrics_exactly(repo):
    """Same params and seed: identical metrics, so `dvc metrics diff` against the last run shows nothing."""
    before = (repo / "reports/finetune/metrics.json").read_text()
    run(repo, "dvc", "repro", "--force", "--single-item", "finetune")
    assert (repo / "reports/finetune/metrics.json").read_text() == before
    commit(repo, "first run")
    run(repo, "dvc", "repro", "--force", "--single-item", "pretrain-mlm")
    assert run(repo, "dvc", "metrics", "diff", "HEAD").strip() == ""
    assert ran(run(repo, "dvc", "repro")) == set()  # identical outputs: nothing downstream is stale

    # evaluate again: the same bytes in every report
    summary = (repo / "reports/summary.md").read_text()
    run(repo, "dvc", "repro", "--force", "--single-item", "evaluate")
    assert run(repo, "dvc", "metrics", "diff", "HEAD").strip() == ""
    assert (repo / "reports/summary.md").read_text() == summary


def test_plots_render(repo, tmp_path):
    run(repo, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    for plot in declared:
        (title,) = plot
        assert title in html
    assert '"actual": "negative"' in html  # the confusion data itself is embedded
    # every variant's ROC, PR and reliability data, and every training stage's curves (DVC names each
    # line by the shortest unique end of its file's path)
    for variant in EVALUATED:
        for curve in ("roc", "pr", "calibration"):
            assert f'{curve}_{variant}.csv"' in html
    assert '"fpr": ' in html and '"precision": ' in html and '"confidence": ' in html
    for stage in ("pretrain", "finetune", "freeze-finetune", "finetune-scratch"):
        assert f'{stage}/train_curve.csv"' in html
        assert stage == "pretrain" or f'{stage}/eval_curve.csv"' in html


def test_lr_change_reruns_only_finetuning_and_evaluate(repo):
    set_params(repo / "params.yaml", {"lr": 7e-4})  # differs from params.yaml
    assert ran(run(repo, "dvc", "repro")) == {"check-params", "finetune", "freeze-finetune", "finetune-scratch",
                                              "evaluate"}


def test_vocab_change_reruns_tokenize_and_after(repo):
    set_params(repo / "params.yaml", {"tokenizer": {"vocab_size": 380}})
    assert ran(run(repo, "dvc", "repro")) == set(STAGES) - {"download", "baseline"}


def test_params_that_ran_before_are_restored_from_the_run_cache(repo):
    """Back to the first run's vocabulary: tokenize, pretraining and the variants come out of DVC's run cache (lr is
    still the earlier test's, which ran too); only evaluate, whose plain git-tracked outputs DVC does not
    run-cache, runs again."""
    telemetry = (repo / "reports/pretrain/telemetry.json").read_bytes()  # the 380-word vocabulary's run: no DVC output
    set_params(repo / "params.yaml", {"tokenizer": {"vocab_size": 400}})
    output = run(repo, "dvc", "repro")
    assert ran(output) == {"check-params", "evaluate"}
    for stage in ("tokenize", "pretrain-mlm", "finetune", "freeze-finetune", "finetune-scratch"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in output
    assert (repo / "reports/pretrain/telemetry.json").read_bytes() == telemetry  # restored, not trained again
    assert git(repo, "status", "--porcelain", "reports/pretrain", "reports/tokenize.json") == ""  # the first run's
    AutoModelForMaskedLM.from_pretrained(repo / "models/pretrained")
    assert "up to date" in run(repo, "dvc", "status")


def test_source_change_reruns_the_stages_that_import_it(repo):
    with open(repo / "src/lmpipe/finetune/strategies.py", "a") as f:
        f.write("\n# a comment changes the file's hash\n")
    stages = ran(run(repo, "dvc", "repro"))
    assert {"finetune", "freeze-finetune", "finetune-scratch"} <= stages
    assert not stages & {"download", "tokenize", "pretrain-mlm"}


def test_a_module_no_stage_but_evaluate_imports_reruns_evaluate_only(repo):
    with open(repo / "src/lmpipe/evaluation/report.py", "a") as f:
        f.write("\n# a comment changes the file's hash\n")
    assert ran(run(repo, "dvc", "repro")) == {"evaluate"}


def test_a_variants_own_seed_reruns_only_that_variant_on_the_same_splits(repo):
    """finetune_scratch.seed retrains the scratch control alone (a new random encoder, dropout and batch order), on
    the splits the top-level seed carved: what repeating one variant over seeds needs."""
    before = {stage: json.loads((repo / f"reports/{stage}/metrics.json").read_text())
              for stage in ("finetune", "finetune-scratch")}
    splits = (repo / "data/raw/validation.parquet").read_bytes()
    set_params(repo / "params.yaml", {"finetune_scratch": {"seed": 7}})
    assert ran(run(repo, "dvc", "repro")) == {"check-params", "finetune-scratch", "evaluate"}
    after = json.loads((repo / "reports/finetune-scratch/metrics.json").read_text())
    assert after["validation_loss"] != before["finetune-scratch"]["validation_loss"]
    assert json.loads((repo / "reports/finetune/metrics.json").read_text()) == before["finetune"]
    assert (repo / "data/raw/validation.parquet").read_bytes() == splits


def test_exp_run_with_lr_as_written(repo):
    commit(repo, "after reruns")
    output = run(repo, "dvc", "exp", "run", "-S", "lr=2e-5")
    assert ran(output) == {"check-params", "finetune", "freeze-finetune", "finetune-scratch", "evaluate"}
    assert "2e-05" in (repo / "params.yaml").read_text()
    shown = json.loads(run(repo, "dvc", "exp", "show", "--json", "--no-pager"))
    text = json.dumps(shown)
    assert '"lr": 2e-05' in text or '"lr": "2e-05"' in text
    assert "accuracy" in text


def test_log_model_registers_the_best_classifier(repo):
    """evaluate.log_model: the best variant lands in the MLflow registry under the alias (only evaluate reruns)."""
    set_params(repo / "params.yaml", {"evaluate": {"log_model": True, "registered_model_name": "e2e-classifier",
                                                   "model_alias": "candidate"}})
    assert ran(run(repo, "dvc", "repro")) == {"check-params", "evaluate"}
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    version = client.get_model_version_by_alias("e2e-classifier", "candidate")
    assert str(version.version) == "1"
    tags = client.get_run(version.run_id).data.tags
    assert tags["stage"] == "evaluate"
    evaluation = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    best = max(EVALUATED[:3], key=lambda v: evaluation[v]["f1_macro"])
    assert tags["best_variant"] == best and f"`{best}`" in version.description


def test_exp_run_with_an_unknown_key_records_nothing(repo):
    """`-S +typo=1` changes no param any stage tracks; check-params validates the whole file, so the experiment
    fails naming the key instead of being recorded unvalidated."""
    commit(repo, "before the typo")
    before = _experiments(repo)
    assert before  # test_exp_run_with_lr_as_written recorded one
    result = subprocess.run(["dvc", "exp", "run", "-S", "+finetune.lr_scael=2"], cwd=repo, env=environment(repo),
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "check-params: finetune.lr_scael: unknown key" in result.stdout + result.stderr
    assert _experiments(repo) == before
    git(repo, "checkout", "params.yaml")  # DVC leaves the failed override in the workspace


def _experiments(repo: Path) -> list[str]:
    """Every experiment DVC recorded: its git refs (refs/exps/<baseline>/<name>; exec/ holds the executor's)."""
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    return sorted(ref for ref in refs if not ref.startswith("refs/exps/exec/"))
