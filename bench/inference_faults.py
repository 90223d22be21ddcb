"""Inference with and without freed memory kept: wall, CPU and page faults of `predict_proba`.

    python -m bench.inference_faults                                   # models/finetune on data/raw/test.parquet
    python -m bench.inference_faults --model DIR --split FILE --repeat 3

Without autograd every batch frees its activations at once, and glibc hands large blocks back to the system, so
the next batch maps them afresh and the kernel zeroes every page at first touch. `predict_proba` now asks glibc
to keep freed memory (`keep_freed_memory`, as the training engine does). Each run is a fresh process (the
setting is process-wide and cannot be undone); "off" replaces `keep_freed_memory` with a no-op. Runs alternate
off/on `--repeat` times; the probabilities of every run must be identical. Prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/finetune", help="a sequence-classification directory")
    parser.add_argument("--split", default="data/raw/test.parquet", help="a raw split (text, label) Parquet file")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args)))
        return
    rows = []
    for _ in range(args.repeat):
        for mode in ("off", "on"):
            out = subprocess.run([sys.executable, "-m", "bench.inference_faults", "--child", mode, "--model",
                                  args.model, "--split", args.split, "--batch-size", str(args.batch_size)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "digest"}), flush=True)
    if len({row["digest"] for row in rows}) != 1:
        raise SystemExit("the probabilities differ between runs")
    print("probabilities identical in every run")


def _measure(args: argparse.Namespace) -> dict:
    import hashlib

    from transformers import AutoModelForSequenceClassification

    from lmpipe.evaluation import inference
    from lmpipe.text.tokenizers import load_tokenizer

    if args.child == "off":
        inference.keep_freed_memory = lambda: False
    model = AutoModelForSequenceClassification.from_pretrained(args.model)
    tokenizer = load_tokenizer(args.model)
    ids, _ = inference.encode_split_to_file(args.model, args.split, tokenizer)
    with ids:
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        probabilities = inference.predict_proba(model, ids, tokenizer.pad_token_id, args.batch_size)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"mode": args.child, "examples": len(probabilities), "wall_s": round(wall, 2),
            "user_s": round(after.ru_utime - before.ru_utime, 2), "sys_s": round(after.ru_stime - before.ru_stime, 2),
            "page_faults": after.ru_minflt - before.ru_minflt, "peak_rss_mb": after.ru_maxrss >> 10,
            "digest": hashlib.sha256(probabilities.tobytes()).hexdigest()}


if __name__ == "__main__":
    main()
