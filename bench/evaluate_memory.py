"""Evaluate memory: peak RSS and wall time of the `evaluate` stage as the scored split grows, before and after
streaming evaluate (commit 513a34e, issue 17 item 7).

    nice -n 19 python -m bench.evaluate_memory --data data/external/imdb/train.csv   # 2,500 and 25,000 reviews
    nice -n 19 python -m bench.evaluate_memory --data ... --sizes 1000,5000 --no-write
    nice -n 19 python -m bench.evaluate_memory --data ... --before-code DIR   # an existing checkout of 513a34e^

For each code version ("before": 513a34e^, exported with `git archive` unless --before-code names a checkout;
"after": this checkout) a scratch project is built: params.yaml of THAT version with data.source files
(train: --train-rows seeded IMDB reviews; test: the first N rows of the IMDB CSV), a tiny encoder (1 layer,
hidden 32, vocab 2,000, max_length 128), a few pretraining / fine-tuning steps and tracking off. The stages run
one at a time (`python -m stages.<name>`, the version's own src/ on PYTHONPATH) with the smallest split; then for
each size the test file is switched, `download` and `baseline` rerun (evaluate reads data/raw/test.parquet and
checks the refit baseline against reports/baseline/metrics.json; data/tokenized is not read), and `evaluate`
alone is measured with bench.growth._measure: wall and CPU time, peak RSS (wait4) and peak process-tree PSS.
evaluate's own settings (batch_size, ...) stay at the version's params.yaml values.

The table goes to bench/EVALUATE.md between `<!-- evaluate:begin -->` and `<!-- evaluate:end -->` (the rest of
the file is kept); raw numbers to bench/EVALUATE.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.growth import _machine, _measure

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "513a34e^"
BUILD = (("download", "stages.download"), ("tokenize", "stages.tokenize_data"),
         ("pretrain-mlm", "stages.pretrain_mlm"), ("finetune", "stages.finetune finetune"),
         ("freeze-finetune", "stages.finetune freeze-finetune"),
         ("finetune-scratch", "stages.finetune finetune-scratch"), ("baseline", "stages.baseline"))
BEGIN, END = "<!-- evaluate:begin -->", "<!-- evaluate:end -->"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2500,25000", help="rows of the scored (test) split, ascending")
    parser.add_argument("--data", type=Path, required=True, help="IMDB CSV (review,sentiment); test = its first rows")
    parser.add_argument("--train-rows", type=int, default=2000, help="training reviews (a seeded sample)")
    parser.add_argument("--steps", type=int, default=10, help="pretraining steps (fine-tuning: half, at least 2)")
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' code")
    parser.add_argument("--before-code", type=Path, default=None, help="a checkout of --before (else git archive)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a stage is killed")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch projects")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "EVALUATE.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="lmpipe-evalmem-", dir=args.work))
    results: dict = {"machine": _machine(), "sizes": sizes, "train_rows": args.train_rows, "steps": args.steps,
                     "data": str(args.data), "versions": {}}
    try:
        before = args.before_code or _export(args.before, work / "before-code")
        for name, code in (("before", before), ("after", ROOT)):
            results["versions"][name] = _run_version(work / name, code.resolve(), sizes, args)
            print(json.dumps({name: results["versions"][name]["evaluate"]}), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["bench_wall_s"] = round(time.perf_counter() - started, 1)
    table = render(results)
    print(table)
    if not args.no_write:
        _write(args.output, table)
        args.output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def _export(revision: str, dest: Path) -> Path:
    """src/, stages/ and params.yaml of `revision`, without a worktree."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src", "stages", "params.yaml"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "REVISION").write_text(_git(ROOT, "rev-parse", revision))
    return dest


def _git(code: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(code), *args], capture_output=True, text=True, check=False)
    return out.stdout.strip()


# ----------------------------------------------------------------------------- one code version


