"""lmpipe.tracking against a real MLflow sqlite store (no mocks of mlflow)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

from lmpipe import tracking
from lmpipe.tracking import Tracker, TrackingWarning

ROOT = Path(__file__).resolve().parents[1]
ENV_VARS = [
    "MLFLOW_TRACKING_URI",
    "DVC_ROOT",
    "DVC_EXP_NAME",
    "DVC_EXP_BASELINE_REV",
    "DVC_STAGE",
    "LMPIPE_PIPELINE_RUN",
    "LMPIPE_TRACKING",
    "RANK",
]

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name in tracking.ENV_DEFAULTS:  # a Tracker sets them where unset: removed again after each test
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking, "_params_file", None)  # as set by lmpipe.stage.start


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite db for the module (MLflow's first-time migrations are slow)."""
    d = tmp_path_factory.mktemp("mlflow")
    return "sqlite:///" + (d / "mlflow.db").as_posix(), d


@pytest.fixture(scope="module")
def client(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store[0])


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path_factory.mktemp("repo")
    _git(repo, "init", "-q")
    (repo / "params.yaml").write_text("finetune:\n  lr: 0.001\n")
    _git(repo, "add", "params.yaml")
    _git(repo, "commit", "-q", "-m", "init")
    return repo


@pytest.fixture
def env(monkeypatch, store, git_repo):
    """Point tracking at the shared store and the throwaway repo; unique experiment name."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    monkeypatch.setenv("DVC_ROOT", str(git_repo))
    return f"exp-{uuid.uuid4().hex[:8]}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tracking_warnings(record) -> list:
    return [w for w in record if issubclass(w.category, TrackingWarning)]


# --------------------------------------------------------------------------- locations


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "dvcroot"))
    assert tracking.tracking_uri() == "http://example.invalid:5000"

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    expected = "sqlite:///" + (tmp_path / "dvcroot").resolve().as_posix() + "/mlflow.db"
    assert tracking.tracking_uri() == expected
    assert tracking.repo_root() == (tmp_path / "dvcroot").resolve()

    monkeypatch.delenv("DVC_ROOT")
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    if tracking._git("rev-parse", "--show-toplevel", cwd=plain) is None:  # tmp not in a repo
        assert tracking.repo_root() == plain.resolve()
        assert tracking.tracking_uri() == "sqlite:///" + plain.resolve().as_posix() + "/mlflow.db"


@needs_git
def test_repo_root_is_git_toplevel(monkeypatch, tmp_path):
    repo = tmp_path / "r"
    (repo / "sub" / "dir").mkdir(parents=True)
    _git(repo, "init", "-q")
    monkeypatch.chdir(repo / "sub" / "dir")
    assert tracking.repo_root() == repo.resolve()
    assert tracking.tracking_uri() == "sqlite:///" + repo.resolve().as_posix() + "/mlflow.db"
    assert tracking.git_commit() == "unknown"  # no commit yet


def test_pipeline_run_id_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    (tmp_path / "params.yaml").write_text("a: 1\n")
    h1 = tracking.pipeline_run_id()
    assert len(h1) == 12 and h1 == tracking.pipeline_run_id()
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert tracking.pipeline_run_id() != h1

    monkeypatch.setenv("LMPIPE_PIPELINE_RUN", "manual-1")
    assert tracking.pipeline_run_id() == "manual-1"
    monkeypatch.setenv("DVC_EXP_NAME", "urban-sign")
    assert tracking.pipeline_run_id() == "urban-sign"


def test_import_is_lazy_and_disabled_tracker_never_imports_mlflow(tmp_path):
    code = (
        "import sys, lmpipe.tracking as t\n"
        "assert 'mlflow' not in sys.modules\n"
        "with t.Tracker('x', params={'a': 1}, enabled=False) as tr:\n"
        "    tr.log_metrics({'loss': 1.0}, step=1); tr.set_tags({'b': 2}); tr.flush()\n"
        "assert 'mlflow' not in sys.modules and tr.run_id is None\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///" + (tmp_path / "x.db").as_posix()}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    assert not (tmp_path / "x.db").exists()


# --------------------------------------------------------------------------- logging


def test_run_logs_params_metrics_tags_artifacts(
    env, client, store, git_repo, tmp_path, monkeypatch
):
    monkeypatch.setenv("DVC_EXP_NAME", "urban-sign")
    long_value = "x" * 10_000
    many = {f"p{i}": i for i in range(250)}  # > one 100-param batch
    artifact_file = tmp_path / "metrics.json"
    artifact_file.write_text("{}")
    artifact_dir = tmp_path / "model"
    (artifact_dir / "sub").mkdir(parents=True)
    (artifact_dir / "config.json").write_text("{}")
    (artifact_dir / "sub" / "w.bin").write_bytes(b"\0" * 8)

    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        with Tracker(
            "pretrain-mlm",
            params={"finetune": {"lr": 1e-4, "sched": {"warmup": 10}}, "long": long_value, **many},
            experiment=env,
        ) as t:
            for step in range(0, 240, 2):  # 120 calls, queued and merged into batches by MLflow
                t.log_metrics(
                    {"train/loss": 1.0 / (step + 1), "nan": float("nan"), "inf": float("inf"),
                     "text": "abc", "none": None},
                    step=step,
                )
            t.log_metrics({"eval/acc": 0.5}, step=3)
            t.flush()  # written now, not at MLflow's next batch
            assert len(client.get_metric_history(t.run_id, "train/loss")) == 120
            t.set_tags({"note": "hello", "device": "cpu"})
            t.log_artifact(artifact_file)
            t.log_artifact(artifact_dir, artifact_path="model")
            run_id = t.run_id
            assert run_id is not None and t.active

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["finetune.lr"] == "0.0001"
    assert p["finetune.sched.warmup"] == "10"
    assert len(p["long"]) == 6000 and p["long"].startswith("xxx")
    assert p["p249"] == "249" and len([k for k in p if k.startswith("p")]) == 250

    hist = sorted(client.get_metric_history(run_id, "train/loss"), key=lambda m: m.step)
    assert [m.step for m in hist] == list(range(0, 240, 2))
    assert [m.value for m in hist] == pytest.approx([1.0 / (s + 1) for s in range(0, 240, 2)])
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "eval/acc")] == [(3, 0.5)]
    for skipped in ("nan", "inf", "text", "none"):
        assert client.get_metric_history(run_id, skipped) == []

    tags = run.data.tags
    head = _git(git_repo, "rev-parse", "HEAD")
    assert tags["stage"] == "pretrain-mlm"
    assert tags["git_commit"] == head
    assert tags["dvc_exp_name"] == "urban-sign"
    assert tags["pipeline_run"] == "urban-sign"
    assert tags["note"] == "hello"
    assert tags["mlflow.runName"] == "pretrain-mlm"

    top = {a.path for a in client.list_artifacts(run_id)}
    assert top == {"metrics.json", "model"}
    model = {a.path for a in client.list_artifacts(run_id, "model")}
    assert model == {"model/config.json", "model/sub"}
    # Artifacts live next to the db, not under a cwd-relative ./mlruns.
    assert run.info.artifact_uri.startswith((store[1] / "mlartifacts").resolve().as_uri())


def test_pipeline_hash_tag_without_dvc(env, client, git_repo):
    with Tracker("download", experiment=env) as t:
        pass
    tags = client.get_run(t.run_id).data.tags
    assert tags["pipeline_run"] == tracking.pipeline_run_id(git_repo)
    assert len(tags["pipeline_run"]) == 12
    assert "dvc_exp_name" not in tags


def _hash_of(repo: Path, params_file: Path) -> str:
    commit = _git(repo, "rev-parse", "HEAD")
    return hashlib.sha256(commit.encode() + b"\0" + params_file.read_bytes()).hexdigest()[:12]


@needs_git
def test_pipeline_run_id_hashes_the_params_file_the_stage_read(monkeypatch, tmp_path):
    """The causal-LM stages read clm/params.yaml: their pipeline run follows that file, not the root params.yaml."""
    repo = tmp_path / "repo"
    (repo / "clm").mkdir(parents=True)
    (repo / "params.yaml").write_text("a: 1\n")
    (repo / "clm" / "params.yaml").write_text("b: 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    monkeypatch.setenv("DVC_ROOT", str(repo))
    main = tracking.pipeline_run_id()
    assert main == _hash_of(repo, repo / "params.yaml")

    monkeypatch.chdir(repo)
    tracking.set_pipeline_params_file("clm/params.yaml")  # relative to where the stage runs
    clm = tracking.pipeline_run_id()
    assert clm == _hash_of(repo, repo / "clm" / "params.yaml") != main
    (repo / "params.yaml").write_text("a: 2\n")
    assert tracking.pipeline_run_id() == clm
    (repo / "clm" / "params.yaml").write_text("b: 2\n")
    assert tracking.pipeline_run_id() != clm


def test_stage_start_groups_clm_stages_by_clm_params(env, client, git_repo, monkeypatch, tmp_path):
    """lmpipe.stage.start, given clm/params.yaml (as every causal-LM stage is), makes the stage's run hash it."""
    from lmpipe.config.clm_schema import load_clm_params
    from lmpipe.stage import start

    clm_params = tmp_path / "clm" / "params.yaml"
    clm_params.parent.mkdir()
    shutil.copy(ROOT / "clm" / "params.yaml", clm_params)
    monkeypatch.chdir(tmp_path)
    start("tokenize-clm", "clm/params.yaml", load_clm_params)
    with Tracker("tokenize-clm", experiment=env) as t:
        pass
    pipeline_run = client.get_run(t.run_id).data.tags["pipeline_run"]
    assert pipeline_run == _hash_of(git_repo, clm_params) != _hash_of(git_repo, git_repo / "params.yaml")


