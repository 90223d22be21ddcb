"""Run the whole pipeline with a recipe, as one DVC experiment.

A recipe (recipes/<name>.yaml) holds the params.yaml keys it changes, nested as in params.yaml. It is merged into
params.yaml and validated against the schema first (an error names the key and the recipe), then

    dvc exp run -n <name> -S key=value ...

runs every stage the new values make stale and records the experiment (`dvc exp show`). Like any `dvc exp run`,
it leaves the recipe's values and results in the workspace.

    python -m lmpipe.cli.recipe recipes/imdb.yaml               # or: make recipe RECIPE=imdb
    python -m lmpipe.cli.recipe recipes/sst2.yaml --dry-run     # print the dvc command, run nothing
    python -m lmpipe.cli.recipe recipes/imdb.yaml --set finetune.train.epochs=2 --name imdb-2ep -- --temp

Options after `--` go to `dvc exp run` unchanged.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from lmpipe.config.loader import PARAMS_FILE, ParamsError
from lmpipe.config.schema import load_params


class RecipeError(ValueError):
    """A recipe that cannot run: the message names the recipe file and, where one is at fault, the key."""


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe's params as dotted keys (`data.files.train`) and their values."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe not found (the recipes are in recipes/)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RecipeError(f"{path}: cannot be read: {error}") from None
    if not isinstance(tree, dict) or not tree:
        raise RecipeError(f"{path}: expected a mapping of params.yaml keys to their values")
    return flatten(tree, source=str(path))


def flatten(tree: dict[str, Any], prefix: str = "", source: str = "recipe") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str) or not key or "." in key:
            raise RecipeError(f"{source}: {dotted!r}: keys are params.yaml names, nested as in params.yaml")
        if isinstance(value, dict):
            if not value:
                raise RecipeError(f"{source}: {dotted}: an empty mapping changes nothing; remove it")
            flat.update(flatten(value, f"{dotted}.", source))
        else:
            flat[dotted] = value
    return flat


def parse_set(assignment: str) -> tuple[str, Any]:
    """`key=value` from --set; the value is read as YAML (2, 2e-5, null, [a, b], text)."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {assignment}: expected key=value")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise RecipeError(f"--set {assignment}: the value is not valid YAML: {error}") from None


def validate(overrides: dict[str, Any], source: str, params_file: str | Path = PARAMS_FILE) -> None:
    """The params file with the recipe merged in must pass the schema, as the pipeline's first stage checks it."""
    try:
        load_params(params_file, overrides)
    except ParamsError as error:
        hint = ""
        if "file not found" in str(error):
            hint = " (copy or symlink the dataset's files there: docs/recipes.md)"
        raise RecipeError(f"{source}: {error}{hint}") from None
    except (AttributeError, TypeError):  # a dotted key through a value that is not a mapping (lr.x)
        raise RecipeError(f"{source}: a key goes below a value that is not a section: "
                          f"{', '.join(sorted(overrides))}") from None


_BARE = re.compile(r"^[A-Za-z_/][\w./-]*$")


def override_value(value: Any) -> str:
    """`value` in DVC's -S syntax (Hydra's override grammar): YAML-like scalars, [lists], quoted strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, str):
        if _BARE.match(value) and value.lower() not in ("null", "true", "false", "nan", "inf"):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise RecipeError(f"{value!r}: a {type(value).__name__} is not a params value")


def dvc_command(name: str, overrides: dict[str, Any], dvc_args: list[str]) -> list[str]:
    sets = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={override_value(value)}")]
    return ["dvc", "exp", "run", "-n", name, *sets, *dvc_args]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    dvc_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m lmpipe.cli.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="a recipe file, e.g. recipes/imdb.yaml")
    parser.add_argument("--name", help="the experiment's name (default: the recipe's file name)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one more params key (repeatable), after the recipe's")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the dvc command only")
    args = parser.parse_args(argv)
    try:
        overrides = read_recipe(args.recipe)
        overrides.update(parse_set(assignment) for assignment in args.set)
        validate(overrides, args.recipe)
        command = dvc_command(args.name or Path(args.recipe).stem, overrides, dvc_args)
    except RecipeError as error:
        print(f"recipe: {error}", file=sys.stderr)
        return 2
    print(shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    if not Path(".dvc").is_dir():
        print("recipe: no .dvc/ here: run it from the repository root (make pipeline initialises git and DVC)",
              file=sys.stderr)
        return 2
    executable = shutil.which("dvc")
    command = [executable, *command[1:]] if executable else [sys.executable, "-m", "dvc", *command[1:]]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
