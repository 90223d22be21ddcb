"""The rows: our engine or the Hugging Face Trainer trains the same model on the same blocks, each row in its
own subprocess (a fresh interpreter: no shared autocast/accelerate/compile state), and writes its step times,
losses and what really ran to a JSON file for the main process.

Both engines get the same initial weights (same seed), lr, warmup and decay, fused AdamW, weight decay, grad
clipping and precision; the loss is logged every step on a CPU and every 10 steps on a GPU (each log reads the
loss back: a device synchronisation)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import REPO_ROOT
from bench.data import load_blocks
from bench.timing import Stamp, gpu_rate, step_stamper, step_times

# masked-LM rows: name -> (engine, precision, compile)
ROWS: dict[str, tuple[str, str, bool]] = {
    "ours-bf16": ("ours", "bf16", False),
    "trainer-bf16": ("trainer", "bf16", False),
    "ours-bf16-compile": ("ours", "bf16", True),
    "ours-fp32": ("ours", "fp32", False),
    "trainer-fp32": ("trainer", "fp32", False),
    # Our engine without its CPU kernels (engine/accel/cpu_kernels.py): torch's dropout and SDPA attention.
    "ours-bf16-sdpa": ("ours", "bf16", False),
    # TrainingArguments(torch_compile=True): what a Trainer user turns on for speed (GPU rows).
    "trainer-bf16-compile": ("trainer", "bf16", True),
}
DEFAULT_ROWS = ["ours-bf16", "trainer-bf16", "ours-bf16-compile", "ours-fp32", "trainer-fp32", "ours-bf16-sdpa"]
GPU_ROWS = ["ours-bf16-compile", "trainer-bf16-compile", "ours-bf16", "trainer-bf16"]
QUICK_ROWS = ["ours-bf16", "trainer-bf16"]
CLM_ROWS = ("ours", "trainer")


# --------------------------------------------------------------------------------------------- main process side


def row_environment() -> dict[str, str]:
    """The environment of a row's subprocess: no progress bars, no tokenizer threads, this checkout importable."""
    return {**os.environ, "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def run_row(module: str, row: str, data_dir: Path, out: Path, options: list[str], env: dict[str, str],
            timeout: float, tag: str) -> dict | None:
    """Run `python -m <module> --worker <row>` on the data in data_dir; its JSON record, or None (with its output
    on stderr) when it failed."""
    import subprocess

    cmd = [sys.executable, "-m", module, "--worker", row, "--data-dir", str(data_dir), "--out", str(out), *options]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, timeout=timeout, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0 or not out.exists():
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
        print(f"[{tag}] row {row} FAILED (exit {proc.returncode})", file=sys.stderr, flush=True)
        return None
    return json.loads(out.read_text())


# --------------------------------------------------------------------------------------------- shared by the rows


def timed_run_config(cfg, total: int, precision: str, log_every: int, **changes):
    """The params' training config for exactly `total` steps: no evaluation, no checkpoints, no accumulation."""
    return dataclasses.replace(cfg, steps=total, epochs=None, tokens=None, minutes=None, precision=precision,
                               eval_every=10 ** 9, eval_batches=1, checkpoint_every=0, log_every=log_every,
                               micro_batch_size=None, **changes)


def masked_lm_objective(model, blocks: np.ndarray, heldout: np.ndarray, params, tokenizer):
    """Our MaskedLM objective with the params' masking, as the pretrain stage builds it."""
    from lmpipe.engine.objectives.masked_lm import MaskedLM

    return MaskedLM(model, blocks, heldout, mask_rate=params.pretrain.mask_rate,
                    mask_token_fraction=params.pretrain.mask_token_fraction,
                    random_token_fraction=params.pretrain.random_token_fraction,
                    mask_token_id=tokenizer.mask_token_id, special_token_ids=tokenizer.all_special_ids,
                    vocab_size=len(tokenizer), eval_seed=params.seed)


def trainer_arguments(cfg, *, total: int, lr: float, seed: int, precision: str, log_every: int, cuda: bool = False,
                      **changes) -> dict:
    """TrainingArguments keywords matching our engine's run of `cfg`: linear warmup and decay (a change can
    replace the schedule), fused AdamW, clipping, precision; no evaluation, saving or reporting; the batch
    built in the main process."""
    return {"per_device_train_batch_size": cfg.batch_size, "max_steps": total, "learning_rate": lr,
            "lr_scheduler_type": "linear", "warmup_steps": cfg.warmup, "weight_decay": cfg.weight_decay,
            "adam_beta1": cfg.betas[0], "adam_beta2": cfg.betas[1], "adam_epsilon": 1e-8,
            "optim": "adamw_torch_fused", "max_grad_norm": cfg.max_grad_norm or 0.0, "bf16": precision == "bf16",
            "use_cpu": not cuda, "dataloader_num_workers": 0, "dataloader_pin_memory": cuda, "report_to": "none",
            "eval_strategy": "no", "save_strategy": "no", "logging_strategy": "steps", "logging_steps": log_every,
            "disable_tqdm": True, "seed": seed, "data_seed": seed, **changes}


