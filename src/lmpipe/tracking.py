"""MLflow tracking for the stages: a run per stage, grouped per pipeline run, that never crashes or stalls training.

The store is MLFLOW_TRACKING_URI, else sqlite:///<repo root>/mlflow.db (artifacts beside it in mlartifacts/), the repo
root being DVC_ROOT (the real repository, also for a queued experiment run in a temporary copy), else the git top
level, else the working directory. Stage runs (tags stage, git_commit, pipeline_run, dvc_exp_name) are nested under a
run "pipeline <id>", the id being DVC_EXP_NAME, else LMPIPE_PIPELINE_RUN, else a hash of the git commit and the params
file the stage read. Metrics, params and tags go through MLflow's asynchronous logging, which merges what is queued
into batches. The first failure (a store that would stall is refused at once) is one TrackingWarning, then tracking is
off for the run. enabled=False, LMPIPE_TRACKING=0 or RANK != 0: a tracker that does nothing and never imports mlflow.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import math
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DB_NAME, ARTIFACTS_DIR = "mlflow.db", "mlartifacts"
# MLflow 3's record of an experiment's kind: model training, not GenAI. MLflow 3.17's UI picks its view from its
# sidebar switch instead (or a URL's ?workflowType=machine_learning), not yet from this tag.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
# Set where unset: MLflow's HTTP defaults retry for minutes; its async logging unbuffered writes a batch per call.
ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"}
ASYNC_LOGGER = "mlflow.utils.async_logging.async_logging_queue"  # an error line per failed background batch
_params_file: Path | None = None


class TrackingWarning(UserWarning):
    """A Tracker's one warning when MLflow fails; tracking is then off for the rest of the run."""


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def repo_root() -> Path:
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).expanduser().resolve()
    try:
        cwd = Path.cwd()
    except OSError:  # deleted: a finished DVC temporary copy
        cwd = Path(os.environ.get("PWD", "."))
    top = _git("rev-parse", "--show-toplevel", cwd=cwd)
    return Path(top).resolve() if top else cwd.resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + (repo_root() / DB_NAME).as_posix()


def git_commit(root: Path | None = None) -> str:
    """DVC_EXP_BASELINE_REV (a queued experiment may run after HEAD moved), else HEAD, else "unknown"."""
    return os.environ.get("DVC_EXP_BASELINE_REV") or _git("rev-parse", "HEAD", cwd=root or repo_root()) or "unknown"


def set_pipeline_params_file(path: str | Path) -> None:
    """Name the params file this process's stage read (lmpipe.stage.start does): pipeline_run_id hashes it."""
    global _params_file
    _params_file = Path(path).resolve()


def pipeline_run_id(root: Path | None = None) -> str:
    """DVC_EXP_NAME, else LMPIPE_PIPELINE_RUN, else a hash of the git commit and the params file the stage read
    (<repo root>/params.yaml when none was named): one configuration of code and parameters, one pipeline run."""
    for var in ("DVC_EXP_NAME", "LMPIPE_PIPELINE_RUN"):
        if os.environ.get(var, "").strip():  # kept quotable in an MLflow filter string
            return re.sub(r"[^A-Za-z0-9_\-.:/ ]", "_", os.environ[var].strip())[:200]
    root = root or repo_root()
    digest = hashlib.sha256(git_commit(root).encode() + b"\0")
    with contextlib.suppress(OSError):
        digest.update((_params_file or root / "params.yaml").read_bytes())
    return digest.hexdigest()[:12]


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        is_section = isinstance(value, Mapping) and value
        flat.update(_flatten(value, f"{prefix}{key}.") if is_section else {f"{prefix}{key}": value})
    return flat


def _key(key: Any) -> str:
    """A name MLflow accepts: other characters become _, no leading / nor '..'."""
    return re.sub(r"\.\.+", ".", re.sub(r"[^A-Za-z0-9_\-. :/]", "_", str(key)).lstrip("/"))[:250] or "_"


