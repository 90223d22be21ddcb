"""MLflow tracking for pipeline stages that never crashes or stalls training.

Usage in a stage::

    with Tracker("pretrain-mlm", params=cfg) as tracker:
        for step, batch in ...:
            ...
            tracker.log_metrics({"train/loss": loss}, step=step)
        tracker.log_artifact("models/mlm")

Where runs go
-------------
``tracking_uri()``: ``MLFLOW_TRACKING_URI`` when set, else
``sqlite:///<repo root>/mlflow.db``. ``repo_root()`` is ``DVC_ROOT`` when set, else the git
top-level of the current directory, else the current directory. DVC sets ``DVC_ROOT`` for every
stage command it runs (``dvc repro`` and ``dvc exp run``); for queued/``--temp`` experiments the
stage runs in a temporary copy that is deleted afterwards and DVC overrides ``DVC_ROOT`` to point
to the real repository, so the database (and, for a new experiment on a sqlite store, the
artifacts, under ``<db dir>/mlartifacts``) survive the temporary copy.

Run layout and tags
-------------------
Each stage opens one MLflow run (named after the stage), nested (``mlflow.parentRunId``) under a
parent run named ``"pipeline <id>"`` that groups every stage of one pipeline run. The parent is
found by tag search (``pipeline_run`` = id and ``lmpipe_role`` = ``pipeline``) or created. Its
status mirrors the last stage that ran under it. Stage runs are tagged ``stage``,
``git_commit``, ``pipeline_run``, ``lmpipe_role`` = ``stage`` and, under ``dvc exp run``,
``dvc_exp_name``.

The pipeline id (``pipeline_run_id()``) is, in order:

1. ``DVC_EXP_NAME`` -- set by DVC for every stage of one ``dvc exp run`` (the experiment name,
   e.g. ``urban-sign``), so all stages of an experiment share a parent. Re-using a name
   (``dvc exp run -f -n NAME``) lands in the same parent.
2. ``LMPIPE_PIPELINE_RUN`` -- set it yourself to group stages run by hand / ``dvc repro``.
3. otherwise a 12-hex-digit hash of (git commit + contents of ``<repo root>/params.yaml``): one
   configuration of code and parameters is one pipeline run, so re-running ``dvc repro``
   without changing either adds its stage runs to the same parent, and changing ``params.yaml``
   starts a new one. Uncommitted code changes do not change the id.

``git_commit`` is ``DVC_EXP_BASELINE_REV`` when DVC sets it (the commit an experiment derives
from; a queued experiment may run after the real repository's HEAD has moved), else
``git rev-parse HEAD`` in the repo root, else ``"unknown"``.

Robustness
----------
Every MLflow call is guarded: the first failure emits ONE ``TrackingWarning`` naming the error
and the tracker disables itself for the rest of the run; training carries on. For ``http(s)``
tracking URIs, MLflow's HTTP retry/timeout variables (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``; MLflow's defaults are
7 retries with exponential backoff and a 120 s timeout, i.e. minutes per call) are set to small
values unless already set, and the server is probed with a ~2 s TCP connect before the first
call, so an unreachable server costs about two seconds, and a server that accepts connections
but hangs costs at most (retries + 1) x timeout (about 20 s) once, after which tracking is off.
Raise ``MLFLOW_HTTP_REQUEST_TIMEOUT`` yourself if large artifacts go through a proxying server.
A ``sqlite:///`` store is checked before MLflow opens it (the path is a directory, not a database,
not writable, or under a file): MLflow would retry that for about 100 s before giving up.
``Tracker(enabled=False)``,
``LMPIPE_TRACKING=0`` (or false/no/off) or ``RANK`` != 0 (torch.distributed non-zero ranks) make
the tracker a no-op that never imports mlflow. mlflow is imported lazily, so importing this
module is cheap. Metrics are buffered and written with ``MlflowClient.log_batch`` every
``FLUSH_EVERY`` calls / ``FLUSH_SECONDS`` seconds and on exit.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

__all__ = [
    "Tracker",
    "TrackingWarning",
    "git_commit",
    "pipeline_run_id",
    "repo_root",
    "tracking_uri",
    "tracking_enabled",
]

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
CONNECT_TIMEOUT_S = 2.0
# Applied only for http(s) URIs and only when the user has not set them.
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

# Fallbacks matching mlflow 3 (mlflow.utils.validation); the real values are read lazily.
_MAX_PARAM_VAL_LENGTH = 6000
_MAX_TAG_VAL_LENGTH = 8000
_MAX_KEY_LENGTH = 250
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000

_FALSY = {"0", "false", "no", "off"}
_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. :/]")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_\-.:/ ]")


class TrackingWarning(UserWarning):
    """Emitted once when MLflow tracking fails and is disabled for the rest of the run."""


# --------------------------------------------------------------------------- locations


def _run_git(args: list[str], cwd: str | os.PathLike | None) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _cwd() -> Path:
    try:
        return Path.cwd()
    except OSError:  # cwd deleted (e.g. a finished DVC temp executor)
        return Path(os.environ.get("PWD", "."))


def repo_root() -> Path:
    """``DVC_ROOT`` if set, else the git top-level of the cwd, else the cwd."""
    dvc_root = os.environ.get("DVC_ROOT")
    if dvc_root:
        return Path(dvc_root).expanduser().resolve()
    cwd = _cwd()
    top = _run_git(["rev-parse", "--show-toplevel"], cwd)
    return Path(top).resolve() if top else cwd.resolve()


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<repo root>/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return "sqlite:///" + (repo_root() / DB_NAME).as_posix()


def git_commit(root: Path | None = None) -> str:
    """Commit the code derives from: DVC_EXP_BASELINE_REV, else HEAD of the repo root."""
    baseline = os.environ.get("DVC_EXP_BASELINE_REV")
    if baseline:
        return baseline
    return _run_git(["rev-parse", "HEAD"], root or repo_root()) or "unknown"


def pipeline_run_id(root: Path | None = None) -> str:
    """DVC_EXP_NAME, else LMPIPE_PIPELINE_RUN, else hash(git commit + params.yaml)."""
    for var in ("DVC_EXP_NAME", "LMPIPE_PIPELINE_RUN"):
        value = os.environ.get(var, "").strip()
        if value:
            # Keep it usable inside an MLflow filter string (no quotes).
            return _SAFE_ID.sub("_", value)[:200]
    root = root or repo_root()
    h = hashlib.sha256(git_commit(root).encode())
    h.update(b"\0")
    try:
        h.update((root / "params.yaml").read_bytes())
    except OSError:
        pass
    return h.hexdigest()[:12]


def tracking_enabled() -> bool:
    """False when LMPIPE_TRACKING is 0/false/no/off or this is not rank 0."""
    if os.environ.get("LMPIPE_TRACKING", "").strip().lower() in _FALSY:
        return False
    try:
        rank = int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        rank = 0
    return rank == 0


# --------------------------------------------------------------------------- helpers


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _clean_key(key: Any) -> str:
    k = _INVALID_KEY_CHARS.sub("_", str(key)).lstrip("/")
    k = re.sub(r"\.\.+", ".", k)  # MLflow rejects '..' path segments
    return k[:_MAX_KEY_LENGTH] or "_"


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _as_float(value: Any) -> float | None:
    if isinstance(value, (str, bytes)):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return f if math.isfinite(f) else None


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _configure_http_env() -> None:
    for name, value in HTTP_ENV_DEFAULTS.items():
        if not os.environ.get(name):
            os.environ[name] = value


def _check_reachable(uri: str) -> None:
    p = urlparse(uri)
    host = p.hostname or "localhost"
    port = p.port or (443 if p.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise ConnectionError(f"MLflow server {host}:{port} unreachable ({e})") from None


_SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite_store(uri: str) -> None:
    """Fail at once (an OSError naming the path) where MLflow could not open or create the sqlite database: it would
    retry with back-off for about 100 s first. Creates nothing."""
    db = uri[len("sqlite:///") :].split("?", 1)[0]
    if not db or db == ":memory:":
        return
    path = Path(db).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"sqlite store {path}: is a directory, not a database file")
    if path.exists():
        try:
            with open(path, "rb") as f:
                header = f.read(len(_SQLITE_HEADER))
        except OSError as e:
            raise PermissionError(f"sqlite store {path}: cannot be read ({e.strerror})") from None
        if header and header != _SQLITE_HEADER:
            raise ValueError(f"sqlite store {path}: not an SQLite database")
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            raise PermissionError(f"sqlite store {path}: not writable")
        return
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise NotADirectoryError(f"sqlite store {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"sqlite store {path}: cannot create it in {existing} (not writable)")


def _sqlite_artifact_location(uri: str) -> str | None:
    """For a local sqlite store: <db dir>/mlartifacts (MLflow would use a cwd-relative ./mlruns)."""
    if not uri.startswith("sqlite:///"):
        return None
    db = uri[len("sqlite:///") :].split("?", 1)[0]
    if not db or db == ":memory:":
        return None
    return (Path(db).expanduser().resolve().parent / ARTIFACTS_DIR).as_uri()


def _caller_stacklevel() -> int:
    """warnings.warn stacklevel pointing at the first frame outside this module."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level += 1
        frame = frame.f_back
    return level


