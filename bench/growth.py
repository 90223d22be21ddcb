"""Growth: download + tokenize + a few pretraining steps on the builtin corpus at growing sizes.

    python -m bench.growth                         # 1x, 10x, 100x the default data.builtin.corpus_documents
    python -m bench.growth --scales 1,10,50        # fewer documents at the top (a slow or shared machine)
    python -m bench.growth --steps 20 --workers 2 --no-write
    python -m bench.growth --scales 100 --append   # one more scale, merged into bench/GROWTH.json's rows
    python -m bench.growth --code ../old-checkout --no-encode-check   # the stages of another checkout

Each scale runs the real stage scripts (`python -m stages.download`, `stages.tokenize_data`,
`stages.pretrain_mlm`), one after the other, in a scratch project: params.yaml of this repository with
`data.builtin.corpus_documents` scaled, `pretrain.train.steps` (default 20, evaluated once on `eval_batches` held-out
batches, no checkpoints) and tracking off. Per stage it records:

* wall time, and the CPU time of the stage and its worker processes;
* peak RSS: the largest resident set of any one process of the stage (`wait4`'s rusage, as `/usr/bin/time -v`
  reports it), and the peak of the summed PSS of the stage's process tree (sampled every 0.2 s; forked workers
  share pages with their parent, which PSS divides among them);
* bytes on disk of what the stage wrote (data/raw; data/tokenizer + data/tokenized; models/pretrained).

Then, in the same run and on the same texts (the training documents of the shards the download stage wrote, or
of the first `--encode-shards` of them), encoding throughput: `lmpipe.text.sharded.encode_shards` (read the shards,
encode in `--workers` processes, write the token file) against the raw `tokenizers` `Tokenizer.encode_batch` (and `encode_batch_fast`) over the texts
already in memory, in batches of 2048, results dropped. Tokens/s by wall time, and by CPU time (every process's
user + system time: what the encoding costs, whatever else the machine runs).

The table goes to bench/GROWTH.md between the markers `<!-- growth:begin -->` and `<!-- growth:end -->`; the rest
of that file (hand-written analysis) is kept. Raw numbers go to bench/GROWTH.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGES = (("download", "stages.download", ("data/raw",)),
          ("tokenize", "stages.tokenize_data", ("data/tokenizer", "data/tokenized")),
          ("pretrain", "stages.pretrain_mlm", ("models/pretrained",)))
BEGIN, END = "<!-- growth:begin -->", "<!-- growth:end -->"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="1,10,100", help="multiples of data.builtin.corpus_documents")
    parser.add_argument("--steps", type=int, default=20, help="pretraining steps per scale")
    parser.add_argument("--eval-batches", type=int, default=4, help="held-out batches of the one evaluation")
    parser.add_argument("--workers", type=int, default=None, help="tokenizer.workers (default: params.yaml)")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose stages run (src/ and stages/)")
    parser.add_argument("--no-encode-check", action="store_true", help="skip the encoding throughput comparison")
    parser.add_argument("--encode-shards", type=int, default=None,
                        help="compare encoding on the first N corpus shards only (default: every shard)")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch projects")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "GROWTH.md")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of the output's .json for the scales not run now (same --code)")
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    if not args.no_write and args.output.exists() and not args.output.is_file():
        parser.error(f"--output {args.output}: not a file")

    base = yaml.safe_load((args.code / "params.yaml").read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="lmpipe-growth-", dir=args.work))
    results = {"machine": _machine(), "code": str(args.code), "steps": args.steps,
               "base_documents": base["data"]["builtin"]["corpus_documents"], "scales": []}
    earlier = []
    if args.append and args.output.with_suffix(".json").exists():
        earlier = [row for row in json.loads(args.output.with_suffix(".json").read_text())["scales"]
                   if row["scale"] not in scales]
    try:
        for scale in scales:
            project = work / f"x{scale:g}"
            row = _run_scale(project, base, scale, args)
            results["scales"].append(row)
            print(json.dumps(row), flush=True)
            if not args.keep:
                shutil.rmtree(project, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["scales"] = sorted(earlier + results["scales"], key=lambda row: row["scale"])
    table = render(results)
    print(table)
    if not args.no_write:
        _write(args.output, table)
        args.output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- one scale


def _run_scale(project: Path, base: dict, scale: float, args: argparse.Namespace) -> dict:
    params = json.loads(json.dumps(base))
    documents = round(base["data"]["builtin"]["corpus_documents"] * scale)
    params["data"]["builtin"]["corpus_documents"] = documents
    params["tracking"]["enabled"] = False
    if args.workers is not None:
        params["tokenizer"]["workers"] = args.workers
    train = params["pretrain"]["train"]
    train.update({key: None for key in ("epochs", "tokens", "minutes")})
    train.update(steps=args.steps, eval_every=args.steps, eval_batches=args.eval_batches, checkpoint_every=0,
                 log_every=max(1, args.steps // 2))
    project.mkdir(parents=True)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (project / "stages").symlink_to(args.code / "stages")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)  # checkpoints live under the repository root
    env = {**os.environ, "PYTHONPATH": str(args.code / "src"), "LMPIPE_LOG_LEVEL": "WARNING"}
    row: dict = {"scale": scale, "documents": documents, "stages": {}}
    for name, module, outputs in STAGES:
        measured = _measure([sys.executable, "-m", module], project, env)
        measured["disk_bytes"] = sum(_du(project / out) for out in outputs)
        row["stages"][name] = measured
        if measured["returncode"] != 0:
            row["failed"] = name
            return row
    row["corpus_tokens"] = _corpus_tokens(project)
    if not args.no_encode_check:
        row["encoding"] = _encoding_check(project, params["tokenizer"]["workers"], args.encode_shards, env)
    return row


def _measure(command: list[str], cwd: Path, env: dict) -> dict:
    """Wall time, CPU time, peak RSS of the largest process and peak summed PSS of the process tree."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"pss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak["pss"] = max(peak["pss"], _tree_pss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    result = {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
              "peak_rss_bytes": usage.ru_maxrss * 1024, "peak_tree_pss_bytes": peak["pss"],
              "returncode": process.returncode}
    if process.returncode != 0:
        result["stderr_tail"] = stderr.decode(errors="replace")[-2000:]
    return result


def _tree_pss(root: int) -> int:
    """Summed PSS (bytes) of a process and its descendants, from /proc (0 where it cannot be read)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _corpus_tokens(project: Path) -> int | None:
    """Tokens of the encoded corpus (training + held-out documents), from the token files' headers."""
    import numpy as np

    total = 0
    for name in ("mlm_train_ids.npy", "mlm_heldout_ids.npy"):
        path = project / "data/tokenized" / name
        if not path.exists():
            return None  # a checkout from before token files
        total += len(np.load(path, mmap_mode="r"))
    return total


ENCODE_CHECK = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np
import pyarrow.parquet as pq
from transformers import AutoTokenizer
from lmpipe.data.corpus import CorpusShards
from lmpipe.text.packing import heldout_mask
from lmpipe.text.sharded import ENCODE_BATCH, backend_tokenizer, encode_shards

project, workers, shards = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
params = __import__("yaml").safe_load((project / "params.yaml").read_text())
tokenizer = AutoTokenizer.from_pretrained(project / "data/tokenizer")
corpus = CorpusShards(project / "data/raw/corpus")
heldout = heldout_mask(corpus.documents, params["tokenizer"]["heldout_fraction"], params["seed"])
if shards:  # the first shards only: their documents, and the held-out cut over them
    corpus.paths, corpus.counts = corpus.paths[:shards], corpus.counts[:shards]
    corpus.starts = corpus.starts[:shards + 1]
    heldout = heldout[:corpus.starts[-1]]

def cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

def timed(run):
    wall, used = time.perf_counter(), cpu()
    tokens = run()
    return {"tokens": int(tokens), "wall_s": time.perf_counter() - wall, "cpu_s": cpu() - used}

def ours():
    with tempfile.TemporaryDirectory(dir=project) as out:
        files = encode_shards(tokenizer, corpus.paths, np.where(heldout, -1, 0).astype(np.int8),
                              [Path(out) / "train"], workers=workers)
        return files[0].tokens

texts = [t for batch in corpus.batches(~heldout) for t in batch]
backend = backend_tokenizer(tokenizer)

def raw(method):
    def run():
        tokens = 0
        for start in range(0, len(texts), ENCODE_BATCH):
            tokens += sum(len(e.ids) for e in getattr(backend, method)(texts[start:start + ENCODE_BATCH],
                                                                        add_special_tokens=False))
        return tokens
    return run

result = {"raw_encode_batch": timed(raw("encode_batch")), "ours": timed(ours),
          "raw_encode_batch_fast": timed(raw("encode_batch_fast"))}
print(json.dumps(result))
"""


def _encoding_check(project: Path, workers: int, shards: int | None, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", ENCODE_CHECK, str(project), str(workers), str(shards or 0)],
                         cwd=project, env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for entry in result.values():
        entry["tokens_per_s"] = entry["tokens"] / entry["wall_s"]
        entry["tokens_per_cpu_s"] = entry["tokens"] / entry["cpu_s"] if entry["cpu_s"] else None
    result["workers"], result["shards"] = workers, shards or "all"
    return result


# ----------------------------------------------------------------------------- report


def _machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_at_start": load, "date": time.strftime("%Y-%m-%d %H:%M")}


def render(results: dict) -> str:
    gb = 1024 ** 3
    rows = results["scales"]
    machine = results["machine"]
    lines = [(f"Builtin corpus: {results['base_documents']:,} documents at 1x; {results['steps']} pretraining steps; "
              f"{machine['cpus']} CPUs, load average at start {machine['loadavg_at_start']}; {machine['date']}."), "",
             "| scale | documents | tokens | stage | wall s | CPU s | peak RSS GB | peak tree PSS GB | disk MB |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        tokens = f"{row['corpus_tokens']:,}" if row.get("corpus_tokens") else "–"
        for name, stage in row["stages"].items():
            failed = " (failed)" if stage["returncode"] else ""
            lines.append(f"| {row['scale']:g}x | {row['documents']:,} | {tokens} | {name}{failed} | {stage['wall_s']:.1f} "
                         f"| {stage['cpu_s']:.1f} | {stage['peak_rss_bytes'] / gb:.2f} "
                         f"| {stage['peak_tree_pss_bytes'] / gb:.2f} | {stage['disk_bytes'] / 1e6:.1f} |")
    encoded = [row for row in rows if "encoding" in row and "error" not in row["encoding"]]
    if encoded:
        lines += ["", "Encoding the training documents (same texts, same run): tokens/s by wall time (by CPU time).",
                  "", ("| scale | tokens | ours (encode_shards, workers) | raw encode_batch | raw encode_batch_fast "
                       "| ours / encode_batch |"), "|---:|---:|---:|---:|---:|---:|"]
        for row in encoded:
            e = row["encoding"]

            def rate(entry: dict) -> str:
                cpu = f"{entry['tokens_per_cpu_s'] / 1e3:,.0f}k" if entry["tokens_per_cpu_s"] else "–"
                return f"{entry['tokens_per_s'] / 1e3:,.0f}k ({cpu})"

            ours, raw = e["ours"], e["raw_encode_batch"]
            ratio = f"{ours['tokens_per_s'] / raw['tokens_per_s']:.2f}"
            if ours["tokens_per_cpu_s"] and raw["tokens_per_cpu_s"]:
                ratio += f" ({ours['tokens_per_cpu_s'] / raw['tokens_per_cpu_s']:.2f} by CPU)"
            shards = "" if e.get("shards", "all") == "all" else f" (first {e['shards']} shards)"
            lines.append(f"| {row['scale']:g}x | {ours['tokens']:,}{shards} | {rate(ours)}, {e['workers']} workers "
                         f"| {rate(raw)} | {rate(e['raw_encode_batch_fast'])} | {ratio} |")
    if len(rows) > 1 and all("failed" not in row for row in rows):
        first = rows[0]
        lines += ["", "Against the 1x row: documents ratio; per stage the wall-time ratio and the peak-RSS ratio.", "",
                  "| scale | documents | " + " | ".join(f"{name} wall | {name} RSS" for name in first["stages"]) + " |",
                  "|---:|---:|" + "---:|---:|" * len(first["stages"])]
        for row in rows:
            cells = []
            for name, stage in row["stages"].items():
                base = first["stages"][name]
                cells += [f"{stage['wall_s'] / base['wall_s']:.1f}x",
                          f"{stage['peak_rss_bytes'] / base['peak_rss_bytes']:.2f}x"]
            lines.append(f"| {row['scale']:g}x | {row['documents'] / first['documents']:.0f}x | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write(path: Path, table: str) -> None:
    block = f"{BEGIN}\n{table}{END}"
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Growth\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text += "\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