def test_experiment_is_marked_as_model_training(env, client):
    """MLflow 3 keeps an experiment's kind in the mlflow.experimentKind tag: lmpipe's experiments are the classic
    model-training kind, also one made before lmpipe set it; a kind someone chose stays."""
    kind = "mlflow.experimentKind"
    with Tracker("download", experiment=env):
        pass
    assert client.get_experiment_by_name(env).tags[kind] == "custom_model_development"
    older = client.create_experiment(f"{env}-older")
    chosen = client.create_experiment(f"{env}-chosen", tags={kind: "genai_development"})
    for name in (f"{env}-older", f"{env}-chosen"):
        with Tracker("download", experiment=name):
            pass
    assert client.get_experiment(older).tags[kind] == "custom_model_development"
    assert client.get_experiment(chosen).tags[kind] == "genai_development"


def test_stages_grouped_under_parent(env, client, monkeypatch):
    monkeypatch.setenv("LMPIPE_PIPELINE_RUN", "pipe-A")
    with Tracker("tokenize", experiment=env) as a:
        pass
    with Tracker("pretrain-mlm", experiment=env) as b:
        pass
    monkeypatch.setenv("LMPIPE_PIPELINE_RUN", "pipe-B")
    with Tracker("tokenize", experiment=env) as c:
        pass

    parent_of = {
        t.run_id: client.get_run(t.run_id).data.tags["mlflow.parentRunId"] for t in (a, b, c)
    }
    assert parent_of[a.run_id] == parent_of[b.run_id] == a.parent_run_id
    assert parent_of[c.run_id] != parent_of[a.run_id]

    parent = client.get_run(a.parent_run_id)
    assert parent.data.tags["pipeline_run"] == "pipe-A"
    assert parent.data.tags["mlflow.runName"] == "pipeline pipe-A"
    assert parent.info.status == "FINISHED"
    exp_id = client.get_experiment_by_name(env).experiment_id
    parents = client.search_runs([exp_id], "tags.lmpipe_role = 'pipeline'")
    assert sorted(r.data.tags["pipeline_run"] for r in parents) == ["pipe-A", "pipe-B"]


