"""Causal-LM training throughput: our engine (CausalLM + engine.loop.train) against Hugging Face Trainer.

    python -m bench.clm                  # 3 untimed + 15 timed steps per row, bf16 (about 2 minutes, quiet machine)
    python -m bench.clm --steps 40 --precision fp32

Side by side, one row after the other in fresh subprocesses: the clm pipeline's default GPT-2 (clm/params.yaml:
layers, width, heads, context length, batch) with the same initial weights (same seed), the same packed blocks
(byte-level BPE on the builtin corpus, documents separated by end-of-text), lr, warmup + cosine decay, fused
AdamW, weight decay, grad clipping and autocast precision. The Trainer row is `GPT2LMHeadModel` given
`labels=input_ids` (it shifts them itself) through `default_data_collator`; ours is `CausalLM`, which shifts
once and computes the loss from the logits. tokens/s = tokens per step / median step time of the quiet timed
steps (bench/timing.py: a step is quiet when other processes used <= 10% of the CPU).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench import REPO_ROOT
from bench.data import build_clm_data
from bench.report import clm_table, machine_info
from bench.timing import wait_quiet
from bench.workers import CLM_ROWS, causal_lm_row, row_environment, run_row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=15, help="timed optimizer steps per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--params", default=str(REPO_ROOT / "clm" / "params.yaml"))
    parser.add_argument("--wait-quiet", type=float, default=60.0, help="seconds to wait for an idle machine per row")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        causal_lm_row(args.worker, Path(args.data_dir), args.warmup, args.steps, args.precision, Path(args.out))
        return 0

    import yaml

    from lmpipe.config.clm_schema import clm_params_from_dict

    raw = yaml.safe_load(Path(args.params).read_text()) or {}
    params = clm_params_from_dict(raw)
    machine = machine_info()
    print(f"[bench.clm] {machine['cpu']}, {machine['logical_cpus']} cores, torch {machine['torch']}, "
          f"transformers {machine['transformers']}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="lmpipe-bench-clm-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "params.json").write_text(json.dumps(raw))
        data = build_clm_data(params, tmp_path)
        print(f"[bench.clm] data: {data['documents']} builtin documents -> {data['blocks']} blocks x "
              f"{params.model.context_length}, BPE vocab {data['vocab']} ({data['seconds']:.1f} s)", flush=True)
        env = row_environment()
        for row in CLM_ROWS:
            waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
            start = time.perf_counter()
            r = run_row("bench.clm", row, tmp_path, tmp_path / f"{row}.json",
                        ["--steps", str(args.steps), "--warmup", str(args.warmup), "--precision", args.precision],
                        env, 900, "bench.clm")
            if r is None:
                continue
            results[row] = r
            print(f"[bench.clm] {row:8s} {r['tokens_per_s']:8.0f} tokens/s  step {r['step_s']:.3f} s  "
                  f"({time.perf_counter() - start:.0f} s, waited {waited:.0f} s for quiet, others' CPU "
                  f"{100 * r['others_share']:.0f}%)", flush=True)
    if not results:
        return 1
    print(clm_table(results, params, args.precision, args.warmup, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
