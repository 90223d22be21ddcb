"""Pretraining throughput: our engine (MaskedLM + engine.loop.train) against the Hugging Face Trainer.

    python -m bench.run                 # the full bench, 6 rows (about 9 minutes on the 2-core CPU, quiet);
                                        # writes bench/RESULTS.md (its hand-written analysis part is kept)
    python -m bench.run --quick         # ours bf16 vs Trainer bf16 only, 3 + 15 steps (about 1.5 minutes)
    python -m bench.run --steps 100     # more timed steps per row
    python -m bench.run --rows ours-bf16,trainer-bf16 --no-write
    python -m bench.run --params-rev HEAD   # the committed params.yaml, whatever the workspace holds

Rows: ours-bf16, trainer-bf16, ours-bf16-compile, ours-fp32, trainer-fp32, and ours-bf16-sdpa (our engine with
`fast_cpu_kernels: false`: torch's dropout and SDPA, as the Trainer row runs them; shows what the CPU kernels buy).

One command, one run, side by side on the same data and the same model config:

1. the default pretraining data (bench/data.py): the builtin corpus, the default tokenizer and blocks of
   `tokenizer.max_length`, as the `tokenize` stage builds them;
2. this machine's matmul peak (bf16 and fp32, square `torch.matmul`), measured at the start and the end;
3. the default pretraining model and batch (params.yaml) trained for `--warmup + --steps` optimizer steps by
   our engine and by `transformers.Trainer` with the same `*ForMaskedLM` class (`model.architecture`: ModernBERT by
   default, `BertForMaskedLM` with `--architecture bert`) + `DataCollatorForLanguageModeling`, the same
   initial weights (same seed), lr, warmup, linear decay, fused AdamW, weight decay, grad clipping and precision
   (bench/workers.py);
4. steady-state tokens/s (the first `--warmup` steps are not timed), the ratio to the Trainer row of the same
   precision, model FLOP/s (bench/flops.py) and the fraction of the measured peak, and both loss curves
   (bench/report.py).

Every row runs in its own subprocess, one after the other, never concurrently, from one snapshot of the config.
The machine may be shared: before each row the bench waits (up to --wait-quiet seconds) for other processes to go
idle, records every step's share of CPU taken by others, and computes tokens/s from the quiet steps (rows without
enough are marked CONTENDED; bench/timing.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench import REPO_ROOT
from bench.data import build_data, config_overrides, load_config
from bench.flops import flop_model, matmul_peak
from bench.report import MASKED_LM_NAMES, machine_info, write_report
from bench.timing import cpu_snapshot, gpu_rate, median_round, others_share, wait_quiet
from bench.workers import DEFAULT_ROWS, GPU_ROWS, QUICK_ROWS, ROWS, masked_lm_row, row_environment, run_row


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per row (default 60, quick 15)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps per row (default 5, quick 3)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_ROWS)}, few steps, small peak")
    parser.add_argument("--rows", default=None, help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--output", default=None,
                        help="the report (markdown; default bench/RESULTS.md, except --quick: printed only)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the report")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the rows this many rounds, interleaved (A B A B ...); each row reports its median "
                             "round, and the summary the ratio of every round")
    parser.add_argument("--row-timeout", type=int, default=900, help="seconds before a row's subprocess is killed")
    parser.add_argument("--wait-quiet", type=float, default=180.0,
                        help="before each row, wait up to this many seconds for other processes to go idle (0: never)")
    parser.add_argument("--params", default=None, help="params file (default: params.yaml at the repository root)")
    parser.add_argument("--params-rev", default=None,
                        help="read params.yaml at this git revision instead (e.g. HEAD: the committed default)")
    parser.add_argument("--architecture", default=None, choices=sorted(MASKED_LM_NAMES),
                        help="override model.architecture (the Trainer row uses the same class)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where the rows train (cuda: default rows " + ", ".join(GPU_ROWS) + ")")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params key (YAML value), e.g. --set model.layers=12; repeatable")
    parser.add_argument("--from-json", default=None, metavar="PATH",
                        help="re-render the report from a run's raw JSON (same --device/--set/--architecture/--steps/"
                             "--warmup as that run) without training")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (15 if args.quick else 60)
    args.warmup = args.warmup if args.warmup is not None else (3 if args.quick else 5)
    if args.output is None:
        args.output = None if args.quick else str(REPO_ROOT / "bench" / "RESULTS.md")
    if args.steps < 2 or args.warmup < 1 or args.repeat < 1:
        parser.error("--steps must be >= 2, --warmup >= 1 and --repeat >= 1")
    if args.output and not args.no_write:
        from lmpipe.io import OutputPathError, resolve_output

        try:  # before the minutes of benchmarking, not after them
            resolve_output(args.output)
        except OutputPathError as error:
            parser.error(f"--output {error}")
    return parser, args


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    if args.worker:
        masked_lm_row(args.worker, Path(args.data_dir), args.warmup, args.steps, Path(args.out), args.device)
        return 0

    names = (args.rows.split(",") if args.rows else QUICK_ROWS if args.quick
             else GPU_ROWS if args.device == "cuda" else DEFAULT_ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    args.peak_n = 8192 if args.device == "cuda" else 1024 if args.quick else 2048
    bench_start = time.perf_counter()
    command = "python -m bench.run" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    params, raw_params, config_source = load_config(args.params, args.params_rev, config_overrides(parser, args))
    tcfg = params.pretrain.train
    args.lr, args.warmup_frac, args.wd = params.pretrain.lr, tcfg.warmup, tcfg.weight_decay
    args.betas, args.clip = list(tcfg.betas), tcfg.max_grad_norm or 0.0
    args.model_cfg, args.train_cfg, args.seq = params.model, tcfg, params.tokenizer.max_length

    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        results = saved["rows"]
        for r in results.values():
            if r.get("device") == "cuda":
                r.update(gpu_rate(r["step_seconds"], r["warmup"], r["tokens_per_step"]))
        return write_report(results, saved["machine"], saved["data"], saved["flops"], saved["peaks"], args,
                            saved["config"], command + " (re-rendered from the run's raw JSON)", 0.0)

    machine = machine_info(args.device)
    print(f"[bench] {machine['cpu']}, {machine['logical_cpus']} cores, torch {machine['torch']}, "
          f"transformers {machine['transformers']}", flush=True)
    peaks = {"load_start": _load_average()}
    peak_seconds = 2.0 if args.quick or args.device == "cuda" else 6.0
    peaks["bf16_start"] = matmul_peak("bfloat16", args.peak_n, peak_seconds, args.device)
    peaks["fp32_start"] = matmul_peak("float32", args.peak_n, peak_seconds, args.device)
    print(f"[bench] matmul peak: bf16 {peaks['bf16_start']:.3f} TFLOP/s, fp32 {peaks['fp32_start']:.3f} TFLOP/s",
          flush=True)

    with tempfile.TemporaryDirectory(prefix="lmpipe-bench-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "params.json").write_text(json.dumps(raw_params))
        data = build_data(params, tmp_path)
        print(f"[bench] data: {data['source']}: {data['blocks']} blocks x {data['block_length']}, vocab {data['vocab']} "
              f"({data['seconds']:.1f} s)", flush=True)
        flops = flop_model(params, data["vocab"], data["non_special_fraction"])
        results = run_rows(names, args, tmp_path)
    peaks["bf16_end"] = matmul_peak("bfloat16", args.peak_n, peak_seconds, args.device)
    peaks["fp32_end"] = matmul_peak("float32", args.peak_n, peak_seconds, args.device)
    peaks["load_end"] = _load_average()
    if not results:
        print("[bench] no row succeeded", file=sys.stderr)
        return 1

    return write_report(results, machine, data, flops, peaks, args, config_source, command,
                        time.perf_counter() - bench_start)


def run_rows(names: list[str], args: argparse.Namespace, data_dir: Path) -> dict[str, dict]:
    """Every row `args.repeat` times, interleaved, each in its own subprocess; each row's median round."""
    runs: dict[str, list[dict]] = {}
    env = row_environment()
    for round_index, name in ((i, n) for i in range(args.repeat) for n in names):
        out = data_dir / f"{name}-{round_index}.json"
        row_env = dict(env)
        if ROWS[name][2]:  # a cold inductor cache: the compile time a fresh machine pays
            row_env["TORCHINDUCTOR_CACHE_DIR"] = str(data_dir / f"inductor-{name}-{round_index}")
        waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 and args.device == "cpu" else 0.0
        t = time.perf_counter()
        load = _load_average()
        before = cpu_snapshot()
        r = run_row("bench.run", name, data_dir, out,
                    ["--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device],
                    row_env, args.row_timeout, "bench")
        others = others_share(before, cpu_snapshot())
        if r is None:
            continue
        r["load_before"], r["others_cpu_share"], r["waited_for_quiet_s"] = load, others, waited
        r["round"] = round_index
        runs.setdefault(name, []).append(r)
        print(f"[bench] {name:18s} {r['tokens_per_s']:8.0f} tokens/s  step {r['step_s_median']:.3f} s  "
              f"warm-up {r['warmup_s']:.1f} s  ({time.perf_counter() - t:.0f} s; CPU used by other processes "
              f"{100 * others:.0f}%)" + (f"  [round {round_index + 1}/{args.repeat}]" if args.repeat > 1 else ""),
              flush=True)
    return {name: median_round(rounds) for name, rounds in runs.items()}


def _load_average() -> str:
    """The 1-minute load average, as /proc/loadavg writes it."""
    with open("/proc/loadavg") as file:
        return file.read().split()[0]


if __name__ == "__main__":
    raise SystemExit(main())
