"""pretrain-mlm: an encoder from scratch with the masked-language-model objective, or (pretrain.init_from)
further MLM training of a given pretrained model on the corpus, with its own tokenizer."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from transformers import AutoTokenizer

from lmpipe.config.loader import to_dict
from lmpipe.config.schema import Params
from lmpipe.data.corpus import CorpusShards
from lmpipe.engine import checkpoint, distributed, reports
from lmpipe.engine.loop import train
from lmpipe.engine.objectives.masked_lm import MaskedLM
from lmpipe.io import atomic_outputs
from lmpipe.models.build import build_masked_lm
from lmpipe.models.load import effective_max_length, load_error, load_masked_lm, require_tracked
from lmpipe.stage import checkpoint_dir, start
from lmpipe.text.packing import heldout_mask, mlm_packer, read_blocks
from lmpipe.text.sharded import encode_shards, pack_token_file
from lmpipe.text.tokenizers import load_tokenizer
from lmpipe.tracking import Tracker

TOKENIZER, TOKENIZED, OUT, REPORTS = "data/tokenizer", "data/tokenized", "models/pretrained", "reports/pretrain"
CORPUS = "data/raw/corpus"
TRAIN_BLOCKS = f"{TOKENIZED}/mlm_train.npy"  # int64 [blocks, length], memory-mapped: rows are read as batches use them


def model_and_data(params: Params, work: Path):
    """(model, tokenizer, training blocks, held-out blocks, the inputs the checkpoint fingerprint covers).

    The blocks are memory-mapped .npy files (`read_blocks`): each process, DDP ranks included, reads only the rows
    its batches index. `work`: a scratch directory for the blocks of pretrain.init_from."""
    cfg = params.pretrain
    if cfg.init_from is None:
        tokenizer = load_tokenizer(TOKENIZER)
        return (build_masked_lm(params.model, tokenizer), tokenizer, read_blocks(TRAIN_BLOCKS),
                read_blocks(f"{TOKENIZED}/mlm_heldout.npy"), [TOKENIZER, TOKENIZED])
    # Within-task pretraining: the corpus encoded with the given model's tokenizer, the same held-out documents.
    require_tracked(cfg.init_from, "pretrain.init_from")
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.init_from, revision=cfg.init_revision)
        model = load_masked_lm(cfg.init_from, cfg.init_revision)
    except OSError as error:  # not found, or (offline) not cached
        raise load_error(error, cfg.init_from, "pretrain.init_from") from None
    corpus = CorpusShards(CORPUS)
    heldout = heldout_mask(corpus.documents, params.tokenizer.heldout_fraction, params.seed, source=CORPUS)
    length = effective_max_length(params.tokenizer.max_length, tokenizer, model)
    train_tokens, heldout_tokens = encode_shards(tokenizer, corpus.paths, heldout.astype("int8"),
                                                 [work / "train", work / "heldout"], workers=params.tokenizer.workers)
    blocks = []
    for tokens, name in ((train_tokens, "training"), (heldout_tokens, "held-out")):
        pack_token_file(tokens, mlm_packer(tokenizer, length), work / f"{name}.npy",
                        what=f"{CORPUS}: the {tokens.documents} {name} documents")
        blocks.append(read_blocks(work / f"{name}.npy"))
    local_model = [cfg.init_from] if Path(cfg.init_from).is_dir() else []  # a hub id: its name is in params
    return (model, tokenizer, *blocks, [CORPUS] + local_model)


def main() -> None:
    params = start("pretrain-mlm")
    info = distributed.setup()
    cfg = params.pretrain
    logged = {"seed": params.seed, "model": to_dict(params.model), "pretrain": to_dict(cfg),
              "tokenizer": {k: getattr(params.tokenizer, k) for k in ("heldout_fraction", "max_length")}}
    with Tracker("pretrain-mlm", logged, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled and info.is_main) as tracker, contextlib.ExitStack() as stack:
        work = stack.enter_context(tempfile.TemporaryDirectory(prefix="lmpipe-pretrain-mlm-"))
        model, tokenizer, train_blocks, heldout_blocks, inputs = model_and_data(params, Path(work))
        if len(train_blocks) < cfg.train.batch_size:
            raise ValueError(f"{TRAIN_BLOCKS}: {len(train_blocks)} training blocks, fewer than one "
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
