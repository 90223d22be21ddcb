"""Read a params file into a typed schema: unknown, missing, duplicate and ill-typed keys fail with the key's
full path before any stage does expensive work.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

PARAMS_FILE = "params.yaml"


class ParamsError(ValueError):
    """A params.yaml value is unknown, of the wrong type or impossible; the message starts with its key path."""


def read_params(path: str | Path, schema: type, overrides: dict[str, Any] | None = None) -> Any:
    """Read, coerce and validate a params file against `schema`; `overrides` maps dotted keys to values (tests,
    scripts)."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a directory, not a params file") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except _DuplicateKey as err:
        raise ParamsError(f"{path}: line {err.line}: duplicate key {err.key!r} (first on line {err.first}); "
                          "YAML keeps only one of them, and DVC refuses the file: remove one") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        raise ParamsError(f"{path}: is empty; it must hold the pipeline's params (see the repository's copy)")
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return build_params(raw, schema)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error, not "the last one wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise _DuplicateKey(key, line, first_line[key])
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def build_params(raw: dict[str, Any], schema: type) -> Any:
    params = _build(schema, raw, "")
    _check_tree(params, "")
    return params


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def to_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params)


def _check_tree(node: Any, path: str) -> None:
    """Run `check` bottom-up: nested sections first, so messages point at the deepest key."""
    for f in dataclasses.fields(node):
        child = getattr(node, f.name)
        if dataclasses.is_dataclass(child):
            _check_tree(child, _join(path, f.name))
    if hasattr(node, "check"):
        node.check(path)


def _build(cls: type, raw: Any, path: str) -> Any:
    """Build `cls` from `raw`, which must name every field: no value comes from code."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{path or '<top level>'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ParamsError(f"{_join(path, unknown[0])}: unknown key (expected one of: {', '.join(sorted(names))})")
    missing = [name for name in names if name not in raw]
    if missing:
        raise ParamsError(f"{_join(path, missing[0])}: missing (the params file sets every value; see the "
                          f"repository's params.yaml for this key and its meaning)")
    values = {}
    for name in names:
        key_path = _join(path, name)
        if dataclasses.is_dataclass(hints[name]):
            values[name] = _build(hints[name], raw[name], key_path)
        else:
            values[name] = _coerce(raw[name], hints[name], key_path)
    return cls(**values)


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], path)
        for option in inner:  # e.g. `balanced` or a list of weights: the first type that takes the value
            try:
                return _coerce(value, option, path)
            except ParamsError:
                continue
        raise ParamsError(f"{path}: expected {' or '.join(_describe(a) for a in inner)}"
                          f"{' or null' if type(None) in args else ''}, got {value!r}")
    if value is None:
        raise ParamsError(f"{path}: must not be null (expected {_describe(hint)})")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{path}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamsError(f"{path}: must be a finite whole number, got {value!r}")
    elif hint is float:
        # DVC writes `-S lr=2e-5` back as 2e-05, and PyYAML (YAML 1.1) reads exponents without a dot as strings.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # YAML's .inf / .nan: no knob of this pipeline means them
                raise ParamsError(f"{path}: must be a finite number, got {value!r}")
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            result = float(value)
            if math.isfinite(result):
                return result
    elif hint is str:
        if isinstance(value, str):
            return value
    raise ParamsError(f"{path}: expected {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(map(repr, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))


def _require(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise ParamsError(f"{path}: {message}")


def require_positive(section: Any, path: str, *names: str) -> None:
    for name in names:
        _require(getattr(section, name) > 0, f"{path}.{name}", "must be > 0")


def require_probability(section: Any, path: str, *names: str) -> None:
    """Dropout-like rates: in [0, 1)."""
    for name in names:
        _require(0 <= getattr(section, name) < 1, f"{path}.{name}", "must be in [0, 1)")


def require_heads_divide(section: Any, path: str, width: str) -> None:
    """Attention splits the width evenly over the heads."""
    size, heads = getattr(section, width), section.heads
    _require(size % heads == 0, f"{path}.{width}", f"must be divisible by {path}.heads ({size} % {heads} != 0)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
