"""Causal-LM training throughput: our engine (CausalLM + engine.loop.train) against Hugging Face Trainer.

    python -m bench.clm                  # 3 untimed + 15 timed steps per row, bf16 (about 2 minutes, quiet machine)
    python -m bench.clm --steps 40 --precision fp32

Side by side, one row after the other in fresh subprocesses: the clm pipeline's default GPT-2 (clm/params.yaml:
layers, width, heads, context length, batch) with the same initial weights (same seed), the same packed blocks
(byte-level BPE on the builtin corpus, documents separated by end-of-text), lr, warmup + cosine decay, fused
AdamW, weight decay, grad clipping and autocast precision. The Trainer row is `GPT2LMHeadModel` given
`labels=input_ids` (it shifts them itself) through `default_data_collator`; ours is `CausalLM`, which shifts
once and computes the loss from the logits. tokens/s = tokens per step / median step time of the quiet timed
steps (the timing helpers of bench/run.py: a step is quiet when other processes used <= 10% of the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.run import QUIET, _stamp, _step_others, machine_info, trainer_timer, wait_quiet

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("ours", "trainer")


def build_data(params, out_dir: Path) -> dict:
    """Corpus -> BPE tokenizer -> packed blocks, as tokenize-clm builds them."""
    from lmpipe.data.loading import load_data
    from lmpipe.text.packing import pack_documents, split_heldout
    from lmpipe.text.tokenizers import train_bpe_tokenizer

    start = time.perf_counter()
    corpus = load_data(params.data, params.seed).corpus
    train_docs, heldout_docs = split_heldout(corpus, params.tokenizer.heldout_fraction, params.seed)
    tokenizer = train_bpe_tokenizer(train_docs, params.tokenizer, params.model.context_length)
    blocks = pack_documents(tokenizer, train_docs, params.model.context_length)
    heldout = pack_documents(tokenizer, heldout_docs, params.model.context_length)
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    np.save(out_dir / "blocks.npy", blocks)
    np.save(out_dir / "heldout.npy", heldout)
    return {"documents": len(corpus), "blocks": int(len(blocks)), "vocab": len(tokenizer),
            "seconds": time.perf_counter() - start}


def worker(row: str, data_dir: Path, warmup: int, steps: int, precision: str, out: Path) -> None:
    import torch
    import transformers

    from lmpipe.config.clm_schema import clm_params_from_dict
    from lmpipe.models.build import build_gpt2
    from lmpipe.text.tokenizers import load_tokenizer

    params = clm_params_from_dict(json.loads((data_dir / "params.json").read_text()))
    cfg = params.pretrain.train
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    blocks = np.load(data_dir / "blocks.npy").astype(np.int64)
    heldout = np.load(data_dir / "heldout.npy").astype(np.int64)
    total = warmup + steps + 1  # + 1: the last timed interval ends where step `total - 1` begins
    torch.manual_seed(params.seed)  # the same initial weights in both rows
    model = build_gpt2(params.model, tokenizer)
    checksum = float(sum(p.double().sum() for p in model.parameters()))
    transformers.logging.set_verbosity_error()
    stamps: list[tuple[float, float, float]] = []
    losses: dict[int, float] = {}
    if row == "ours":
        from lmpipe.engine.distributed import Dist
        from lmpipe.engine.loop import train
        from lmpipe.engine.objectives.causal_lm import CausalLM

        run_cfg = dataclasses.replace(cfg, steps=total, epochs=None, tokens=None, minutes=None, precision=precision,
                                      eval_every=10 ** 9, eval_batches=1, checkpoint_every=0, log_every=1,
                                      micro_batch_size=None)
        result = train(CausalLM(model, blocks, heldout), run_cfg, lr=params.pretrain.lr, seed=params.seed, dist_info=Dist(),
                       on_step=lambda step, obj: stamps.append(_stamp()), desc=row)
        losses = {int(r["step"]): float(r["loss"]) for r in result.history}
    else:
        from transformers import Trainer, TrainingArguments, default_data_collator

        class Blocks(torch.utils.data.Dataset):
            def __len__(self):
                return len(blocks)

            def __getitem__(self, i):  # GPT2LMHeadModel shifts labels itself: labels are the inputs
                ids = torch.from_numpy(blocks[i])
                return {"input_ids": ids, "labels": ids}

        with tempfile.TemporaryDirectory(prefix="bench-clm-trainer-") as tmp:
            args = TrainingArguments(
                output_dir=tmp, per_device_train_batch_size=cfg.batch_size, max_steps=total, learning_rate=params.pretrain.lr,
                lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio},
                warmup_steps=cfg.warmup, weight_decay=cfg.weight_decay, adam_beta1=cfg.betas[0],
                adam_beta2=cfg.betas[1], optim="adamw_torch_fused", max_grad_norm=cfg.max_grad_norm or 0.0,
                bf16=precision == "bf16", use_cpu=True, dataloader_num_workers=0, dataloader_pin_memory=False,
                report_to="none", eval_strategy="no", save_strategy="no", logging_strategy="steps",
                logging_steps=1, disable_tqdm=True, seed=params.seed, data_seed=params.seed)
            Trainer(model=model, args=args, train_dataset=Blocks(), data_collator=default_data_collator,
                    callbacks=[trainer_timer(stamps, losses)]).train()
    marks = np.asarray(stamps)
    deltas = np.diff(marks[:, 0])
    others = _step_others(marks)
    timed, timed_others = deltas[warmup:], others[warmup:]
    quiet = timed[timed_others <= QUIET]
    used = quiet if len(quiet) >= max(3, len(timed) // 4) else timed
    tokens_per_step = cfg.batch_size * blocks.shape[1]
    last = [losses[k] for k in sorted(losses)][-5:]
    out.write_text(json.dumps({
        "row": row, "tokens_per_s": tokens_per_step / float(np.median(used)), "step_s": float(np.median(used)),
        "quiet_steps": int(len(quiet)), "timed_steps": int(len(timed)), "others_share": float(np.mean(timed_others)),
        "loss_last5": float(np.mean(last)) if last else float("nan"), "init_checksum": checksum,
        "parameters": sum(p.numel() for p in model.parameters()), "tokens_per_step": tokens_per_step}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=15, help="timed optimizer steps per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--params", default=str(ROOT / "clm" / "params.yaml"))
    parser.add_argument("--wait-quiet", type=float, default=60.0, help="seconds to wait for an idle machine per row")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, Path(args.data_dir), args.warmup, args.steps, args.precision, Path(args.out))
        return 0

    import yaml

    from lmpipe.config.clm_schema import clm_params_from_dict

    raw = yaml.safe_load(Path(args.params).read_text()) or {}
    params = clm_params_from_dict(raw)
    machine = machine_info()
    m, t = params.model, params.pretrain.train
    print(f"[bench.clm] {machine['cpu']}, {machine['logical_cpus']} cores, torch {machine['torch']}, "
          f"transformers {machine['transformers']}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="lmpipe-bench-clm-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "params.json").write_text(json.dumps(raw))
        data = build_data(params, tmp_path)
        print(f"[bench.clm] data: {data['documents']} builtin documents -> {data['blocks']} blocks x "
              f"{m.context_length}, BPE vocab {data['vocab']} ({data['seconds']:.1f} s)", flush=True)
        env = {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        for row in ROWS:
            waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
            out = tmp_path / f"{row}.json"
            cmd = [sys.executable, "-m", "bench.clm", "--worker", row, "--data-dir", tmp, "--out", str(out),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--precision", args.precision]
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0 or not out.exists():
                print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
                print(f"[bench.clm] row {row} FAILED (exit {proc.returncode})", file=sys.stderr)
                continue
            results[row] = r = json.loads(out.read_text())
            print(f"[bench.clm] {row:8s} {r['tokens_per_s']:8.0f} tokens/s  step {r['step_s']:.3f} s  "
                  f"({time.perf_counter() - start:.0f} s, waited {waited:.0f} s for quiet, others' CPU "
                  f"{100 * r['others_share']:.0f}%)", flush=True)
    if not results:
        return 1
    print(f"\nGPT-2 {m.layers} layers x {m.width}, {m.heads} heads, context {m.context_length}, batch {t.batch_size} "
          f"({next(iter(results.values()))['tokens_per_step']} tokens/step), {args.precision}, "
          f"{args.warmup} untimed + {args.steps} timed steps per row\n")
    print("| row | tokens/s | vs Trainer | step s (median) | quiet/timed steps | others' CPU | loss (last 5 steps) | init checksum |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    base = results.get("trainer", {}).get("tokens_per_s")
    for row, r in results.items():
        ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else "n/a"
        print(f"| {row} | {r['tokens_per_s']:.0f} | {ratio} | {r['step_s']:.3f} | {r['quiet_steps']}/{r['timed_steps']} "
              f"| {100 * r['others_share']:.0f}% | {r['loss_last5']:.3f} | {r['init_checksum']:.6f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
