"""check-params: the whole params file validated against its schema, every key (also one that no stage tracks,
e.g. `dvc exp run -S +typo=1`), before any stage runs. DVC reruns it whenever any value in the file changes.

Usage: python -m stages.check_params [--params clm/params.yaml --schema clm]
"""

from __future__ import annotations

import argparse
import sys

from lmpipe.config.loader import PARAMS_FILE, ParamsError
from lmpipe.config.schema import load_params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=PARAMS_FILE)
    parser.add_argument("--schema", choices=("main", "clm"), default="main")
    args = parser.parse_args(argv)
    if args.schema == "clm":
        from lmpipe.config.clm_schema import load_clm_params as load
    else:
        load = load_params
    try:
        load(args.params)
    except ParamsError as error:
        print(f"check-params: {error}", file=sys.stderr)
        return 1
    print(f"check-params: {args.params} is valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
