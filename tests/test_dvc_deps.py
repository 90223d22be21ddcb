"""Each stage's code deps in dvc.yaml / clm/dvc.yaml are exactly the project modules it imports.

The import graph is read from the source (every `import` and `from ... import` statement, also those inside
functions, i.e. lazy imports), starting at the stage's script, and closed transitively over the project's own
modules (`stages/` and `src/lmpipe/`, package `__init__.py` files included). A module the stage never imports
must not be a dep (editing it would rerun the stage for nothing), and one it imports must be (editing it must
rerun the stage). Directory deps are not used for code: a directory's hash also covers files no stage imports
and, without `.dvcignore`, the interpreter's `__pycache__`.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CODE_ROOTS = ("stages", "src/lmpipe")


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name (`lmpipe.engine.loop`, `stages.finetune`), or None."""
    parts = name.split(".")
    base = ROOT / "src" if parts[0] == "lmpipe" else ROOT if parts[0] == "stages" else None
    if base is None:
        return None
    path = base.joinpath(*parts)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT / "src" if path.is_relative_to(ROOT / "src") else ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Dotted names of every module `path` may import (absolute and relative, top level and inside functions);
    `from a import b` counts `a` and, when it is a module, `a.b`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_closure(entry: str) -> set[Path]:
    """Every project file loaded when module `entry` runs (`python -m entry`): its packages' __init__ files, its
    imports, theirs, and so on."""
    todo, seen = [entry], set()
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, then a/b/c
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_modules(path))
    return seen


def stages() -> list[tuple[str, str, dict]]:
    out = []
    for dvc_file in ("dvc.yaml", "clm/dvc.yaml"):
        for name, stage in yaml.safe_load((ROOT / dvc_file).read_text())["stages"].items():
            out.append((dvc_file, name, stage))
    return out


def stage_module(stage: dict) -> str:
    words = shlex.split(stage["cmd"])
    assert words[:2] == ["python", "-m"], f"stages run as `python -m stages.<name>`: {stage['cmd']}"
    assert module_file(words[2]) is not None, f"{words[2]}: no such module"
    return words[2]


def declared_code(stage: dict) -> set[Path]:
    deps = [ROOT / d for d in stage.get("deps", [])]
    code_dirs = [ROOT / r for r in CODE_ROOTS]
    for dep in deps:
        if any(dep == d or dep.is_relative_to(d) for d in code_dirs):
            assert dep.suffix == ".py", f"{dep.relative_to(ROOT)}: list code deps file by file, not as a directory"
    return {d for d in deps if d.suffix == ".py"}


@pytest.mark.parametrize("dvc_file, name, stage", stages(), ids=[f"{f}:{n}" for f, n, _ in stages()])
def test_code_deps_are_exactly_the_imported_modules(dvc_file, name, stage):
    imported = import_closure(stage_module(stage))
    declared = declared_code(stage)
    missing = sorted(p.relative_to(ROOT).as_posix() for p in imported - declared)
    extra = sorted(p.relative_to(ROOT).as_posix() for p in declared - imported)
    assert not missing and not extra, (f"{dvc_file} stage {name}: add {missing or 'nothing'}; "
                                       f"remove {extra or 'nothing'}")


def test_the_tracer_follows_lazy_and_package_imports():
    """The tracer itself: a function-level import and package __init__ files."""
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure("stages.evaluate")}
    assert {"stages/__init__.py", "src/lmpipe/__init__.py", "src/lmpipe/engine/__init__.py"} <= closure
    # evaluation/metrics.py is imported inside a function of engine/objectives/classification.py
    assert "src/lmpipe/evaluation/metrics.py" in closure
    assert not any(p.startswith(("bench/", "tests/")) for p in closure)


def test_no_library_or_stage_imports_bench_or_tests():
    for root in CODE_ROOTS:
        for path in (ROOT / root).rglob("*.py"):
            bad = {n for n in imported_modules(path) if n.split(".")[0] in ("bench", "tests")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
