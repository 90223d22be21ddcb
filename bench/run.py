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

1. the default pretraining data: the builtin corpus (`lmpipe.data.builtin.generate_corpus`, SST-2 sentences
   from /work/shared/data/sst2/train.tsv when the generator is not importable), the default tokenizer
   (`train_tokenizer`) and blocks of `tokenizer.max_length` (`pack_blocks`), as the `tokenize` stage builds them;
2. this machine's matmul peak (bf16 and fp32, square `torch.matmul`), measured at the start and the end;
3. the default pretraining model and batch (params.yaml) trained for `--warmup + --steps` optimizer steps by
   our engine and by `transformers.Trainer` with the same `*ForMaskedLM` class (`model.architecture`: ModernBERT by
   default, `BertForMaskedLM` with `--architecture bert`) + `DataCollatorForLanguageModeling`, the same
   initial weights (same seed), lr, warmup, linear decay, fused AdamW, weight decay, grad clipping and precision;
4. steady-state tokens/s (the first `--warmup` steps are not timed), the ratio to the Trainer row of the same
   precision, model FLOP/s and the fraction of the measured peak, and both loss curves.

Every row runs in its own subprocess (a fresh interpreter: no shared autocast/accelerate/compile state),
one after the other, never concurrently, from one snapshot of the config. The machine may be shared: before each
row the bench waits (up to --wait-quiet seconds) for other processes to go idle, records every step's share of
CPU taken by others, and computes tokens/s from the quiet steps (rows without enough are marked CONTENDED).

FLOPs ("useful" model FLOPs, the same count for every row; attention and matmuls only, as usual):

    per optimizer step = 6 * N_enc * T  +  12 * L * S * H * T  +  6 * (N_head + H * V) * M

    T = tokens in the step (batch x seq; packed blocks, no padding), M = expected masked positions in the step
    (mask_rate x non-special tokens), N_enc = parameters of the encoder layers (embeddings excluded),
    N_head = the MLM head's transform (dense + LayerNorm), H * V = the vocabulary projection (tied to the word
    embeddings), L layers, S sequence length, H hidden size. 6 = 2 (multiply-add) x 3 (forward + backward).

The vocabulary projection is counted only at the masked positions, which is all that MLM needs: our MaskedLM
objective computes it only there, the Hugging Face `*ForMaskedLM` classes compute it at every position. The FLOPs each
engine really executes are shown too, as "executed": the Trainer's head at all T positions; ours less than "useful",
as its last layer runs queries, attention output and MLP only at the masked positions (sparse_mlm).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SST2 = Path("/work/shared/data/sst2/train.tsv")
TARGET_RATIO = 3.0  # the target: our tokens/s at least 3x the Trainer's (bf16 against bf16)

# name -> (engine, precision, compile)
ROWS: dict[str, tuple[str, str, bool]] = {
    "ours-bf16": ("ours", "bf16", False),
    "trainer-bf16": ("trainer", "bf16", False),
    "ours-bf16-compile": ("ours", "bf16", True),
    "ours-fp32": ("ours", "fp32", False),
    "trainer-fp32": ("trainer", "fp32", False),
    # Our engine without its CPU kernels (engine/cpu_kernels.py): torch's dropout and SDPA attention.
    "ours-bf16-sdpa": ("ours", "bf16", False),
    # TrainingArguments(torch_compile=True): what a Trainer user turns on for speed (GPU rows).
    "trainer-bf16-compile": ("trainer", "bf16", True),
}
DEFAULT_ROWS = ["ours-bf16", "trainer-bf16", "ours-bf16-compile", "ours-fp32", "trainer-fp32", "ours-bf16-sdpa"]
GPU_ROWS = ["ours-bf16-compile", "trainer-bf16-compile", "ours-bf16", "trainer-bf16"]
# Dense bf16 tensor-core peak from the vendor's data sheet (no sparsity), for model-FLOPs utilisation (MFU).
SPEC_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H200": 989.4,
                    "A100": 312.0, "L4": 121.0, "A10G": 70.0, "RTX 4090": 165.2}
QUICK_ROWS = ["ours-bf16", "trainer-bf16"]
MASKED_LM_NAMES = {"modernbert": "ModernBertForMaskedLM", "bert": "BertForMaskedLM",
                   "roberta-prelayernorm": "RobertaPreLayerNormForMaskedLM"}


# --------------------------------------------------------------------------------------------- config + data