def _finite(value: Any) -> float | None:
    with contextlib.suppress(TypeError, ValueError, RuntimeError):
        if not isinstance(value, (str, bytes)) and math.isfinite(number := float(value)):
            return number
    return None


def _sqlite_file(uri: str) -> Path | None:
    db = uri[len("sqlite:///"):].split("?", 1)[0] if uri.startswith("sqlite:///") else ""
    return Path(db).expanduser() if db and db != ":memory:" else None


def _check_store(uri: str) -> None:
    """Raise at once where MLflow would stall (it retries a sqlite file it cannot open for about 100 s, an
    unreachable server for minutes). Creates nothing."""
    parsed, path = urlparse(uri), _sqlite_file(uri)
    if parsed.scheme in ("http", "https"):
        host, port = parsed.hostname or "localhost", parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((host, port), timeout=2.0).close()
        except OSError as e:
            raise ConnectionError(f"MLflow server {host}:{port} unreachable ({e})") from None
    if path is None:
        return
    if path.is_dir():
        raise IsADirectoryError(f"sqlite store {path}: is a directory, not a database file")
    if path.exists():
        with open(path, "rb") as f:
            if f.read(16) not in (b"", b"SQLite format 3\x00"):
                raise ValueError(f"sqlite store {path}: not an SQLite database")
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)  # MLflow makes the rest
    folder = existing.parent if existing == path else existing
    if not folder.is_dir():
        raise NotADirectoryError(f"sqlite store {path}: {folder} is not a directory")
    if not os.access(existing, os.W_OK) or not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"sqlite store {path}: not writable")


def _store_lock(uri: str) -> contextlib.AbstractContextManager:
    """Held while MLflow opens a sqlite store: two stages starting at once on a new file (`dvc queue start -j 2`)
    would both create and migrate its tables, and the loser leaves a store no later run can open."""
    db = _sqlite_file(uri)
    if db is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{db}.lock", timeout=120)