# --------------------------------------------------------------------------- tracker


class Tracker:
    """One MLflow run for one stage; a context manager. Never raises from tracking code."""

    FLUSH_EVERY = 50  # log_metrics calls between batch writes
    FLUSH_SECONDS = 30.0  # ... or seconds, whichever comes first

    def __init__(
        self,
        stage: str,
        params: dict | None = None,
        experiment: str = "lmpipe",
        enabled: bool = True,
    ) -> None:
        self.stage = stage
        self.experiment = experiment
        self.pipeline_run: str | None = None
        self.parent_run_id: str | None = None
        self._active = bool(enabled) and tracking_enabled()
        self._warned = False
        self._started = False
        self._ended = False
        self._client = None
        self._run_id: str | None = None
        self._pending_params: dict[str, Any] = dict(_flatten(params)) if params else {}
        self._pending_tags: dict[str, str] = {}
        self._pending_artifacts: list[tuple[str, str | None]] = []
        self._logged_params: dict[str, str] = {}
        self._metric_buf: list = []
        self._calls_since_flush = 0
        self._last_flush = time.monotonic()
        self._limits = (_MAX_PARAM_VAL_LENGTH, _MAX_TAG_VAL_LENGTH)

    # ------------------------------------------------------------------ state

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def active(self) -> bool:
        """True while the tracker is (or will be, before start) writing to MLflow."""
        return self._active

    def _fail(self, what: str, exc: BaseException) -> None:
        self._active = False
        self._metric_buf.clear()
        if not self._warned:
            self._warned = True
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            warnings.warn(
                f"MLflow tracking failed during {what} ({type(exc).__name__}: {msg[:300]}); "
                f"tracking is disabled for this run (stage {self.stage!r}), training continues.",
                TrackingWarning,
                stacklevel=_caller_stacklevel(),
            )

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._active:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - tracking must never break training
            self._fail(what, e)
            return None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Tracker":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                status = "FINISHED"
            elif issubclass(exc_type, KeyboardInterrupt):
                status = "KILLED"
            else:
                status = "FAILED"
            if exc_type is not None and self._run_id is not None:
                self._guard(
                    "set error tag",
                    self._write_tags,
                    {"error": f"{exc_type.__name__}: {exc}"},
                )
            self.end(status)
        except Exception:  # pragma: no cover - belt and braces: never mask the stage's error
            pass
        return False

    def start(self) -> "Tracker":
        """Open the run (called by ``__enter__``). Idempotent."""
        if not self._started:
            self._started = True
            self._guard("start", self._start)
        return self

    def end(self, status: str = "FINISHED") -> None:
        """Flush buffered metrics and end the run with ``status``. Idempotent."""
        if self._ended or not self._started:
            return
        self._ended = True
        self.flush()
        if self._run_id is not None:
            self._guard("end run", self._client.set_terminated, self._run_id, status)
        if self.parent_run_id is not None:
            self._guard("end parent run", self._client.set_terminated, self.parent_run_id, status)
        self._active = False

    def _start(self) -> None:
        uri = tracking_uri()
        if urlparse(uri).scheme in ("http", "https"):
            _configure_http_env()
            _check_reachable(uri)
        elif uri.startswith("sqlite:///"):
            _check_sqlite_store(uri)

        from mlflow.tracking import MlflowClient

        try:
            from mlflow.utils import validation as v

            self._limits = (v.MAX_PARAM_VAL_LENGTH, v.MAX_TAG_VAL_LENGTH)
        except Exception:  # noqa: BLE001
            pass

        client = MlflowClient(tracking_uri=uri)
        self._client = client
        exp_id = self._experiment_id(client, uri)

        root = repo_root()
        commit = git_commit(root)
        self.pipeline_run = pipeline_run_id(root)
        common = {
            "git_commit": commit,
            "mlflow.source.git.commit": commit,
            "pipeline_run": self.pipeline_run,
        }
        dvc_exp = os.environ.get("DVC_EXP_NAME")
        if dvc_exp:
            common["dvc_exp_name"] = dvc_exp
        try:
            common["mlflow.user"] = getpass.getuser()
        except Exception:  # noqa: BLE001
            pass

        self.parent_run_id = self._parent_run(client, exp_id, common)
        tags = {
            **common,
            "stage": self.stage,
            "lmpipe_role": "stage",
            "mlflow.parentRunId": self.parent_run_id,
        }
        if os.environ.get("DVC_STAGE"):
            tags["dvc_stage"] = os.environ["DVC_STAGE"]
        run = client.create_run(exp_id, tags=self._tag_values(tags), run_name=self.stage)
        self._run_id = run.info.run_id

        if self._pending_params:
            params, self._pending_params = self._pending_params, {}
            self._write_params(params)
        if self._pending_tags:
            pending, self._pending_tags = self._pending_tags, {}
            self._write_tags(pending)
        for path, artifact_path in self._pending_artifacts:
            self._write_artifact(path, artifact_path)
        self._pending_artifacts.clear()
        self._flush()

    def _experiment_id(self, client, uri: str) -> str:
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        try:
            return client.create_experiment(
                self.experiment, artifact_location=_sqlite_artifact_location(uri)
            )
        except Exception:
            exp = client.get_experiment_by_name(self.experiment)  # created concurrently
            if exp is None:
                raise
            return exp.experiment_id

    def _parent_run(self, client, exp_id: str, common: dict[str, str]) -> str:
        flt = f"tags.pipeline_run = '{self.pipeline_run}' and tags.lmpipe_role = 'pipeline'"
        found = client.search_runs(
            [exp_id], filter_string=flt, max_results=1, order_by=["attributes.start_time ASC"]
        )
        if found:
            parent = found[0]
            if parent.info.status != "RUNNING":
                client.update_run(parent.info.run_id, status="RUNNING")
            return parent.info.run_id
        tags = {**common, "lmpipe_role": "pipeline"}
        run = client.create_run(
            exp_id, tags=self._tag_values(tags), run_name=f"pipeline {self.pipeline_run}"
        )
        return run.info.run_id

    # ------------------------------------------------------------------ writers (unguarded)

    def _tag_values(self, tags: Mapping[str, Any]) -> dict[str, str]:
        out = {}
        for k, v in tags.items():
            key = str(k) if str(k).startswith("mlflow.") else _clean_key(k)
            out[key] = _truncate(str(v), self._limits[1])
        return out

    def _write_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        todo = []
        for k, v in params.items():
            key = _clean_key(k)
            val = _truncate(str(v), self._limits[0])
            if key in self._logged_params:
                # MLflow params are immutable; re-logging a different value is an error.
                continue
            self._logged_params[key] = val
            todo.append(Param(key, val))
        for chunk in _chunks(todo, _MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(self._run_id, params=chunk)

    def _write_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in self._tag_values(tags).items()]
        for chunk in _chunks(items, _MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(self._run_id, tags=chunk)

    def _write_artifact(self, path: str, artifact_path: str | None) -> None:
        if os.path.isdir(path):
            self._client.log_artifacts(self._run_id, path, artifact_path)
        else:
            self._client.log_artifact(self._run_id, path, artifact_path)

    def _flush(self) -> None:
        self._calls_since_flush = 0
        self._last_flush = time.monotonic()
        if not self._metric_buf or self._run_id is None:
            return
        from mlflow.entities import Metric

        buf, self._metric_buf = self._metric_buf, []
        metrics = [Metric(k, v, ts, s) for k, v, ts, s in buf]
        for chunk in _chunks(metrics, _MAX_METRICS_PER_BATCH):
            self._client.log_batch(self._run_id, metrics=chunk)

    # ------------------------------------------------------------------ public logging API

    def log_params(self, params: dict) -> None:
        """Log (nested) params; nested keys flattened with dots, over-long values truncated."""
        if not self._active or not params:
            return
        flat = _flatten(params)
        if self._run_id is None:
            self._pending_params.update(flat)
            return
        self._guard("log_params", self._write_params, flat)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Buffer metrics at ``step`` (the optimizer step; MLflow's default 0 when None).

        Non-numeric and non-finite values are skipped. Written in batches.
        """
        if not self._active or not metrics:
            return
        try:
            ts = int(time.time() * 1000)
            s = int(step) if step is not None else 0
            for k, v in metrics.items():
                f = _as_float(v)
                if f is not None:
                    self._metric_buf.append((_clean_key(k), f, ts, s))
        except Exception as e:  # noqa: BLE001
            self._fail("log_metrics", e)
            return
        self._calls_since_flush += 1
        if self._run_id is not None and (
            self._calls_since_flush >= self.FLUSH_EVERY
            or len(self._metric_buf) >= _MAX_METRICS_PER_BATCH
            or time.monotonic() - self._last_flush >= self.FLUSH_SECONDS
        ):
            self._guard("log_metrics", self._flush)

    def flush(self) -> None:
        """Write buffered metrics now."""
        self._guard("log_metrics", self._flush)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a directory (its contents, under ``artifact_path``)."""
        if not self._active:
            return
        path = os.fspath(path)
        if self._run_id is None:
            self._pending_artifacts.append((path, artifact_path))
            return
        self._guard("log_artifact", self._write_artifact, path, artifact_path)

    def set_tags(self, tags: dict) -> None:
        if not self._active or not tags:
            return
        if self._run_id is None:
            self._pending_tags.update(tags)
            return
        self._guard("set_tags", self._write_tags, tags)
