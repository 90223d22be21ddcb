"""Atomic writes: a reader (or DVC) never sees a half-written file or directory, and nothing the user already had
is lost.

Every writer goes through `atomic_path`: the new content is written to a temporary directory beside the target
(`.<name>.lmpipe-tmp-<pid>-<random>`) and renamed over the target only when it is complete. The target is
resolved first (`Path('.').name` is empty), a file output never replaces a directory, and only what this module
created is ever removed. Inside `atomic_outputs()` the renames wait until the whole block succeeds, so a stage's
outputs appear together or not at all. A full disk becomes an `OutputWriteError` that names the output.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import ctypes
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

TEMP_MARKER = ".lmpipe-tmp-"
# .<target name>.lmpipe-tmp-<pid>-<mkdtemp's random suffix>: the pid tells a killed writer's leftovers apart
# from a live writer's temp.
_TEMP_RE = re.compile(rf"^\..*{re.escape(TEMP_MARKER)}(\d+)-[A-Za-z0-9_]+$")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class OutputPathError(ValueError):
    """An output path that cannot be written without destroying something (a directory, the root, ...)."""


class OutputWriteError(OSError):
    """Writing an output failed (e.g. the disk is full); the message names the output, which is left unchanged."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)  # one argument: str() is the message alone, without "[Errno 28]"
        self.errno = code


# Commits deferred by atomic_outputs(): (temporary path, target, temporary directory), in completion order.
_pending: contextvars.ContextVar[list[tuple[Path, Path, Path]] | None] = contextvars.ContextVar(
    "lmpipe_pending_outputs", default=None)
# Temporary paths being written now -> their targets, to name the real output in an error message.
_writing: contextvars.ContextVar[tuple[tuple[Path, Path], ...]] = contextvars.ContextVar(
    "lmpipe_writing", default=())


def resolve_output(path: str | os.PathLike, *, directory: bool = False) -> Path:
    """The absolute target of an output path, or an OutputPathError when writing it would destroy something.

    `.`, `..`, `/` and any existing directory are refused for a file output; a directory output must not
    replace an existing file. The last component is not followed if it is a symlink (the link is replaced,
    never the file it points to)."""
    raw = os.fspath(path)
    if not raw.strip():
        raise OutputPathError("output path is empty")
    absolute = Path(os.path.abspath(os.path.expanduser(raw)))
    if not absolute.name:
        raise OutputPathError(f"{raw}: is the root directory; give a {'directory' if directory else 'file'} name")
    target = absolute.parent.resolve() / absolute.name
    if directory:
        if target.exists() and not target.is_dir():
            raise OutputPathError(f"{raw}: exists and is not a directory; it is left as it is")
    else:
        if target.is_dir() or os.path.basename(raw) in (".", ".."):
            raise OutputPathError(f"{raw}: is a directory; give a file name (nothing was written)")
        if raw.endswith(("/", os.sep)):
            raise OutputPathError(f"{raw}: ends with '/', so it names a directory; give a file name")
    for parent in absolute.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{raw}: {parent} is not a directory")
            break
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, rename it over `path`.

    directory: the output is a directory (a model, a tokenizer, data/raw), replaced as a whole; otherwise a
    file, which never replaces a directory. Missing parent directories are created (and removed again if the
    write fails). Inside atomic_outputs() the rename waits for the end of that block."""
    target = resolve_output(path, directory=directory)
    created = _make_parents(target.parent)
    remove_stale_temps(target.parent)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARKER}{os.getpid()}-", dir=target.parent))
    tmp = tmp_dir / target.name
    # Inside another output's temporary directory the outer rename is the atomic step: write through.
    pending = None if _inside_temp(target) else _pending.get()
    token = _writing.set(((tmp_dir, target), *_writing.get()))
    try:
        yield tmp
        if not tmp.exists() and not tmp.is_symlink():
            raise OutputWriteError(f"{_real_name(target)}: the writer produced nothing; the output is left as it was")
        if pending is not None:
            pending.append((tmp, target, tmp_dir))
            tmp_dir = None  # atomic_outputs() commits or removes it
        else:
            _commit(tmp, target, tmp_dir)
    except OSError as error:
        named = _named(error, target)
        if named is error:
            raise
        raise named from error
    finally:
        _writing.reset(token)
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            if not target.exists():
                _remove_empty(created)


@contextlib.contextmanager
def atomic_outputs() -> Iterator[None]:
    """Every atomic_path finished inside this block is renamed into place only when the whole block succeeds:
    a stage's outputs appear together, or (on an error, a full disk, a kill) none of them changes.

    Read an output written in the block only after it: until then the previous version is in place."""
    if _pending.get() is not None:  # nested: the outer block commits
        yield
        return
    pending: list[tuple[Path, Path, Path]] = []
    token = _pending.set(pending)
    try:
        yield
    except BaseException:
        for _, _, tmp_dir in pending:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    finally:
        _pending.reset(token)
    for index, (tmp, target, tmp_dir) in enumerate(pending):
        try:
            _commit(tmp, target, tmp_dir)
        except BaseException:
            for _, _, rest in pending[index:]:
                shutil.rmtree(rest, ignore_errors=True)
            raise


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary directories atomic_path left in `directory` when its process was killed (their pid is
    no longer running); returns what was removed. Nothing else is touched."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not _pid_alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary output(s) a killed run left in %s", len(removed), directory)
    return removed


def remove_stale_temps_under(*roots: str | os.PathLike, depth: int = 3) -> list[Path]:
    """remove_stale_temps in `roots` and their subdirectories down to `depth` levels (not into symlinks or into
    temporary directories themselves)."""
    removed = []
    for root in roots:
        level = [Path(root)]
        for _ in range(depth + 1):
            below = []
            for directory in level:
                removed += remove_stale_temps(directory)
                with contextlib.suppress(OSError):
                    below += [Path(e.path) for e in os.scandir(directory)
                              if e.is_dir(follow_symlinks=False) and TEMP_MARKER not in e.name]
            level = below
    return removed


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 bytes (a leading BOM dropped) as text, or a ValueError naming `source`, the line and the byte offset of
    the first invalid byte or NUL byte (NUL marks binary data, not text)."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = start + e.start
        raise ValueError(f"{source}: line {_line_of(data, offset)}: not valid UTF-8 (byte offset {offset}: "
                         f"{e.reason}); binary data, or re-encode the text as UTF-8") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise ValueError(f"{source}: line {_line_of(data, nul)}: a NUL byte (byte offset {nul}): binary data, "
                         "not text")
    return text


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_rows_csv(path: str | os.PathLike, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Write a list of flat dicts as CSV; the header is `columns`, or the union of keys in first-seen order."""
    import csv

    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


