"""Tiny masked-LM set-ups for tests/test_engine.py, and a script that trains one through the engine.

As a script (one process, or one rank of several with torchrun's RANK/WORLD_SIZE/MASTER_* variables):

    python tests/engine_worker.py --data DIR --out DIR --ckpt-dir DIR [--steps N ...]

it trains the tiny MLM with `lmpipe.engine.loop.train` (`--parallel fsdp`: sharded over the processes),
resuming from the checkpoint directory (the test names it by `checkpoint.fingerprint`, as the stages do), and
writes `record-<rank>.json` (history, evaluations, the first step it ran, the checkpoints it saved, whether
train() handed back the model it was given as plain tensors) and, on rank 0, the final weights as
`weights.safetensors` and the model as a Hugging Face directory `model/`. `launch` / `launch_ranks` and
`finish` / `finish_ranks` run it from a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from repo_params import model_params as repo_model_params
from repo_params import tokenizer_params
from repo_params import train_params as repo_train_params

from lmpipe.config.schema import BUDGET_KEYS, ModelParams, TrainParams
from lmpipe.engine import checkpoint, distributed
from lmpipe.engine.loop import train
from lmpipe.engine.objectives.masked_lm import MaskedLM
from lmpipe.models.build import build_masked_lm
from lmpipe.text.packing import pack_blocks
from lmpipe.text.tokenizers import load_tokenizer, train_tokenizer

WORKER = Path(__file__).resolve()
REPO = WORKER.parents[1]
SUBPROCESS_TIMEOUT = 180
SEQ = 32
N_EVAL = 40  # held-out blocks
WORDS = ("the a movie film plot acting was great dull superb not never boring but however and "
         "story scene actor music long short fun sad happy ending director script camera light dark "
         "comedy drama thriller horror romance character dialogue performance cinema screen audience "
         "brilliant terrible wonderful awful predictable surprising slow fast clever silly beautiful ugly").split()


def model_params(dropout: float = 0.0) -> ModelParams:
    return repo_model_params(architecture="bert", layers=2, hidden=32, heads=2, intermediate=64, max_position=SEQ,
                             dropout=dropout, attention_dropout=dropout)


def train_params(**overrides) -> TrainParams:
    """pretrain.train of params.yaml for the tiny model: fp32, 4 steps, a log row a step, no checkpoints, one
    evaluation at the end; a budget named in `overrides` replaces the steps."""
    values = dict(batch_size=16, steps=4, precision="fp32", eval_every=1000, log_every=1, checkpoint_every=0)
    if any(k in overrides for k in BUDGET_KEYS):
        del values["steps"]
    return repo_train_params(**{**values, **overrides})


def make_data(directory: Path) -> Path:
    """Train a ~200-token WordPiece tokenizer on random sentences; pack blocks of SEQ tokens; save both."""
    rng = random.Random(0)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) for _ in range(900)]
    tokenizer = train_tokenizer(docs, tokenizer_params(vocab_size=200, max_length=SEQ, min_frequency=1))
    blocks = pack_blocks(tokenizer, docs, SEQ).astype(np.int64)
    tokenizer.save_pretrained(str(directory / "tokenizer"))
    np.save(directory / "blocks.npy", blocks)
    return directory


def load_data(directory: Path):
    return load_tokenizer(Path(directory) / "tokenizer"), np.load(Path(directory) / "blocks.npy")


def mlm_objective(tokenizer, blocks: np.ndarray, *, dropout: float = 0.0, init_seed: int = 0,
                  n_train: int | None = None, n_eval: int = N_EVAL) -> MaskedLM:
    """The tiny MLM with weights drawn from `init_seed` (the same weights in every process)."""
    torch.manual_seed(init_seed)
    model = build_masked_lm(model_params(dropout), tokenizer)
    train_blocks = blocks[:-N_EVAL] if n_train is None else blocks[:n_train]
    return MaskedLM(model, train_blocks, blocks[-n_eval:], mask_rate=0.15, mask_token_fraction=0.8,
                    random_token_fraction=0.1, mask_token_id=tokenizer.mask_token_id,
                    special_token_ids=tokenizer.all_special_ids, vocab_size=len(tokenizer))


def plain(rows: list[dict]) -> list[dict]:
    """History/eval rows without wall-clock fields."""
    return [{k: v for k, v in row.items() if k != "tokens_per_s"} for row in rows]


# ------------------------------------------------------------------------------------------ running it


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


def launch(data_dir: Path, out: Path, ckpt_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """One worker process (output in out/log.txt)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(WORKER), "--data", str(data_dir), "--out", str(out), "--ckpt-dir", str(ckpt_dir),
           *extra]
    with open(out / "log.txt", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=REPO, env=env or worker_env(), stdout=log, stderr=subprocess.STDOUT)