def _params(code: Path, train_rows: int, steps: int) -> dict:
    """The version's params.yaml, shrunk: files source, a tiny encoder, a few steps, tracking off."""
    params = yaml.safe_load((code / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["source"] = "files"
    params["data"]["files"].update(train="data/external/train.csv", test=None, validation=None,
                                   text_column="review", label_column="sentiment")
    params["tokenizer"].update(vocab_size=2000, max_length=128)
    if "workers" in params["tokenizer"]:
        params["tokenizer"]["workers"] = 1
    params["model"].update(layers=1, hidden=32, heads=2, intermediate=64, max_position=128)
    sections = [("pretrain", steps)] + [(s, max(2, steps // 2)) for s in
                                        ("finetune", "freeze_finetune", "finetune_scratch")]
    for section, n in sections:
        train = params[section]["train"]
        train.update({key: None for key in ("epochs", "tokens", "minutes")})
        train.update(steps=n, eval_every=n, eval_batches=2, checkpoint_every=0, log_every=n)
    params["tracking"]["enabled"] = False
    return params


def _run_version(project: Path, code: Path, sizes: list[int], args: argparse.Namespace) -> dict:
    revision = (code / "REVISION").read_text() if (code / "REVISION").exists() else _git(code, "rev-parse", "HEAD")
    params = _params(code, args.train_rows, args.steps)
    external = project / "data" / "external"
    external.mkdir(parents=True)
    (project / "stages").symlink_to(code / "stages")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    reviews = pd.read_csv(args.data)
    reviews.sample(n=args.train_rows, random_state=params["seed"]).to_csv(external / "train.csv", index=False)
    for size in sizes:  # the test split: the CSV's first rows (the training sample is drawn from all of them)
        reviews.head(size).to_csv(external / f"test_{size}.csv", index=False)
    env = {**os.environ, "PYTHONPATH": str(code / "src"), "LMPIPE_LOG_LEVEL": "WARNING", "LMPIPE_TRACKING": "0"}
    imported = subprocess.run([sys.executable, "-c", "import lmpipe; print(lmpipe.__file__)"], cwd=project,
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
    row: dict = {"code": str(code), "revision": revision, "lmpipe_imported_from": imported,
                 "dirty": bool(_git(code, "status", "--porcelain", "--", "src", "stages")),
                 "build": {}, "evaluate": {}}
    for i, size in enumerate(sizes):
        params["data"]["files"]["test"] = f"data/external/test_{size}.csv"
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        stages = BUILD if i == 0 else (BUILD[0], BUILD[-1])  # a new test split: download, baseline again
        for name, module in stages:
            measured = _timed([sys.executable, "-m", *module.split()], project, env, args.timeout)
            row["build"][f"{name}@{size}"] = measured
            if measured["returncode"] != 0:
                raise RuntimeError(f"{code}: {name} failed:\n{measured.get('stderr_tail', '')}")
        row["evaluate"][str(size)] = _timed([sys.executable, "-m", "stages.evaluate"], project, env, args.timeout)
        print(json.dumps({"code": revision[:10], "size": size, **row["evaluate"][str(size)]}), flush=True)
    return row


def _timed(command: list[str], cwd: Path, env: dict, timeout: float) -> dict:
    """bench.growth._measure, with the stage (a child of this process) killed after `timeout` seconds."""
    def kill() -> None:
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        os.kill(int(entry), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                continue

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        return _measure(command, cwd, env)
    finally:
        timer.cancel()


# ----------------------------------------------------------------------------- report


def render(results: dict) -> str:
    mb = 1024 ** 2
    machine, versions = results["machine"], results["versions"]
    lines = [(f"`evaluate` stage alone; {results['train_rows']:,} training reviews, tiny encoder (1 layer, hidden 32, "
              f"max_length 128); {machine['cpus']} CPUs, load average at start {machine['loadavg_at_start']}; "
              f"{machine['date']}. Whole bench run: {results['bench_wall_s']:.0f} s."), "",
             "| test reviews | before peak RSS MB | after peak RSS MB | before wall s | after wall s "
             "| before CPU s | after CPU s | before peak PSS MB | after peak PSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        b, a = versions["before"]["evaluate"][str(size)], versions["after"]["evaluate"][str(size)]
        lines.append(f"| {size:,} | {b['peak_rss_bytes'] / mb:,.0f} | {a['peak_rss_bytes'] / mb:,.0f} "
                     f"| {b['wall_s']:.1f} | {a['wall_s']:.1f} | {b['cpu_s']:.1f} | {a['cpu_s']:.1f} "
                     f"| {b['peak_tree_pss_bytes'] / mb:,.0f} | {a['peak_tree_pss_bytes'] / mb:,.0f} |")
    lines += ["", f"before = `{versions['before']['revision'][:10]}`, after = `{versions['after']['revision'][:10]}`"
                  + (" (with uncommitted changes)" if versions["after"]["dirty"] else "") + "."]
    return "\n".join(lines)


def _write(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else f"# evaluate: memory and time\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")


if __name__ == "__main__":
    main()