@contextlib.contextmanager
def streaming_csv(path: str | os.PathLike, columns: list[str]) -> Iterator[Any]:
    """A CSV file written row by row while the block runs (a `csv.writer`, the header `columns` already
    written), so no table of every row is held in memory; renamed into place like every output here. The same
    bytes as write_rows_csv for the same rows."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        yield writer


def write_table(path: str | os.PathLike, table: "pyarrow.Table") -> None:
    """Write an Arrow table as Parquet."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# ------------------------------------------------------------------------------------------------ internals


def _commit(tmp: Path, target: Path, tmp_dir: Path) -> None:
    """Rename `tmp` over `target`; an existing directory target is swapped in one step where the kernel can
    (renameat2 RENAME_EXCHANGE), so there is no moment without it. The old version is removed with tmp_dir."""
    try:
        if target.is_dir() and not target.is_symlink():
            if not _exchange(tmp, target):
                old = tmp_dir / ".old"
                target.rename(old)
                tmp.rename(target)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot, and nothing changed."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _make_parents(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; return those created, deepest first."""
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_empty(missing)
        raise OutputPathError(f"{directory}: cannot create the output directory ({error.strerror})") from None
    return missing


def _remove_empty(directories: list[Path]) -> None:
    for directory in directories:  # deepest first; only directories this module created, and only when empty
        with contextlib.suppress(OSError):
            directory.rmdir()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _shown(path: Path) -> str:
    """`path` relative to the working directory when inside it (how the user named it), else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _inside_temp(path: Path) -> bool:
    return any(path.is_relative_to(tmp_dir) for tmp_dir, _ in _writing.get())


def _real_name(path: str | os.PathLike) -> str:
    """The output a temporary path stands for (data/raw/train.parquet, not data/.raw.lmpipe-tmp-1-x/raw/...)."""
    path = Path(os.path.abspath(path))
    mapped = True
    while mapped:  # a file in a directory output's temporary directory maps to that output, and so on outwards
        mapped = False
        for tmp_dir, target in _writing.get():
            if path.is_relative_to(tmp_dir):
                path = target.joinpath(*path.relative_to(tmp_dir).parts[1:])
                mapped = True
                break
    return _shown(path)


def _named(error: OSError, target: Path) -> OSError:
    """A full disk as one line that names the output and the free space; other errors pass unchanged."""
    if isinstance(error, (OutputWriteError, OutputPathError)) or error.errno not in _DISK_FULL:
        return error
    free = ""
    with contextlib.suppress(OSError):
        free = f", {shutil.disk_usage(target.parent).free / 2**20:.1f} MiB free there"
    name = _real_name(getattr(error, "filename", None) or target)
    return OutputWriteError(f"{name}: cannot write: {os.strerror(error.errno)}{free}; the previous output is "
                            "left unchanged", error.errno)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