def launch_ranks(data_dir: Path, outs: list[Path], ckpt_dir: Path, *extra: str) -> list[subprocess.Popen]:
    """One process per entry of `outs` (rank i writes to outs[i]), joined as torchrun would join them."""
    port = free_port()
    procs = []
    for rank, out in enumerate(outs):
        env = worker_env()
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(len(outs)), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        procs.append(launch(data_dir, out, ckpt_dir, *extra, env=env))
    return procs


def finish(proc: subprocess.Popen, out: Path, rank: int = 0) -> dict:
    """Wait for a worker; its record, or an assertion error with the end of its log."""
    try:
        rc = proc.wait(timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert rc == 0, (out / "log.txt").read_text()[-3000:]
    return json.loads((out / f"record-{rank}.json").read_text())


def finish_ranks(procs: list[subprocess.Popen], outs: list[Path]) -> list[dict]:
    try:
        return [finish(proc, out, rank) for rank, (proc, out) in enumerate(zip(procs, outs))]
    finally:
        for proc in procs:  # one rank failed: the others would wait for it in a collective
            if proc.poll() is None:
                proc.kill()


def read_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "weights.safetensors"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ckpt-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--micro", type=int, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--log-every", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--n-eval", type=int, default=N_EVAL, help="held-out blocks to evaluate on")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep before each step")
    parser.add_argument("--parallel", choices=("ddp", "fsdp"), default="ddp")
    parser.add_argument("--keep-best", action="store_true", help="restore the best evaluation's weights")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    info = distributed.setup()
    args.out.mkdir(parents=True, exist_ok=True)

    saves = []

    def counting(save):
        def counting_save(directory, state, *rest):
            saves.append(state.step)
            save(directory, state, *rest)
        return counting_save

    # the loop calls checkpoint.save (save_sharded under fsdp) through the module
    checkpoint.save, checkpoint.save_sharded = counting(checkpoint.save), counting(checkpoint.save_sharded)

    tokenizer, blocks = load_data(args.data)
    objective = mlm_objective(tokenizer, blocks, dropout=args.dropout, n_eval=args.n_eval)
    model = objective.model
    cfg = train_params(steps=args.steps, batch_size=args.batch, micro_batch_size=args.micro, warmup=0.25,
                       checkpoint_every=args.checkpoint_every, log_every=args.log_every, eval_every=args.eval_every,
                       parallel=args.parallel)

    ran: list[int] = []

    def on_step(step: int, _objective) -> None:
        ran.append(step)
        if info.is_main:
            (args.out / "progress").write_text(str(step))
        if args.sleep:
            time.sleep(args.sleep)

    result = train(objective, cfg, lr=args.lr, seed=args.seed, dist_info=info, checkpoint_dir=args.ckpt_dir,
                   on_step=on_step, desc=f"worker{info.rank}", keep_best=args.keep_best)
    if info.is_main:
        from safetensors.torch import save_file

        from lmpipe.models.save import save_model

        # clone: the tied embedding/decoder weights share storage, which save_file refuses
        save_file({k: v.detach().clone().contiguous() for k, v in objective.model.state_dict().items()},
                  str(args.out / "weights.safetensors"))
        save_model(objective.model, tokenizer, args.out / "model")
    plain_model = objective.model is model and all(type(p) is torch.nn.Parameter for p in model.parameters())
    record = {"rank": info.rank, "world": info.world, "first_step": ran[0], "steps_run": len(ran),
              "saves": saves, "history": plain(result.history), "evals": result.evals,
              "best_step": result.best["step"] if result.best else None, "summary_steps": result.summary["steps"],
              "plain_model": plain_model, "weights_sum": sum(v.double().sum().item() for v in model.state_dict().values())}
    (args.out / f"record-{info.rank}.json").write_text(json.dumps(record))
    distributed.teardown()


if __name__ == "__main__":
    main()
