"""lmpipe.io: output paths that could destroy data are refused; writes are all-or-nothing, also under kill -9
and a full disk (a real tiny tmpfs where the system allows one, /dev/full otherwise)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lmpipe import io
from lmpipe.io import (
    OutputPathError,
    OutputWriteError,
    atomic_outputs,
    atomic_path,
    remove_stale_temps,
    remove_stale_temps_under,
    write_text,
)

ROOT = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for a directory): equal snapshots mean nothing changed."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))} | {".": None}


@pytest.fixture()
def sandbox(tmp_path, monkeypatch) -> Path:
    """tmp_path/work as the working directory, with files on both sides of it."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "keep.txt").write_text("mine")
    (work / "sub" / "inner.txt").write_text("also mine")
    (tmp_path / "sibling.txt").write_text("next door")
    monkeypatch.chdir(work)
    return tmp_path


@pytest.mark.parametrize("target", [".", "./", "..", "sub", "sub/", "keep.txt/", "", "sub/.", "sub/.."])
def test_a_file_output_never_replaces_a_directory(sandbox, target):
    before = snapshot(sandbox)
    with pytest.raises(OutputPathError):
        write_text(target, "new")
    assert snapshot(sandbox) == before


def test_the_root_directory_is_refused_before_any_filesystem_call():
    with pytest.raises(OutputPathError, match="root directory"):
        io.resolve_output("/")
    with pytest.raises(OutputPathError, match="root directory"):
        io.resolve_output("/", directory=True)


def test_a_directory_output_never_replaces_a_file(sandbox):
    before = snapshot(sandbox)
    with pytest.raises(OutputPathError, match="not a directory"):
        with atomic_path("keep.txt", directory=True) as tmp:
            tmp.mkdir()
    with pytest.raises(OutputPathError, match="keep.txt is not a directory"):
        write_text("keep.txt/x.csv", "new")
    assert snapshot(sandbox) == before


def test_missing_parents_are_created_and_removed_again_when_the_write_fails(sandbox):
    write_text("new/deeper/x.csv", "a,b\n")
    assert Path("new/deeper/x.csv").read_text() == "a,b\n"
    before = snapshot(sandbox)
    with pytest.raises(RuntimeError):
        with atomic_path("other/deeper/y.csv") as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert snapshot(sandbox) == before  # no other/ left behind


def test_a_symlink_target_is_replaced_not_followed(sandbox):
    Path("link.txt").symlink_to("keep.txt")
    write_text("link.txt", "new")
    assert Path("keep.txt").read_text() == "mine" and Path("link.txt").read_text() == "new"


def test_a_directory_output_is_swapped_whole(sandbox):
    with atomic_path("model", directory=True) as tmp:
        tmp.mkdir()
        (tmp / "old.bin").write_text("1")
    with atomic_path("model", directory=True) as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("2")
    assert sorted(os.listdir("model")) == ["new.bin"]
    assert not [p for p in os.listdir(".") if io.TEMP_MARKER in p]


def test_atomic_outputs_commits_all_or_nothing(sandbox):
    write_text("a.txt", "old a")
    write_text("b.txt", "old b")
    with pytest.raises(RuntimeError):
        with atomic_outputs():
            write_text("a.txt", "new a")
            assert Path("a.txt").read_text() == "old a"  # not yet: the set commits at the end
            raise RuntimeError("the second output failed")
    assert (Path("a.txt").read_text(), Path("b.txt").read_text()) == ("old a", "old b")
    with atomic_outputs():
        write_text("a.txt", "new a")
        write_text("b.txt", "new b")
    assert (Path("a.txt").read_text(), Path("b.txt").read_text()) == ("new a", "new b")
    assert not [p for p in os.listdir(".") if io.TEMP_MARKER in p]


