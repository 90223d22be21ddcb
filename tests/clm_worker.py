"""A tiny causal-LM set-up for tests/test_clm.py, and a script that trains it through the engine.

As a script: `python tests/clm_worker.py --data DIR --out DIR --ckpt-dir DIR [--steps N ...]` trains the tiny
GPT-2 with `lmpipe.engine.loop.train`, resuming from the checkpoint directory, and writes `record-0.json`
(history, evaluations, first step run, checkpoints saved) and `weights.safetensors`, like engine_worker.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import engine_worker as ew
import numpy as np
import torch
from repo_params import clm_tokenizer_params, gpt_params

from lmpipe.data.builtin import generate_corpus
from lmpipe.engine import checkpoint, distributed
from lmpipe.engine.loop import train
from lmpipe.engine.objectives.causal_lm import CausalLM, target_bytes
from lmpipe.models.build import build_gpt2
from lmpipe.text.packing import pack_documents
from lmpipe.text.tokenizers import load_tokenizer, train_bpe_tokenizer

SEQ = 32
N_EVAL = 16  # held-out blocks (from held-out documents)


def model_params(dropout: float = 0.0) -> GPTParams:
    return gpt_params(layers=2, width=32, heads=2, context_length=SEQ, dropout=dropout)


def make_data(directory: Path) -> Path:
    """A 320-token byte-level BPE on 400 builtin documents; train and held-out blocks from disjoint documents."""
    docs = generate_corpus(400, seed=7)
    tokenizer = train_bpe_tokenizer(docs[:360], clm_tokenizer_params(vocab_size=320, min_frequency=1), SEQ)
    tokenizer.save_pretrained(str(directory / "tokenizer"))
    np.save(directory / "train.npy", pack_documents(tokenizer, docs[:360], SEQ).astype(np.int64))
    np.save(directory / "heldout.npy", pack_documents(tokenizer, docs[360:], SEQ)[:N_EVAL].astype(np.int64))
    return directory


def load_data(directory: Path):
    d = Path(directory)
    return load_tokenizer(d / "tokenizer"), np.load(d / "train.npy"), np.load(d / "heldout.npy")


def clm_objective(tokenizer, train_blocks: np.ndarray, heldout: np.ndarray, *, dropout: float = 0.0,
                  init_seed: int = 0) -> CausalLM:
    torch.manual_seed(init_seed)
    model = build_gpt2(model_params(dropout), tokenizer)
    return CausalLM(model, train_blocks, heldout, eval_bytes=target_bytes(tokenizer, heldout, tokenizer.eos_token_id))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ckpt-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--log-every", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep before each step")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    info = distributed.setup()
    args.out.mkdir(parents=True, exist_ok=True)
    saves: list[int] = []
    original_save = checkpoint.save

    def counting_save(directory, state, *model_and_optimizer):
        saves.append(state.step)
        original_save(directory, state, *model_and_optimizer)

    checkpoint.save = counting_save  # the loop calls checkpoint.save through the module

    objective = clm_objective(*load_data(args.data), dropout=args.dropout)
    cfg = ew.train_params(steps=args.steps, batch_size=8, warmup=0.25, checkpoint_every=args.checkpoint_every,
                          log_every=args.log_every, eval_every=args.eval_every)
    ran: list[int] = []

    def on_step(step: int, _objective) -> None:
        ran.append(step)
        (args.out / "progress").write_text(str(step))
        if args.sleep:
            time.sleep(args.sleep)

    result = train(objective, cfg, lr=args.lr, seed=0, dist_info=info, checkpoint_dir=args.ckpt_dir,
                   on_step=on_step, desc="clm-worker")
    from safetensors.torch import save_file

    # clone: the tied embedding/decoder weights share storage, which save_file refuses
    save_file({k: v.detach().clone().contiguous() for k, v in objective.model.state_dict().items()},
              str(args.out / "weights.safetensors"))
    record = {"first_step": ran[0], "steps_run": len(ran), "saves": saves, "history": ew.plain(result.history),
              "evals": result.evals}
    (args.out / "record-0.json").write_text(json.dumps(record))
    distributed.teardown()


if __name__ == "__main__":
    main()