def load_config(path: str | None = None, rev: str | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> tuple[object, dict, str]:
    """The pretraining config, read once: params.yaml of the working tree (default), another file, or params.yaml
    at a git revision (`--params-rev HEAD`: the committed default, whatever is being edited in the workspace),
    with `KEY=VALUE` overrides (YAML values) applied and the result validated like params.yaml.
    Returns (params, the raw dict the workers rebuild it from, a description)."""
    import yaml

    from lmpipe.config.loader import set_dotted
    from lmpipe.config.schema import params_from_dict

    if rev:
        text = subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout
        commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        raw, source = yaml.safe_load(text) or {}, f"params.yaml at git {rev} ({commit})"
    else:
        file = Path(path) if path else ROOT / "params.yaml"
        raw = yaml.safe_load(file.read_text()) or {}  # no fallback: the bench measures the params file's config
        source = str(file.relative_to(ROOT) if file.is_relative_to(ROOT) else file)
    for item in overrides:
        key, _, value = item.partition("=")
        set_dotted(raw, key, yaml.safe_load(value))
    if overrides:
        source += " with " + " ".join(overrides)
    return params_from_dict(raw), raw, source


def build_data(params, out_dir: Path) -> dict:
    """Corpus -> tokenizer -> packed blocks, as the `tokenize` stage does; saved under out_dir for the workers."""
    from lmpipe.text.packing import pack_blocks, split_heldout
    from lmpipe.text.tokenizers import train_tokenizer

    start = time.perf_counter()
    try:
        from lmpipe.data.builtin import generate_corpus
    except ImportError:
        generate_corpus = None
    if generate_corpus is not None:
        n = params.data.builtin.corpus_documents
        corpus = generate_corpus(n, seed=params.seed * 10 + 4)  # the sub-seed lmpipe.data.loading uses
        source = f"builtin generate_corpus({n}, seed={params.seed * 10 + 4})"
    else:
        import pandas as pd

        corpus = pd.read_csv(SST2, sep="\t", quoting=3)["sentence"].astype(str).tolist()
        source = f"SST-2 sentences ({SST2}; lmpipe.data.builtin.generate_corpus not importable)"
    cfg = params.tokenizer
    train_docs, heldout_docs = split_heldout(corpus, cfg.heldout_fraction, params.seed)
    tokenizer = train_tokenizer(train_docs, cfg)
    blocks = pack_blocks(tokenizer, train_docs, cfg.max_length)
    heldout = pack_blocks(tokenizer, heldout_docs, cfg.max_length)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    np.save(out_dir / "blocks.npy", blocks)
    np.save(out_dir / "heldout.npy", heldout)
    special = np.isin(blocks, np.asarray(tokenizer.all_special_ids))
    return {"source": source, "documents": len(corpus), "blocks": int(len(blocks)), "block_length": int(blocks.shape[1]),
            "heldout_blocks": int(len(heldout)), "vocab": len(tokenizer), "vocab_size_param": cfg.vocab_size,
            "non_special_fraction": float(1.0 - special.mean()), "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------------------------- peak


def matmul_peak(dtype_name: str, n: int, seconds: float, device: str = "cpu") -> float:
    """TFLOP/s of repeated n x n @ n x n matmuls in `dtype` (best of several timed windows)."""
    import torch

    dtype = getattr(torch, dtype_name)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        torch.matmul(a, b)
    sync()
    flop = 2.0 * n ** 3
    once = time.perf_counter()
    torch.matmul(a, b)
    sync()
    reps = max(2, int(seconds / 4 / max(time.perf_counter() - once, 1e-6)))
    best = 0.0
    for _ in range(4):
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        sync()
        best = max(best, flop * reps / (time.perf_counter() - t))
    return best / 1e12


# --------------------------------------------------------------------------------------------- flops


def flop_model(params, vocab: int, non_special_fraction: float) -> dict:
    import torch

    from lmpipe.models.build import MASKED_LM_CLASSES, encoder_config

    m = params.model
    tokenizer = type("Vocab", (), {"__len__": lambda self: vocab, "pad_token_id": 0, "cls_token_id": 2,
                                   "sep_token_id": 3})()  # what encoder_config reads from a tokenizer
    with torch.device("meta"):
        model = MASKED_LM_CLASSES[m.architecture][1](encoder_config(m, tokenizer))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    n_enc = count(model.base_model) - count(model.base_model.embeddings)  # layers (+ a final norm)
    n_head = count(model) - count(model.base_model) - vocab  # the MLM head's transform (decoder tied; bias out)
    h, layers = m.hidden, m.layers
    s = params.tokenizer.max_length
    b = params.pretrain.train.batch_size
    tokens = b * s
    masked = params.pretrain.mask_rate * non_special_fraction * tokens
    body = 6 * n_enc * tokens + 12 * layers * s * h * tokens
    head_per_position = 6 * (n_head + h * vocab)
    # our sparse last layer (engine/sparse_mlm.py): at the unselected positions only its keys and values (and the
    # norm before them) are computed
    if m.architecture == "modernbert":
        last = model.base_model.layers[-1]
        n_everywhere = count(last.attn.Wqkv) * 2 // 3 + count(last.attn_norm)  # Wqkv's key and value rows
    else:
        last = model.base_model.encoder.layer[-1]
        attention = last.attention
        n_everywhere = count(attention.self.key) + count(attention.self.value) + (
            count(attention.LayerNorm) if hasattr(attention, "LayerNorm") else 0)
    skipped = (tokens - masked) * (6 * (count(last) - n_everywhere) + 12 * s * h)
    return {
        "n_encoder": n_enc, "n_head_transform": n_head, "n_vocab_projection": h * vocab,
        "n_total": count(model), "tokens_per_step": tokens, "masked_per_step": masked,
        "useful_per_step": body + head_per_position * masked,
        "executed_ours_per_step": body - skipped + head_per_position * masked,
        "executed_trainer_per_step": body + head_per_position * tokens,
    }


# --------------------------------------------------------------------------------------------- worker


class Probe:
    """Forward hooks recording what really ran: autocast state and dtypes in the encoder, rows of the vocab
    projection, and the model's input keys."""

    def __init__(self, model, device_type: str = "cpu"):
        import torch

        self.torch = torch
        self.device_type = device_type
        self.info: dict = {}
        self.decoder_rows: list[int] = []
        # the first Linear of the encoder (BERT: layer 0's query; ModernBERT: layer 0's fused Wqkv)
        layer = next(m for m in model.base_model.modules() if isinstance(m, torch.nn.Linear))
        layer.register_forward_hook(self._linear)
        model.get_output_embeddings().register_forward_hook(self._decoder)
        model.base_model.register_forward_pre_hook(self._inputs, with_kwargs=True)
        model.register_forward_pre_hook(self._outer, with_kwargs=True)
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def spy(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
            if "sdpa" not in self.info:
                self.info["sdpa"] = {"dtype": str(query.dtype).replace("torch.", ""), "attn_mask": attn_mask is not None,
                                     "dropout_p": dropout_p, "is_causal": is_causal}
            return sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kwargs)

        torch.nn.functional.scaled_dot_product_attention = spy

    def _linear(self, module, args, output):
        if "encoder_linear_out_dtype" not in self.info:
            self.info["autocast_enabled_in_forward"] = bool(self.torch.is_autocast_enabled(self.device_type))
            self.info["autocast_dtype"] = str(self.torch.get_autocast_dtype(self.device_type)).replace("torch.", "")
            self.info["encoder_linear_out_dtype"] = str(output.dtype).replace("torch.", "")

    def _decoder(self, module, args, output):
        self.decoder_rows.append(int(args[0].reshape(-1, args[0].shape[-1]).shape[0]))
        self.info.setdefault("vocab_logits_dtype", str(output.dtype).replace("torch.", ""))

    def _inputs(self, module, args, kwargs):
        self.info.setdefault("encoder_inputs", sorted(k for k, v in kwargs.items() if v is not None))

    def _outer(self, module, args, kwargs):
        self.info.setdefault("model_inputs", sorted(k for k, v in kwargs.items() if v is not None))

    def summary(self) -> dict:
        rows = self.decoder_rows[1:] or self.decoder_rows
        return {**self.info, "vocab_projection_rows_per_step": float(np.mean(rows)) if rows else 0.0}


def worker(row: str, data_dir: Path, warmup: int, steps: int, out: Path, device: str = "cpu") -> None:
    import torch
    import transformers

    from lmpipe.models.build import build_masked_lm
    from lmpipe.text.tokenizers import load_tokenizer

    engine, precision, compile_ = ROWS[row]
    from lmpipe.config.schema import params_from_dict

    params = params_from_dict(json.loads((data_dir / "params.json").read_text()))  # the main process's snapshot
    cfg = params.pretrain.train
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    blocks = np.load(data_dir / "blocks.npy").astype(np.int64)
    heldout = np.load(data_dir / "heldout.npy").astype(np.int64)
    total = warmup + steps + 1  # + 1: the last timed interval ends where step `total - 1` begins
    lr = params.pretrain.lr

    torch.manual_seed(params.seed)  # the same initial weights in every row
    model = build_masked_lm(params.model, tokenizer)
    checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
    n_params = sum(p.numel() for p in model.parameters())
    probe = Probe(model, device) if not compile_ else None  # hooks inside a compiled region would change what compiles
    transformers.logging.set_verbosity_error()

    stamps: list[tuple[float, float, float]] = []  # (wall, this process's CPU seconds, machine busy seconds)
    losses: dict[int, float] = {}
    cuda = device == "cuda"
    # On a GPU the CPU runs ahead of the device, so a step's start time says little: the timed window is
    # bounded by two synchronisations (the start of step `warmup` and of the last step) and throughput is
    # the window's average. The loss is logged every 10 steps there (each log reads it back: a sync).
    log_every = 10 if cuda else 1

    def stamp() -> None:
        if cuda and len(stamps) in (warmup, total - 1):
            torch.cuda.synchronize()
        stamps.append(_stamp())
    start = time.perf_counter()
    if engine == "ours":
        from lmpipe.engine.distributed import Dist
        from lmpipe.engine.loop import train
        from lmpipe.engine.objectives.masked_lm import MaskedLM
        from lmpipe.engine.precision import resolve_precision

        run_cfg = dataclasses.replace(cfg, steps=total, epochs=None, tokens=None, minutes=None, precision=precision,
                                      compile=compile_, eval_every=10 ** 9, eval_batches=1, checkpoint_every=0,
                                      log_every=log_every, micro_batch_size=None,
                                      fast_cpu_kernels=row != "ours-bf16-sdpa")
        objective = MaskedLM(model, blocks, heldout, mask_rate=params.pretrain.mask_rate,
                             mask_token_fraction=params.pretrain.mask_token_fraction,
                             random_token_fraction=params.pretrain.random_token_fraction,
                             mask_token_id=tokenizer.mask_token_id, special_token_ids=tokenizer.all_special_ids,
                             vocab_size=len(tokenizer), eval_seed=params.seed)
        result = train(objective, run_cfg, lr=lr, seed=params.seed, dist_info=Dist(device=torch.device(device)),
                       on_step=lambda step, obj: stamp(), desc=row)
        losses = {int(r["step"]): float(r["loss"]) for r in result.history}
        telemetry = {**result.summary, **(getattr(result, "telemetry", None) or {})}
        extra = {"resolved_precision": telemetry.get("precision"),
                 "auto_precision_here": str(resolve_precision("auto", torch.device(device))).replace("torch.", ""),
                 "engine_reported_tokens_per_s": telemetry.get("tokens_per_s")}
    else:
        from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

        special_ids = np.asarray(tokenizer.all_special_ids)

        class Blocks(torch.utils.data.Dataset):
            # special_tokens_mask precomputed: the collator's recommended (fast) input
            def __len__(self):
                return len(blocks)

            def __getitem__(self, i):
                return {"input_ids": torch.from_numpy(blocks[i]),
                        "special_tokens_mask": torch.from_numpy(np.isin(blocks[i], special_ids).astype(np.int64))}

        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=params.pretrain.mask_rate,
                                                   mask_replace_prob=params.pretrain.mask_token_fraction,
                                                   random_replace_prob=params.pretrain.random_token_fraction)
        with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
            args = TrainingArguments(
                output_dir=tmp, per_device_train_batch_size=cfg.batch_size, max_steps=total, learning_rate=lr,
                lr_scheduler_type="linear", warmup_steps=cfg.warmup, weight_decay=cfg.weight_decay,
                adam_beta1=cfg.betas[0], adam_beta2=cfg.betas[1], adam_epsilon=1e-8, optim="adamw_torch_fused",
                max_grad_norm=cfg.max_grad_norm or 0.0, bf16=precision == "bf16", use_cpu=not cuda,
                dataloader_num_workers=0, dataloader_pin_memory=cuda, report_to="none", eval_strategy="no",
                save_strategy="no", logging_strategy="steps", logging_steps=log_every, disable_tqdm=True,
                seed=params.seed, data_seed=params.seed, torch_compile=compile_)
            trainer = Trainer(model=model, args=args, train_dataset=Blocks(), data_collator=collator,
                              callbacks=[trainer_timer(stamp, losses)])
            trainer.train()
            extra = {"accelerate_mixed_precision": str(trainer.accelerator.mixed_precision),
                     "accelerate_native_amp": bool(trainer.accelerator.native_amp),
                     "optimizer": f"{type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, 'optimizer') else trainer.optimizer).__name__}"
                                  f" fused={trainer.optimizer.param_groups[0].get('fused')}",
                     "warmup_steps": args.get_warmup_steps(total)}
    wall = time.perf_counter() - start

    marks = np.asarray(stamps)
    deltas = np.diff(marks[:, 0])  # deltas[k]: the whole loop iteration of step k (data, fwd, bwd, opt, log)
    others = _step_others(marks)  # per step: the share of the machine's CPU used by other processes
    timed, timed_others = deltas[warmup:], others[warmup:]
    cpu = np.diff(marks[:, 1])[warmup:]
    is_quiet = timed_others <= QUIET
    if cuda:  # the GPU does the work; other processes on the host's CPU cores are not what is measured
        is_quiet = np.ones_like(timed, dtype=bool)
    quiet = timed[is_quiet]
    use_quiet = len(quiet) >= max(3, len(timed) // 4)
    used = quiet if use_quiet else timed
    used_cpu = cpu[is_quiet] if use_quiet else cpu
    tokens_per_step = cfg.batch_size * blocks.shape[1]
    import resource

    record = {
        "row": row, "engine": engine, "precision": precision, "compile": compile_, "warmup": warmup,
        "steps": int(len(timed)), "quiet_steps": int(len(quiet)), "used_steps": int(len(used)),
        "used_quiet": bool(use_quiet), "tokens_per_step": tokens_per_step,
        "cpu_s_per_step_median": float(np.median(used_cpu)),
        "tokens_per_s": float(tokens_per_step / np.median(used)),
        "device": device, "gpu_peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "tokens_per_s_all_steps": float(len(timed) * tokens_per_step / timed.sum()),
        "step_s_median": float(np.median(used)), "step_s_p10": float(np.percentile(used, 10)),
        "step_s_p90": float(np.percentile(used, 90)), "step_s_min": float(used.min()),
        "others_share_timed": float(np.mean(timed_others)),
        "step_seconds": deltas.tolist(), "step_others": others.tolist(),
        "warmup_s": float(deltas[:warmup].sum()),
        "first_step_s": float(deltas[0]),
        "wall_s": wall, "init_checksum": checksum, "n_params": n_params, "losses": losses,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(), "probe": probe.summary() if probe else {}, **extra,
    }
    if cuda:
        record.update(gpu_rate(record["step_seconds"], warmup, tokens_per_step))
    out.write_text(json.dumps(record, indent=1))


RECOMPILE_FACTOR = 20.0  # a timed GPU step this many times the median is a recompilation, not a step


def gpu_rate(step_seconds: list[float], warmup: int, tokens_per_step: int) -> dict:
    """Throughput on a GPU: the timed window is bounded by device synchronisations, so the sum of its steps
    is exact, where a single step's time is not (the CPU runs ahead). Steps taking RECOMPILE_FACTOR x the
    median are torch.compile recompiling (a new size of the masked-position count, say) and are excluded and
    reported; the GPU may finish up to a step or two of queued work while the CPU compiles, so an exclusion
    can flatter the rate by that much."""
    timed = np.asarray(step_seconds[warmup:])
    slow = timed > RECOMPILE_FACTOR * np.median(timed)
    kept = timed[~slow]
    return {"tokens_per_s": float(tokens_per_step * len(kept) / kept.sum()),
            "tokens_per_s_all_steps": float(tokens_per_step * len(timed) / timed.sum()),
            "recompile_steps_excluded": int(slow.sum()), "recompile_seconds_excluded": float(timed[slow].sum())}


def median_round(rounds: list[dict]) -> dict:
    """The round with the median tokens/s (the lower of the middle two for an even count), carrying every
    round's tokens/s in `round_tokens_per_s` (in round order)."""
    chosen = sorted(rounds, key=lambda r: r["tokens_per_s"])[(len(rounds) - 1) // 2]
    return {**chosen, "round_tokens_per_s": [r["tokens_per_s"] for r in rounds],
            "rounds": [r.get("round", i) for i, r in enumerate(rounds)]}


def round_ratios(ours: dict, theirs: dict) -> list[float]:
    """ours / theirs tokens/s for every round both rows completed."""
    a = dict(zip(ours.get("rounds", [0]), ours.get("round_tokens_per_s", [ours["tokens_per_s"]])))
    b = dict(zip(theirs.get("rounds", [0]), theirs.get("round_tokens_per_s", [theirs["tokens_per_s"]])))
    return [a[k] / b[k] for k in sorted(set(a) & set(b))]


def trainer_timer(stamp, losses: dict):
    """A Trainer callback that stamps the start of every step (as the engine's on_step does) and keeps the
    logged losses by step."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            stamp()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses[int(state.global_step)] = float(logs["loss"])

    return Timer()


# --------------------------------------------------------------------------------------------- contention


def _cpu_snapshot() -> tuple[float, float, float]:
    """(busy seconds of the whole machine, CPU seconds of finished children, wall time)."""
    import resource

    busy = _machine_busy()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, children.ru_utime + children.ru_stime, time.perf_counter()


def wait_quiet(limit_s: float) -> float:
    """Wait (up to limit_s) until the machine is idle over a 2 s window; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        b0, t0 = _machine_busy(), time.perf_counter()
        time.sleep(2.0)
        if (_machine_busy() - b0) / ((time.perf_counter() - t0) * (os.cpu_count() or 1)) <= QUIET:
            break
    return time.perf_counter() - start


def _others_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """The fraction of the machine's CPU capacity used by processes other than the row's, while it ran."""
    busy = after[0] - before[0]
    mine = after[1] - before[1]
    capacity = (after[2] - before[2]) * (os.cpu_count() or 1)
    return max(0.0, min(1.0, (busy - mine) / max(capacity, 1e-9)))


QUIET = 0.10  # a step is "quiet" when other processes used at most this share of the machine's CPU during it


def _machine_busy() -> float:
    fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _stamp() -> tuple[float, float, float]:
    return time.perf_counter(), time.process_time(), _machine_busy()


def _step_others(marks: np.ndarray) -> np.ndarray:
    wall, mine, busy = (np.diff(marks[:, i]) for i in range(3))
    return np.clip((busy - mine) / np.maximum(wall * (os.cpu_count() or 1), 1e-9), 0.0, 1.0)


# --------------------------------------------------------------------------------------------- report


def machine_info(device: str = "cpu") -> dict:
    import torch
    import transformers

    cpu = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import accelerate

        acc = accelerate.__version__
    except ImportError:
        acc = "not installed"
    gpu = torch.cuda.get_device_name() if device == "cuda" else None
    spec = next((v for k, v in SPEC_BF16_TFLOPS.items() if gpu and k in gpu), None)
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu, "gpu_spec_bf16_tflops": spec,
            "cuda": torch.version.cuda if device == "cuda" else None,
            "bf16_flags": " ".join(sorted(f for f in flags if "bf16" in f or f.startswith("amx"))) or "none",
            "torch": torch.__version__, "transformers": transformers.__version__, "accelerate": acc,
            "python": platform.python_version(),
            "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}


def loss_at(losses: dict[int, float], step: int, window: int = 5) -> float | None:
    """The mean per-step loss over the `window` steps ending at `step` (1-based steps)."""
    vals = [losses[s] for s in range(step - window + 1, step + 1) if s in losses]
    return float(np.mean(vals)) if vals else None


def render(results: dict, machine: dict, data: dict, flops: dict, peaks: dict, args, config_source: str,
           command: str, bench_seconds: float) -> str:
    rows = results
    peak_bf16 = max(peaks["bf16_start"], peaks.get("bf16_end", 0.0))
    peak_fp32 = max(peaks["fp32_start"], peaks.get("fp32_end", 0.0))
    lines: list[str] = []
    w = lines.append
    w("# Pretraining throughput: our engine vs Hugging Face Trainer")
    w("")
    w(f"Command: `{command}` ({'quick mode, ' if args.quick else ''}{args.warmup} untimed warm-up steps + "
      f"{args.steps} timed steps per row"
      + (f", {args.repeat} interleaved rounds, each row's median round shown" if getattr(args, "repeat", 1) > 1 else "")
      + f"; whole bench {bench_seconds / 60:.1f} min). Generated by `bench/run.py`.")
    w("")
    w("## Machine")
    w("")
    w(f"- CPU: {machine['cpu']}, {machine['logical_cpus']} logical cores (torch threads {machine['torch_threads']}); "
      f"bf16 flags: {machine['bf16_flags']}")
    if machine.get("gpu"):
        spec = machine.get("gpu_spec_bf16_tflops")
        w(f"- GPU: {machine['gpu']} (CUDA {machine.get('cuda')}); data-sheet dense bf16 peak "
          f"{f'{spec:g} TFLOP/s' if spec else 'unknown (not in SPEC_BF16_TFLOPS)'}; all rows train on it")
    w(f"- torch {machine['torch']}, transformers {machine['transformers']}, accelerate {machine['accelerate']}, "
      f"Python {machine['python']}")
    w(f"- date: {machine['date']}; load average before/after: {peaks.get('load_start', '?')} / "
      f"{peaks.get('load_end', '?')}")
    w(f"- measured matmul peak ({args.peak_n}x{args.peak_n} `torch.matmul`, best window): bf16 "
      f"{peaks['bf16_start']:.3f} TFLOP/s at the start, {peaks.get('bf16_end', float('nan')):.3f} at the end; "
      f"fp32 {peaks['fp32_start']:.3f} / {peaks.get('fp32_end', float('nan')):.3f}. Fractions below use the larger.")
    w("")
    w("## Workload")
    w("")
    m, t = args.model_cfg, args.train_cfg
    w(f"- config: {config_source}: {m.architecture} {m.layers} layers, hidden {m.hidden}, {m.heads} heads, intermediate "
      f"{m.intermediate}, dropout {m.dropout:g} (attention {m.attention_dropout:g}); batch {t.batch_size} x seq "
      f"{args.seq}; lr {args.lr:g}. {flops['n_total'] / 1e6:.2f}M parameters: encoder {flops['n_encoder'] / 1e6:.3f}M, "
      f"vocab projection {flops['n_vocab_projection'] / 1e6:.3f}M (tied to the word embeddings)")
    w(f"- data: {data['source']}: {data['documents']} documents -> WordPiece vocab {data['vocab']} "
      f"(vocab_size param {data['vocab_size_param']}; the corpus has fewer distinct word pieces) -> "
      f"{data['blocks']} training blocks of {data['block_length']} tokens ({data['seconds']:.0f} s to build)")
    w(f"- step: {flops['tokens_per_step']} tokens (batch x seq, packed, no padding), "
      f"~{flops['masked_per_step']:.0f} masked positions (mask rate x non-special fraction "
      f"{data['non_special_fraction']:.3f})")
    w("- both engines: same initial weights (same seed; checksum compared below), lr "
      f"{args.lr:g}, linear warmup over {args.warmup_frac:g} of the steps then linear decay, fused AdamW "
      f"(betas {args.betas[0]:g}/{args.betas[1]:g}, weight decay {args.wd:g}, none on biases/LayerNorm), grad clip "
      f"{args.clip:g}, dropout on, "
      f"no evaluation, no checkpoints, loss logged every {10 if machine.get('gpu') else 1} step(s), batch built in "
      "the main process.")
    w(f"- Trainer: `{MASKED_LM_NAMES[m.architecture]}` + `DataCollatorForLanguageModeling(mlm_probability=0.15)` (dataset items carry "
      f"`special_tokens_mask`), `TrainingArguments(use_cpu={not machine.get('gpu')}, bf16=..., "
      "optim='adamw_torch_fused', dataloader_num_workers=0, report_to='none', save_strategy='no', eval_strategy='no')`"
      "; its -compile row adds `torch_compile=True`.")
    w("")
    w("FLOPs per step (\"useful\", the same for every row): `6*N_enc*T + 12*L*S*H*T + 6*(N_head + H*V)*M` with "
      "T tokens, M expected masked positions, N_enc encoder-layer parameters (embeddings excluded), N_head the MLM "
      "head transform, H*V the vocab projection, L layers, S seq length, H hidden. The vocab projection is counted "
      f"only at masked positions. Useful = {flops['useful_per_step'] / 1e9:.1f} GFLOP/step; the Trainer row "
      f"executes {flops['executed_trainer_per_step'] / 1e9:.1f} GFLOP/step (head at all positions), ours "
      f"{flops['executed_ours_per_step'] / 1e9:.1f}"
      + (" (the last layer's queries, attention output and MLP only at the masked positions)."
         if flops['executed_ours_per_step'] < flops['useful_per_step'] else "."))
    w("")
    w("## Results")
    w("")
    spec = machine.get("gpu_spec_bf16_tflops")
    gpu_cols = " MFU (data-sheet bf16 peak) | GPU memory peak |" if machine.get("gpu") else ""
    w("| row | tokens/s | vs Trainer (same precision) | step s: median (p10-p90) | CPU s/step | useful TFLOP/s | "
      f"% of measured peak (own precision) |{gpu_cols} steps used (quiet/timed) | others' CPU | warm-up s (1st step) |")
    w("|---|---:|---:|---|---:|---:|---:|" + ("---:|---:|" if gpu_cols else "") + "---|---:|---|")
    for name, r in rows.items():
        ref = rows.get(f"trainer-{r['precision']}")
        ratio = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}x" if ref else "-"
        tf = r["tokens_per_s"] / flops["tokens_per_step"] * flops["useful_per_step"] / 1e12
        used = f"{r['used_steps']} ({r['quiet_steps']}/{r['steps']})" + ("" if r["used_quiet"] else " CONTENDED")
        w(f"| {name} | {r['tokens_per_s']:.0f} | {ratio} | {r['step_s_median']:.3f} ({r['step_s_p10']:.3f}-"
          f"{r['step_s_p90']:.3f}) | {r['cpu_s_per_step_median']:.2f} | {tf:.4f} | "
          f"{100 * tf / (peak_bf16 if r['precision'] == 'bf16' else peak_fp32):.1f}% ({r['precision']}) | "
          + (f"{f'{100 * tf / spec:.1f}%' if spec else '-'} | {r.get('gpu_peak_memory_mb') or 0:.0f} MiB | "
             if gpu_cols else "")
          + f"{used} | {100 * r['others_share_timed']:.0f}% | "
          f"{r['warmup_s']:.1f} ({r['first_step_s']:.1f}) |")
    w("")
    if machine.get("gpu"):
        excluded = ", ".join(f"{n} {r['recompile_steps_excluded']} ({r['recompile_seconds_excluded']:.1f} s; "
                             f"{r['tokens_per_s_all_steps']:.0f} tokens/s with it)"
                             for n, r in rows.items() if r.get("recompile_steps_excluded"))
        w("On the GPU, tokens/s = timed steps x tokens per step / their wall time, which is bounded by two device "
          "synchronisations (the start of the first timed step and of the step after the last); the loss is read "
          "back every 10 steps in both engines. Steps over "
          f"{RECOMPILE_FACTOR:g}x the median are torch.compile recompiling and are left out"
          f"{': ' + excluded if excluded else ' (none here)'}. MFU = useful model FLOP/s / the data-sheet dense "
          "bf16 peak (PaLM's definition; the vocabulary projection counted at masked positions only).")
        w("")
    else:
        w(f"tokens/s = tokens per step / median wall time of the steps used. A step is quiet when other processes used "
          f"at most {100 * QUIET:.0f}% of the machine's CPU during it; only quiet steps are used when there are enough "
          "of them (else all timed steps, marked CONTENDED). CPU s/step: this process's CPU time (2 threads: up to 2x "
          "wall). others' CPU: the mean share of the machine taken by other processes over the timed steps.")
        w("")
    if "ours-bf16-compile" in rows:
        r = rows["ours-bf16-compile"]
        steady = r["step_s_median"] * r["warmup"]
        w(f"Compile (ours-bf16-compile): the {r['warmup']} warm-up steps took {r['warmup_s']:.1f} s against "
          f"~{steady:.1f} s at steady speed, so compilation cost ~{r['warmup_s'] - steady:.0f} s "
          f"(first step {r['first_step_s']:.1f} s; cold inductor cache); not included in tokens/s.")
        w("")
    w("What ran (forward hooks):")
    w("")
    w("| row | autocast in forward | encoder Linear out | attention (SDPA) call | vocab logits | "
      "vocab-projection rows/step | encoder inputs | parameters | init checksum |")
    w("|---|---|---|---|---|---:|---|---:|---:|")
    for name, r in rows.items():
        p = r["probe"]
        if not p:
            w(f"| {name} | not probed: hooks inside a compiled region would change what compiles | | | | | | "
              f"{r['n_params']} | {r['init_checksum']:.6f} |")
            continue
        ac = f"{p.get('autocast_enabled_in_forward')} ({p.get('autocast_dtype')})"
        if r["engine"] == "trainer":
            ac += f"; accelerate mixed_precision={r.get('accelerate_mixed_precision')}"
        sd = p.get("sdpa") or {}
        sdpa = (f"{sd.get('dtype')}, mask {'tensor' if sd.get('attn_mask') else 'None'}, dropout_p {sd.get('dropout_p')}"
                if sd else "none: matmul attention in the autocast dtype (engine/cpu_kernels.py)"
                if name.startswith("ours") and name != "ours-bf16-sdpa" else "-")
        w(f"| {name} | {ac} | {p.get('encoder_linear_out_dtype')} | {sdpa} | {p.get('vocab_logits_dtype')} | "
          f"{p.get('vocab_projection_rows_per_step', 0):.0f} | {', '.join(p.get('encoder_inputs', []))} | "
          f"{r['n_params']}{'' if r['n_params'] == flops['n_total'] else ' MISMATCH'} | "
          f"{r['init_checksum']:.6f} |")
    w("")
    w("## Loss curves (mean per-step training loss over the 5 steps ending at the step)")
    w("")
    names = list(rows)
    total = args.warmup + args.steps + 1
    marks = sorted({5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200, total - 1} & set(range(5, total)))
    w("| step | " + " | ".join(names) + " |")
    w("|---:|" + "---:|" * len(names))
    for s in marks:
        cells = []
        for n in names:
            v = loss_at({int(k): v for k, v in rows[n]["losses"].items()}, s)
            cells.append(f"{v:.3f}" if v is not None else "-")
        w(f"| {s} | " + " | ".join(cells) + " |")
    w("")
    return "\n".join(lines)


def analysis(results: dict, flops: dict, peaks: dict, machine: dict | None = None) -> str:
    """The numbers the analysis quotes, computed from this run."""
    lines = []
    spec = (machine or {}).get("gpu_spec_bf16_tflops")
    if spec:
        for name, r in results.items():
            mfu = r["tokens_per_s"] / flops["tokens_per_step"] * flops["useful_per_step"] / 1e12 / spec
            lines.append(f"- {name}: MFU **{100 * mfu:.1f}%** of the {spec:g} TFLOP/s data-sheet bf16 peak "
                         f"({r['tokens_per_s']:.0f} tokens/s).")
    ours_c, hf_c = results.get("ours-bf16-compile"), results.get("trainer-bf16-compile")
    if ours_c and hf_c:
        lines.append(f"- compiled, both: ours {ours_c['tokens_per_s']:.0f} vs Trainer(torch_compile=True) "
                     f"{hf_c['tokens_per_s']:.0f} tokens/s = **{ours_c['tokens_per_s'] / hf_c['tokens_per_s']:.2f}x**.")
    ours, hf = results.get("ours-bf16"), results.get("trainer-bf16")
    if ours and hf:
        ratio = ours["tokens_per_s"] / hf["tokens_per_s"]
        verdict = (f"**meets** the target of {TARGET_RATIO:g}x" if ratio >= TARGET_RATIO else
                   f"**misses** the target of {TARGET_RATIO:g}x: {TARGET_RATIO / ratio:.2f}x more speed would be needed "
                   f"({TARGET_RATIO * hf['tokens_per_s']:.0f} tokens/s)")
        lines.append(f"- bf16: ours {ours['tokens_per_s']:.0f} tokens/s vs Trainer {hf['tokens_per_s']:.0f} "
                     f"tokens/s = **{ratio:.2f}x**, which {verdict}.")
        per_round = round_ratios(ours, hf)
        if len(per_round) > 1:
            lines.append(f"- Rounds (rows interleaved, each row's median round above): ours "
                         f"{', '.join(f'{v:.0f}' for v in ours['round_tokens_per_s'])} tokens/s; Trainer "
                         f"{', '.join(f'{v:.0f}' for v in hf['round_tokens_per_s'])}; the ratio per round "
                         f"{', '.join(f'{v:.2f}x' for v in per_round)} (lowest {min(per_round):.2f}x).")
        flop_ratio = flops["executed_trainer_per_step"] / flops["executed_ours_per_step"]
        lines.append(f"- The Trainer executes {flop_ratio:.2f}x our matmul FLOPs (the vocab projection at every "
                     f"position); the remaining factor {ratio / flop_ratio:.2f}x is time per FLOP (non-matmul work "
                     "such as fp32 logits and softmax at all positions, casts, collator and loop overhead).")
    if ours and hf:
        common = sorted(set(ours["losses"]) & set(hf["losses"]), key=int)
        if len(common) >= 6:
            a = np.asarray([ours["losses"][k] for k in common])
            b = np.asarray([hf["losses"][k] for k in common])
            # Noise of one logged loss, from the differences of neighbours (robust to the falling trend).
            noise = float(np.sqrt((np.var(np.diff(a)) + np.var(np.diff(b))) / 4))
            last = max(3, min(20, len(common) // 3))
            diff = float(np.mean(a[-last:] - b[-last:]))
            bound = 2 * noise * np.sqrt(2 / last)  # two standard errors of a difference of two means
            same = abs(diff) <= bound
            lines.append(f"- Loss over the last {last} logged steps: ours {np.mean(a[-last:]):.3f}, Trainer "
                         f"{np.mean(b[-last:]):.3f} (difference {diff:+.3f}; noise of one logged loss {noise:.3f}, "
                         f"2 standard errors {bound:.3f}): {'the same within noise' if same else 'NOT the same'}"
                         " (same initial weights, different masks and data order).")
    if "ours-fp32" in results and ours:
        lines.append(f"- bf16 vs fp32 in our engine: {ours['tokens_per_s'] / results['ours-fp32']['tokens_per_s']:.2f}x "
                     f"(matmul peak ratio here {max(peaks['bf16_start'], peaks.get('bf16_end', 0)) / max(peaks['fp32_start'], peaks.get('fp32_end', 0)):.2f}x).")
    if "trainer-fp32" in results and hf:
        lines.append(f"- bf16 vs fp32 in the Trainer: {hf['tokens_per_s'] / results['trainer-fp32']['tokens_per_s']:.2f}x.")
    if "ours-bf16-sdpa" in results and ours:
        plain = results["ours-bf16-sdpa"]
        lines.append(f"- CPU kernels (engine/cpu_kernels.py): our engine without them runs {plain['tokens_per_s']:.0f} "
                     f"tokens/s; with them {ours['tokens_per_s'] / plain['tokens_per_s']:.2f}x that.")
    if "ours-bf16-compile" in results and ours:
        lines.append(f"- torch.compile: {results['ours-bf16-compile']['tokens_per_s'] / ours['tokens_per_s']:.2f}x "
                     "over eager bf16 in our engine.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main

KEEP_MARKER = "<!-- hand-written analysis below: bench/run.py keeps it when it rewrites this file -->"


def _kept_analysis(path: Path) -> str:
    """The hand-written part of an existing report (from KEEP_MARKER on), so a re-run does not erase it."""
    if not path.is_file():
        return ""
    text = path.read_text()
    at = text.find(KEEP_MARKER)
    return text[at:] if at >= 0 else ""



def config_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """`--architecture` and `--set` as KEY=VALUE overrides of params.yaml (a malformed one is a usage error)."""
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
    return ([f"model.architecture={args.architecture}"] if args.architecture else []) + list(args.set)


def main(argv: list[str] | None = None) -> int:
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
        args.output = None if args.quick else str(ROOT / "bench" / "RESULTS.md")
    if args.steps < 2 or args.warmup < 1 or args.repeat < 1:
        parser.error("--steps must be >= 2, --warmup >= 1 and --repeat >= 1")
    if args.output and not args.no_write:
        from lmpipe.io import OutputPathError, resolve_output

        try:  # before the minutes of benchmarking, not after them
            resolve_output(args.output)
        except OutputPathError as error:
            parser.error(f"--output {error}")

    if args.worker:
        worker(args.worker, Path(args.data_dir), args.warmup, args.steps, Path(args.out), args.device)
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
        return _write_report(results, saved["machine"], saved["data"], saved["flops"], saved["peaks"], args,
                             saved["config"], command + " (re-rendered from the run's raw JSON)", 0.0)

    machine = machine_info(args.device)
    print(f"[bench] {machine['cpu']}, {machine['logical_cpus']} cores, torch {machine['torch']}, "
          f"transformers {machine['transformers']}", flush=True)
    peaks = {"load_start": open("/proc/loadavg").read().split()[0]}
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
        runs: dict[str, list[dict]] = {}
        env = {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        for round_index, name in ((i, n) for i in range(args.repeat) for n in names):
            out = tmp_path / f"{name}-{round_index}.json"
            row_env = dict(env)
            if ROWS[name][2]:  # a cold inductor cache: the compile time a fresh machine pays
                row_env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / f"inductor-{name}-{round_index}")
            cmd = [sys.executable, "-m", "bench.run", "--worker", name, "--data-dir", tmp, "--out", str(out),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
            waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 and args.device == "cpu" else 0.0
            t = time.perf_counter()
            load = open("/proc/loadavg").read().split()[0]
            before = _cpu_snapshot()
            proc = subprocess.run(cmd, cwd=ROOT, env=row_env, timeout=args.row_timeout, capture_output=True,
                                  text=True)
            others = _others_share(before, _cpu_snapshot())
            if proc.returncode != 0 or not out.exists():
                print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
                print(f"[bench] row {name} FAILED (exit {proc.returncode})", file=sys.stderr, flush=True)
                continue
            r = json.loads(out.read_text())
            r["load_before"], r["others_cpu_share"], r["waited_for_quiet_s"] = load, others, waited
            r["round"] = round_index
            runs.setdefault(name, []).append(r)
            print(f"[bench] {name:18s} {r['tokens_per_s']:8.0f} tokens/s  step {r['step_s_median']:.3f} s  "
                  f"warm-up {r['warmup_s']:.1f} s  ({time.perf_counter() - t:.0f} s; CPU used by other processes "
                  f"{100 * others:.0f}%)" + (f"  [round {round_index + 1}/{args.repeat}]" if args.repeat > 1 else ""),
                  flush=True)
        results = {name: median_round(rounds) for name, rounds in runs.items()}
    peaks["bf16_end"] = matmul_peak("bfloat16", args.peak_n, peak_seconds, args.device)
    peaks["fp32_end"] = matmul_peak("float32", args.peak_n, peak_seconds, args.device)
    peaks["load_end"] = open("/proc/loadavg").read().split()[0]
    if not results:
        print("[bench] no row succeeded", file=sys.stderr)
        return 1

    return _write_report(results, machine, data, flops, peaks, args, config_source, command,
                         time.perf_counter() - bench_start)


def _write_report(results: dict, machine: dict, data: dict, flops: dict, peaks: dict, args, config_source: str,
                  command: str, bench_seconds: float) -> int:
    report = render(results, machine, data, flops, peaks, args, config_source, command, bench_seconds)
    summary = analysis(results, flops, peaks, machine)
    text = report + "\n## Summary (computed by this run)\n\n" + summary + "\n"
    kept = _kept_analysis(Path(args.output)) if args.output else ""
    if kept:
        text += "\n" + kept
    print("\n" + text)
    if not args.no_write and args.output:
        from lmpipe.io import resolve_output, write_text

        write_text(args.output, text)
        raw_out = resolve_output(args.output).with_suffix(".json")  # every step's time and loss, for a closer look
        write_text(raw_out, json.dumps({"machine": machine, "peaks": peaks, "flops": flops, "data": data,
                                        "config": config_source, "rows": results}, indent=1))
        print(f"[bench] wrote {args.output} and {raw_out.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