class Tracker:
    """One MLflow run for one stage, as a context manager; nothing in it raises into the stage."""

    def __init__(self, stage: str, params: Mapping[str, Any] | None = None, experiment: str = "lmpipe",
                 enabled: bool = True) -> None:
        self.stage, self.experiment, self.params = stage, experiment, dict(params or {})
        off = os.environ.get("LMPIPE_TRACKING", "").strip().lower() in {"0", "false", "no", "off"}
        self.active = enabled and not off and os.environ.get("RANK", "0").strip() in {"", "0"}
        self.run_id: str | None = None
        self.parent_run_id: str | None = None
        self._client: Any = None
        self._pending: list = []  # MLflow's handles on what was queued since the last flush
        self._background_error = ""

    def __enter__(self) -> Tracker:
        self._guard("start", self._start)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.set_tags({"error": f"{exc_type.__name__}: {exc}"})
        status = "FINISHED" if exc_type is None else "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        self._guard("end run", self._end, status)
        logging.getLogger(ASYNC_LOGGER).removeFilter(self._catch_background_failure)
        self.active = False

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue the finite numbers of `metrics` at `step` (MLflow's 0 when None); other values are skipped."""
        if self.active and metrics:
            from mlflow.entities import Metric

            now, step = int(time.time() * 1000), int(step or 0)
            self._queue(metrics=[Metric(_key(k), f, now, step) for k, v in metrics.items()
                                 if (f := _finite(v)) is not None])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.active and tags:
            from mlflow.entities import RunTag

            self._queue(tags=[RunTag(_key(k), str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file, or a directory's contents, into the run's artifacts (under `artifact_path`)."""
        if self.active:
            log = self._client.log_artifacts if os.path.isdir(path) else self._client.log_artifact
            self._guard("log_artifact", log, self.run_id, os.fspath(path), artifact_path)

    def flush(self) -> None:
        """Wait until what was queued is written."""
        self._guard("flush", self._wait)

    def _guard(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.active:
            return None
        try:
            if not self._background_error:
                return call(*args, **kwargs)
            what, error = "background logging", self._background_error
        except Exception as e:  # noqa: BLE001 - tracking must never break training
            error = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
        self.active = False
        frame, level = sys._getframe(1), 2  # the warning points at the first caller outside this module
        while frame is not None and frame.f_code.co_filename == __file__:
            frame, level = frame.f_back, level + 1
        warnings.warn(f"MLflow tracking failed during {what} ({error}); tracking is disabled for this run (stage "
                      f"{self.stage!r}), training continues.", TrackingWarning, stacklevel=level)
        return None

    def _catch_background_failure(self, record: logging.LogRecord) -> bool:
        """A filter on MLflow's async logger: this run's failed batches become the tracker's one warning (at its
        next call), not an error line each."""
        if self.run_id and self.run_id in record.getMessage():
            self._background_error = self._background_error or record.getMessage()[:300]
            return False
        return True

    def _queue(self, **entities: list) -> None:
        if any(entities.values()):
            self._pending.append(self._guard("log", self._client.log_batch, self.run_id, **entities, synchronous=False))

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        for operations in filter(None, pending):
            operations.wait()  # raises what failed in the background

    def _start(self) -> None:
        for name, value in ENV_DEFAULTS.items():
            os.environ[name] = os.environ.get(name) or value
        uri = tracking_uri()
        _check_store(uri)
        from mlflow import MlflowClient
        from mlflow.entities import Param

        with _store_lock(uri):
            self._client = client = MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment_id(uri)
        root = repo_root()
        commit, pipeline = git_commit(root), pipeline_run_id(root)
        common = {"git_commit": commit, "mlflow.source.git.commit": commit, "pipeline_run": pipeline}
        common |= {tag: os.environ[var] for tag, var in (("dvc_exp_name", "DVC_EXP_NAME"), ("dvc_stage", "DVC_STAGE"))
                   if os.environ.get(var)}
        with contextlib.suppress(Exception):  # no user name for this uid
            common["mlflow.user"] = getpass.getuser()
        found = client.search_runs([experiment_id], f"tags.pipeline_run = '{pipeline}' and tags.lmpipe_role = "
                                   "'pipeline'", max_results=1, order_by=["attributes.start_time ASC"])
        if found and found[0].info.status != "RUNNING":
            client.update_run(found[0].info.run_id, status="RUNNING")
        self.parent_run_id = found[0].info.run_id if found else client.create_run(
            experiment_id, tags={**common, "lmpipe_role": "pipeline"}, run_name=f"pipeline {pipeline}").info.run_id
        self.run_id = client.create_run(experiment_id, run_name=self.stage, tags={
            **common, "stage": self.stage, "lmpipe_role": "stage", "mlflow.parentRunId": self.parent_run_id}).info.run_id
        logging.getLogger(ASYNC_LOGGER).addFilter(self._catch_background_failure)
        self._queue(params=[Param(_key(k), str(v)) for k, v in _flatten(self.params).items()])

    def _experiment_id(self, uri: str) -> str:
        experiment = self._client.get_experiment_by_name(self.experiment)
        if experiment is None:
            db = _sqlite_file(uri)  # artifacts beside the database, not in a ./mlruns of the working directory
            location = (db.resolve().parent / ARTIFACTS_DIR).as_uri() if db else None
            try:
                return self._client.create_experiment(self.experiment, location, tags=EXPERIMENT_TAGS)
            except Exception:  # made meanwhile by a stage running alongside
                if (experiment := self._client.get_experiment_by_name(self.experiment)) is None:
                    raise
        for key, value in EXPERIMENT_TAGS.items():  # also on experiments made before lmpipe set them
            if key not in experiment.tags:
                self._client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id

    def _end(self, status: str) -> None:
        for run_id in (self.run_id, self.parent_run_id):
            self._client.set_terminated(run_id, status)  # the first also drains MLflow's queue
        self._wait()