def test_disk_full_names_the_output_and_keeps_the_old_one(sandbox):
    write_text("data/raw/train.parquet", "old")
    before = snapshot(sandbox)
    with pytest.raises(OutputWriteError) as error:
        with atomic_path("data/raw", directory=True) as raw:
            raw.mkdir()
            with atomic_path(raw / "train.parquet") as tmp, open(tmp, "w") as f:
                os.dup2(os.open("/dev/full", os.O_WRONLY), f.fileno())  # every write: ENOSPC
                f.write("x" * 10)
                f.flush()
    message = str(error.value)
    assert message.startswith("data/raw/train.parquet: cannot write: No space left on device")
    assert "\n" not in message and "lmpipe-tmp" not in message
    assert snapshot(sandbox) == before


def test_stale_temps_of_dead_writers_go_and_nothing_else(sandbox):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = Path(f"sub/.inner.txt{io.TEMP_MARKER}{dead}-abc123")
    live = Path(f"sub/.inner.txt{io.TEMP_MARKER}{os.getpid()}-def456")
    lookalike = Path("sub/.inner.txt.tmp-123-abc")  # not ours: kept
    for path in (stale, live, lookalike):
        (path / "inner.txt").parent.mkdir(parents=True)
        (path / "inner.txt").write_text("x")
    assert remove_stale_temps("sub") == [Path("sub") / stale.name]
    assert live.exists() and lookalike.exists() and Path("sub/inner.txt").read_text() == "also mine"
    shutil.rmtree(live)
    assert remove_stale_temps_under(".") == []


def test_sigkill_mid_write_leaves_nothing_inside_the_output_and_the_next_run_cleans_up(sandbox):
    """A stage killed while writing data/raw: the old data/raw is whole, the temporary lies beside it (never inside,
    where `dvc commit` would record it), and the next writer removes it."""
    write_text("data/raw/labels.json", "[\"old\"]")
    script = textwrap.dedent("""
        import os, signal, sys
        from lmpipe.io import atomic_path, write_text
        with atomic_path("data/raw", directory=True) as raw:
            write_text(raw / "train.parquet", "new")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=Path.cwd())
    assert result.returncode == -signal.SIGKILL
    assert os.listdir("data/raw") == ["labels.json"]
    leftovers = [p for p in os.listdir("data") if io.TEMP_MARKER in p]
    assert len(leftovers) == 1
    write_text("data/other.json", "{}")  # any later write in data/ removes the dead run's temporary
    assert not [p for p in os.listdir("data") if io.TEMP_MARKER in p]


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="no user namespaces to mount a small tmpfs")
def test_download_on_a_full_disk_keeps_the_old_data_and_names_the_output(tmp_path):
    """The download stage, run for real in a mount namespace whose data/ is a 2 MiB tmpfs: the new corpus does not
    fit, the stage fails with one line naming data/raw, and the old splits, corpus and labels stay as they were."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    script = textwrap.dedent(f"""
        set -e
        mount -t tmpfs -o size=2m none data
        mkdir -p data/raw && cp old/* data/raw/
        {sys.executable} -m stages.download > out.txt 2>&1 || echo "exit $?" >> out.txt
        find data -type f | sort > files.txt
        sha256sum data/raw/* > sums.txt
    """)
    (repo / "data").mkdir()
    (repo / "old").mkdir()
    for name, text in [("labels.json", '["a", "b"]\n'), ("corpus.parquet", "old corpus"),
                       ("train.parquet", "old train")]:
        (repo / "old" / name).write_text(text)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace(
        "corpus_documents: 20000", "corpus_documents: 60000"))
    env = {**os.environ, "LMPIPE_TRACKING": "0", "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=repo, env=env, check=True)
    lines = (repo / "out.txt").read_text().strip().splitlines()
    assert lines[-1] == "exit 1"
    assert lines[-2].startswith("lmpipe.io.OutputWriteError: data/raw/corpus/")  # a corpus shard
    assert "cannot write: No space left on device" in lines[-2]
    assert lines[-2].endswith("the previous output is left unchanged")
    assert (repo / "files.txt").read_text().split() == ["data/raw/corpus.parquet", "data/raw/labels.json",
                                                        "data/raw/train.parquet"]
    expected = sorted(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  data/raw/{p.name}"
                      for p in (repo / "old").iterdir())
    assert sorted((repo / "sums.txt").read_text().splitlines()) == expected
