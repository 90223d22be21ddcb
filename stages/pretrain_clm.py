"""pretrain-clm: a GPT-2 decoder from scratch (or continued training of a causal-LM directory / hub id) with
the causal-LM objective, through the one training engine."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lmpipe.config.clm_schema import CLM_PARAMS_FILE, load_clm_params
from lmpipe.config.loader import to_dict
from lmpipe.engine import checkpoint, distributed, reports
from lmpipe.engine.loop import train
from lmpipe.engine.objectives.causal_lm import CausalLM, target_bytes
from lmpipe.io import atomic_outputs
from lmpipe.models.build import build_gpt2
from lmpipe.models.load import describe, load_causal_lm, require_tracked
from lmpipe.stage import checkpoint_dir, start
from lmpipe.text.packing import read_blocks
from lmpipe.text.tokenizers import load_tokenizer
from lmpipe.tracking import Tracker

log = logging.getLogger("lmpipe")
TOKENIZER, TOKENIZED, OUT, REPORTS = "data/clm/tokenizer", "data/clm/tokenized", "models/clm/model", "reports/clm/pretrain"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=CLM_PARAMS_FILE)
    args = parser.parse_args(argv)
    params = start("pretrain-clm", args.params, load_clm_params)
    info = distributed.setup()
    cfg = params.pretrain
    logged = {"seed": params.seed, "base_model": params.base_model, "model": to_dict(params.model),
              "pretrain": to_dict(cfg)}
    with Tracker("pretrain-clm", logged, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled and info.is_main) as tracker:
        tokenizer = load_tokenizer(TOKENIZER)
        # Memory-mapped int64 .npy files: each process (DDP ranks included) reads only the rows its batches index.
        train_blocks = read_blocks(f"{TOKENIZED}/train.npy")
        heldout_blocks = read_blocks(f"{TOKENIZED}/heldout.npy")
        if train_blocks.shape[1] != params.model.context_length:
            raise ValueError(f"{TOKENIZED}: blocks of {train_blocks.shape[1]} tokens, but model.context_length is "
                             f"{params.model.context_length}: rerun tokenize-clm")
        if params.base_model is None:
            model = build_gpt2(params.model, tokenizer)
        else:
            require_tracked(params.base_model, "base_model")
            model = load_causal_lm(params.base_model, params.model.context_length)
        if len(train_blocks) < cfg.train.batch_size:
            raise ValueError(f"{TOKENIZED}/train.npy: {len(train_blocks)} training blocks, fewer than one batch "
                             f"(pretrain.train.batch_size={cfg.train.batch_size}): lower the batch size or "
                             f"model.context_length, or give a larger corpus")
        if model.config.vocab_size < len(tokenizer):
            raise ValueError(f"the model's vocabulary ({model.config.vocab_size}) is smaller than the tokenizer's "
                             f"({len(tokenizer)})")
        log.info("pretrain-clm: %s, %d training blocks of %d tokens", describe(model), len(train_blocks),
                 train_blocks.shape[1])
        objective = CausalLM(model, train_blocks, heldout_blocks,
                             eval_bytes=target_bytes(tokenizer, heldout_blocks, tokenizer.eos_token_id))
        local_base = [params.base_model] if params.base_model and Path(params.base_model).is_dir() else []
        fingerprint = checkpoint.fingerprint("pretrain-clm", logged, [TOKENIZER, TOKENIZED] + local_base)
        result = train(objective, cfg.train, lr=cfg.lr, seed=params.seed, dist_info=info, tracker=tracker,
                       checkpoint_dir=checkpoint_dir("pretrain-clm", fingerprint), desc="pretrain-clm",
                       lr_key=f"pretrain.lr in {args.params}")
        if info.is_main:
            with atomic_outputs():  # the model and its reports are replaced together, or not at all
                reports.save_pretrained(OUT, REPORTS, model, tokenizer, result, tracker)
    distributed.teardown()


if __name__ == "__main__":
    main()
