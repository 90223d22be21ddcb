"""pretrain-mlm: an encoder from scratch with the masked-language-model objective, or (pretrain.init_from)
further MLM training of a given pretrained model on the corpus, with its own tokenizer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from transformers import AutoTokenizer

from lmpipe.config.loader import to_dict
from lmpipe.config.schema import Params
from lmpipe.engine import checkpoint, distributed, reports
from lmpipe.engine.loop import train
from lmpipe.engine.objectives.masked_lm import MaskedLM
from lmpipe.io import atomic_outputs
from lmpipe.models.build import build_masked_lm
from lmpipe.models.load import effective_max_length, load_error, load_masked_lm, require_tracked
from lmpipe.stage import checkpoint_dir, start
from lmpipe.text.packing import pack_blocks, read_blocks, split_heldout
from lmpipe.text.tokenizers import load_tokenizer
from lmpipe.tracking import Tracker

TOKENIZER, TOKENIZED, OUT, REPORTS = "data/tokenizer", "data/tokenized", "models/pretrained", "reports/pretrain"
CORPUS = "data/raw/corpus.parquet"


def model_and_data(params: Params):
    """(model, tokenizer, training blocks, held-out blocks, the inputs the checkpoint fingerprint covers)."""
    cfg = params.pretrain
    if cfg.init_from is None:
        tokenizer = load_tokenizer(TOKENIZER)
        return (build_masked_lm(params.model, tokenizer), tokenizer, read_blocks(f"{TOKENIZED}/mlm_train.parquet"),
                read_blocks(f"{TOKENIZED}/mlm_heldout.parquet"), [TOKENIZER, TOKENIZED])
    # Within-task pretraining: the corpus encoded with the given model's tokenizer, the same held-out documents.
    require_tracked(cfg.init_from, "pretrain.init_from")
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.init_from, revision=cfg.init_revision)
        model = load_masked_lm(cfg.init_from, cfg.init_revision)
    except OSError as error:  # not found, or (offline) not cached
        raise load_error(error, cfg.init_from, "pretrain.init_from") from None
    corpus = pd.read_parquet(CORPUS)["text"].tolist()
    train_docs, heldout_docs = split_heldout(corpus, params.tokenizer.heldout_fraction, params.seed)
    length = effective_max_length(params.tokenizer.max_length, tokenizer, model)
    return (model, tokenizer, pack_blocks(tokenizer, train_docs, length), pack_blocks(tokenizer, heldout_docs, length),
            [CORPUS] + ([cfg.init_from] if Path(cfg.init_from).is_dir() else []))  # a hub id: its name is in params


def main() -> None:
    params = start("pretrain-mlm")
    info = distributed.setup()
    cfg = params.pretrain
    logged = {"seed": params.seed, "model": to_dict(params.model), "pretrain": to_dict(cfg),
              "tokenizer": {k: getattr(params.tokenizer, k) for k in ("heldout_fraction", "max_length")}}
    with Tracker("pretrain-mlm", logged, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled and info.is_main) as tracker:
        model, tokenizer, train_blocks, heldout_blocks, inputs = model_and_data(params)
        if len(train_blocks) < cfg.train.batch_size:
            raise ValueError(f"{TOKENIZED}/mlm_train.parquet: {len(train_blocks)} training blocks, fewer than one "
                             f"batch (pretrain.train.batch_size={cfg.train.batch_size}): lower the batch size or "
                             f"tokenizer.max_length ({params.tokenizer.max_length}), or give a larger corpus")
        objective = MaskedLM(
            model, train_blocks, heldout_blocks,
            mask_rate=cfg.mask_rate, mask_token_fraction=cfg.mask_token_fraction,
            random_token_fraction=cfg.random_token_fraction, mask_token_id=tokenizer.mask_token_id,
            special_token_ids=tokenizer.all_special_ids, vocab_size=len(tokenizer), eval_seed=params.seed)
        fingerprint = checkpoint.fingerprint("pretrain-mlm", logged, inputs)
        result = train(objective, cfg.train, lr=cfg.lr, seed=params.seed, dist_info=info, tracker=tracker,
                       checkpoint_dir=checkpoint_dir("pretrain-mlm", fingerprint), desc="pretrain-mlm",
                       lr_key="pretrain.lr")
        if info.is_main:
            with atomic_outputs():  # the model and its reports are replaced together, or not at all
                reports.save_pretrained(OUT, REPORTS, model, tokenizer, result, tracker)
    distributed.teardown()


if __name__ == "__main__":
    main()