def run_trainer(model, item: Callable[[int], dict], count: int, collator, arguments: dict,
                stamp: Callable[[], None], losses: dict[int, float]):
    """Train `model` with transformers.Trainer on the `count` items item(i); returns the trainer."""
    import torch
    from transformers import Trainer, TrainingArguments

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return count

        def __getitem__(self, i):
            return item(i)

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        trainer = Trainer(model=model, args=TrainingArguments(output_dir=tmp, **arguments), train_dataset=Blocks(),
                          data_collator=collator, callbacks=[trainer_timer(stamp, losses)])
        trainer.train()
    return trainer


def trainer_timer(stamp: Callable[[], None], losses: dict):
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


def init_checksum(model) -> float:
    """The sum of every initial weight: equal in two rows means the same initial weights."""
    return float(sum(p.detach().double().sum() for p in model.parameters()))


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


# --------------------------------------------------------------------------------------------- masked LM


def masked_lm_row(row: str, data_dir: Path, warmup: int, steps: int, out: Path, device: str = "cpu") -> None:
    """One row of bench.run: `warmup` untimed and `steps` timed optimizer steps of the params' masked LM."""
    import resource

    import torch
    import transformers

    from lmpipe.config.schema import params_from_dict
    from lmpipe.models.build import build_masked_lm

    engine, precision, compile_ = ROWS[row]
    params = params_from_dict(json.loads((data_dir / "params.json").read_text()))  # the main process's snapshot
    cfg = params.pretrain.train
    tokenizer, blocks, heldout = load_blocks(data_dir)
    total = warmup + steps + 1  # + 1: the last timed interval ends where step `total - 1` begins
    lr = params.pretrain.lr

    torch.manual_seed(params.seed)  # the same initial weights in every row
    model = build_masked_lm(params.model, tokenizer)
    checksum = init_checksum(model)
    n_params = sum(p.numel() for p in model.parameters())
    probe = Probe(model, device) if not compile_ else None  # hooks inside a compiled region would change what compiles
    transformers.logging.set_verbosity_error()

    stamps: list[Stamp] = []
    losses: dict[int, float] = {}
    cuda = device == "cuda"
    # On a GPU the CPU runs ahead of the device, so a step's start time says little: the timed window is
    # bounded by two synchronisations and throughput is the window's average (timing.gpu_rate).
    log_every = 10 if cuda else 1
    stamp = step_stamper(stamps, warmup, total, cuda)
    start = time.perf_counter()
    if engine == "ours":
        from lmpipe.engine.distributed import Dist
        from lmpipe.engine.loop import train
        from lmpipe.engine.precision import resolve_precision

        run_cfg = timed_run_config(cfg, total, precision, log_every, compile=compile_,
                                   fast_cpu_kernels=row != "ours-bf16-sdpa")
        objective = masked_lm_objective(model, blocks, heldout, params, tokenizer)
        result = train(objective, run_cfg, lr=lr, seed=params.seed, dist_info=Dist(device=torch.device(device)),
                       on_step=lambda step, obj: stamp(), desc=row)
        losses = {int(r["step"]): float(r["loss"]) for r in result.history}
        telemetry = {**result.summary, **(getattr(result, "telemetry", None) or {})}
        extra = {"resolved_precision": telemetry.get("precision"),
                 "auto_precision_here": str(resolve_precision("auto", torch.device(device))).replace("torch.", ""),
                 "engine_reported_tokens_per_s": telemetry.get("tokens_per_s")}
    else:
        from transformers import DataCollatorForLanguageModeling

        special_ids = np.asarray(tokenizer.all_special_ids)

        def item(i: int) -> dict:  # special_tokens_mask precomputed: the collator's recommended (fast) input
            return {"input_ids": torch.from_numpy(blocks[i]),
                    "special_tokens_mask": torch.from_numpy(np.isin(blocks[i], special_ids).astype(np.int64))}

        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=params.pretrain.mask_rate,
                                                   mask_replace_prob=params.pretrain.mask_token_fraction,
                                                   random_replace_prob=params.pretrain.random_token_fraction)
        arguments = trainer_arguments(cfg, total=total, lr=lr, seed=params.seed, precision=precision,
                                      log_every=log_every, cuda=cuda, torch_compile=compile_)
        trainer = run_trainer(model, item, len(blocks), collator, arguments, stamp, losses)
        optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
        extra = {"accelerate_mixed_precision": str(trainer.accelerator.mixed_precision),
                 "accelerate_native_amp": bool(trainer.accelerator.native_amp),
                 "optimizer": f"{type(optimizer).__name__} fused={trainer.optimizer.param_groups[0].get('fused')}",
                 "warmup_steps": trainer.args.get_warmup_steps(total)}
    wall = time.perf_counter() - start

    times = step_times(stamps, warmup, all_quiet=cuda)
    used = times.used
    tokens_per_step = cfg.batch_size * blocks.shape[1]
    record = {
        "row": row, "engine": engine, "precision": precision, "compile": compile_, "warmup": warmup,
        "steps": len(times.timed), "quiet_steps": len(times.quiet), "used_steps": len(used),
        "used_quiet": bool(times.used_quiet), "tokens_per_step": tokens_per_step,
        "cpu_s_per_step_median": float(np.median(times.used_cpu)),
        "tokens_per_s": float(tokens_per_step / np.median(used)),
        "device": device, "gpu_peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "tokens_per_s_all_steps": float(len(times.timed) * tokens_per_step / times.timed.sum()),
        "step_s_median": float(np.median(used)), "step_s_p10": float(np.percentile(used, 10)),
        "step_s_p90": float(np.percentile(used, 90)), "step_s_min": float(used.min()),
        "others_share_timed": float(np.mean(times.timed_others)),
        "step_seconds": times.seconds.tolist(), "step_others": times.others.tolist(),
        "warmup_s": float(times.seconds[:warmup].sum()),
        "first_step_s": float(times.seconds[0]),
        "wall_s": wall, "init_checksum": checksum, "n_params": n_params, "losses": losses,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(), "probe": probe.summary() if probe else {}, **extra,
    }
    if cuda:
        record.update(gpu_rate(record["step_seconds"], warmup, tokens_per_step))
    out.write_text(json.dumps(record, indent=1))