def test_exception_marks_run_failed_and_propagates(env, client):
    with pytest.raises(ValueError, match="boom"):
        with Tracker("finetune", experiment=env) as t:
            t.log_metrics({"loss": 2.0}, step=7)
            raise ValueError("boom")
    run = client.get_run(t.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "ValueError: boom"
    assert [(m.step, m.value) for m in client.get_metric_history(t.run_id, "loss")] == [(7, 2.0)]
    assert client.get_run(t.parent_run_id).info.status == "FAILED"


# --------------------------------------------------------------------------- robustness


def test_unreachable_server_warns_once_and_does_not_stall(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    f = tmp_path / "a.txt"
    f.write_text("a")
    ran = []
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with Tracker("evaluate", params={"a": 1}) as t:
            for step in range(200):
                t.log_metrics({"loss": 1.0}, step=step)
            t.set_tags({"c": "d"})
            t.log_artifact(f)
            ran.append(True)
    elapsed = time.monotonic() - t0
    assert ran == [True]
    assert elapsed < 20, f"stalled for {elapsed:.1f}s"
    tw = _tracking_warnings(rec)
    assert len(tw) == 1, [str(w.message) for w in tw]
    assert "tracking is disabled" in str(tw[0].message)
    assert t.run_id is None and not t.active
    for name, value in tracking.ENV_DEFAULTS.items():
        assert os.environ[name] == value


def test_hanging_server_bounded_by_user_http_settings(monkeypatch):
    # A listening socket that never answers: the TCP probe succeeds, the HTTP call times out.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{srv.getsockname()[1]}")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            with Tracker("evaluate") as t:
                t.log_metrics({"loss": 1.0}, step=1)
        assert time.monotonic() - t0 < 20
        assert len(_tracking_warnings(rec)) == 1
        assert t.run_id is None
        # user-set values are left alone
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "1"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    finally:
        srv.close()


def test_failure_mid_run_warns_once_and_disables(env, client):
    """MLflow writes in the background: a batch it cannot write becomes the one warning, at the next call, and
    MLflow's own error line for each failed batch is held back."""
    async_errors: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = async_errors.append
    logging.getLogger(tracking.ASYNC_LOGGER).addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            with Tracker("finetune", experiment=env) as t:
                client.delete_run(t.run_id)  # later writes to this run are rejected by MLflow
                t.log_metrics({"loss": 1.0}, step=0)
                deadline = time.monotonic() + 30
                while t.active and time.monotonic() < deadline:
                    t.log_metrics({"loss": 1.0}, step=1)
                    time.sleep(0.05)
                stopped_during_the_run = not t.active
                for step in range(300):
                    t.log_metrics({"loss": 1.0}, step=step)
                t.set_tags({"y": "z"})
                body_done = True
    finally:
        logging.getLogger(tracking.ASYNC_LOGGER).removeHandler(handler)
    assert body_done and stopped_during_the_run
    tw = _tracking_warnings(rec)
    assert len(tw) == 1 and "tracking is disabled" in str(tw[0].message)
    assert "background logging" in str(tw[0].message) and "deleted" in str(tw[0].message)
    assert not t.active
    assert [r.getMessage() for r in async_errors if t.run_id in r.getMessage()] == []


@pytest.mark.parametrize("var,value", [("LMPIPE_TRACKING", "0"), ("RANK", "1")])
def test_disabled_writes_nothing(monkeypatch, tmp_path, var, value):
    db = tmp_path / "off.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + db.as_posix())
    monkeypatch.setenv(var, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        with Tracker("pretrain-mlm", params={"a": 1}) as t:
            t.log_metrics({"loss": 1.0}, step=1)
            t.set_tags({"c": "d"})
            t.log_artifact(tmp_path)
    assert t.run_id is None and not t.active
    assert not db.exists()
    assert not (tmp_path / "mlartifacts").exists() and not (tmp_path / "mlruns").exists()


def test_rank_zero_logs(env, client, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    with Tracker("finetune", experiment=env) as t:
        pass
    assert client.get_run(t.run_id).info.status == "FINISHED"


def test_stages_starting_together_on_a_new_store_all_log(tmp_path):
    """`dvc queue start -j 2`: stages of two experiments open a store that does not exist yet at the same moment.
    Unserialised, MLflow's table creation and migrations race and leave a store that no run can open again."""
    db = tmp_path / "store" / "mlflow.db"
    start_at = time.time() + 8  # after every process has imported mlflow
    code = (
        "import sys, time, warnings\n"
        "from lmpipe.tracking import Tracker, TrackingWarning\n"
        "warnings.simplefilter('error', TrackingWarning)\n"
        f"time.sleep(max(0.0, {start_at} - time.time()))\n"
        "with Tracker(f'stage-{sys.argv[1]}', experiment='together') as t:\n"
        "    t.log_metrics({'loss': 1.0}, step=1)\n"
    )
    env = {**{k: v for k, v in os.environ.items() if k not in ENV_VARS}, "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
           "LMPIPE_PIPELINE_RUN": "together", "PYTHONPATH": str(ROOT / "src")}
    processes = [subprocess.Popen([sys.executable, "-c", code, str(i)], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                                  text=True) for i in range(3)]
    errors = [p.communicate(timeout=180)[1] for p in processes]
    failures = [error[-2000:] for p, error in zip(processes, errors) if p.returncode != 0]
    assert not failures, failures

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("together").experiment_id], "tags.lmpipe_role = 'stage'")
    assert sorted(r.data.tags["stage"] for r in runs) == ["stage-0", "stage-1", "stage-2"]
    assert all(r.data.metrics == {"loss": 1.0} for r in runs)