# --------------------------------------------------------------------------------------------- causal LM


def causal_lm_row(row: str, data_dir: Path, warmup: int, steps: int, precision: str, out: Path) -> None:
    """One row of bench.clm: GPT-2 trained by our CausalLM objective or by the Trainer (GPT2LMHeadModel given
    labels=input_ids, which it shifts itself, through default_data_collator)."""
    import torch
    import transformers

    from lmpipe.config.clm_schema import clm_params_from_dict
    from lmpipe.models.build import build_gpt2

    params = clm_params_from_dict(json.loads((data_dir / "params.json").read_text()))
    cfg = params.pretrain.train
    tokenizer, blocks, heldout = load_blocks(data_dir)
    total = warmup + steps + 1  # + 1: the last timed interval ends where step `total - 1` begins
    torch.manual_seed(params.seed)  # the same initial weights in both rows
    model = build_gpt2(params.model, tokenizer)
    checksum = init_checksum(model)
    transformers.logging.set_verbosity_error()
    stamps: list[Stamp] = []
    losses: dict[int, float] = {}
    stamp = step_stamper(stamps, warmup, total)
    if row == "ours":
        from lmpipe.engine.distributed import Dist
        from lmpipe.engine.loop import train
        from lmpipe.engine.objectives.causal_lm import CausalLM

        result = train(CausalLM(model, blocks, heldout), timed_run_config(cfg, total, precision, log_every=1),
                       lr=params.pretrain.lr, seed=params.seed, dist_info=Dist(),
                       on_step=lambda step, obj: stamp(), desc=row)
        losses = {int(r["step"]): float(r["loss"]) for r in result.history}
    else:
        from transformers import default_data_collator

        def item(i: int) -> dict:  # GPT2LMHeadModel shifts labels itself: labels are the inputs
            ids = torch.from_numpy(blocks[i])
            return {"input_ids": ids, "labels": ids}

        arguments = trainer_arguments(cfg, total=total, lr=params.pretrain.lr, seed=params.seed, precision=precision,
                                      log_every=1, lr_scheduler_type="cosine_with_min_lr",
                                      lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio})
        run_trainer(model, item, len(blocks), default_data_collator, arguments, stamp, losses)
    times = step_times(stamps, warmup)
    tokens_per_step = cfg.batch_size * blocks.shape[1]
    last = [losses[k] for k in sorted(losses)][-5:]
    out.write_text(json.dumps({
        "row": row, "tokens_per_s": tokens_per_step / float(np.median(times.used)),
        "step_s": float(np.median(times.used)), "quiet_steps": len(times.quiet),
        "timed_steps": len(times.timed), "others_share": float(np.mean(times.timed_others)),
        "loss_last5": float(np.mean(last)) if last else float("nan"), "init_checksum": checksum,
        "parameters": sum(p.numel() for p in model.parameters()), "tokens_per_step": tokens_per_step}))
