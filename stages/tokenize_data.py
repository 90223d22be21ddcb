"""tokenize: train WordPiece on the corpus, pack it into MLM blocks, encode the labelled splits."""

from __future__ import annotations

import pandas as pd

from lmpipe import runtime
from lmpipe.io import atomic_path, write_json, write_table
from lmpipe.params import SPLITS, to_dict
from lmpipe.tokenization import encode_labelled, pack_blocks, split_heldout, train_tokenizer, write_blocks
from lmpipe.tracking import Tracker

RAW, TOKENIZER, TOKENIZED = "data/raw", "data/tokenizer", "data/tokenized"


def main() -> None:
    params = runtime.start("tokenize")
    cfg = params.tokenizer
    with Tracker("tokenize", {"seed": params.seed, "tokenizer": to_dict(cfg)},
                 experiment=params.tracking.experiment, enabled=params.tracking.enabled) as tracker:
        corpus = pd.read_parquet(f"{RAW}/corpus.parquet")["text"].tolist()
        train_docs, heldout_docs = split_heldout(corpus, cfg.heldout_fraction, params.seed)
        tokenizer = train_tokenizer(train_docs, cfg)
        with atomic_path(TOKENIZER) as tmp:
            tokenizer.save_pretrained(tmp)

        mlm_train = pack_blocks(tokenizer, train_docs, cfg.max_length)
        mlm_heldout = pack_blocks(tokenizer, heldout_docs, cfg.max_length)
        write_blocks(f"{TOKENIZED}/mlm_train.parquet", mlm_train)
        write_blocks(f"{TOKENIZED}/mlm_heldout.parquet", mlm_heldout)
        stats = {"vocab_size": len(tokenizer), "mlm_train_blocks": len(mlm_train),
                 "mlm_heldout_blocks": len(mlm_heldout)}
        for split in SPLITS:
            table = encode_labelled(tokenizer, pd.read_parquet(f"{RAW}/{split}.parquet"), cfg.max_length)
            write_table(f"{TOKENIZED}/{split}.parquet", table)
            lengths = [len(x) for x in table.column("input_ids").to_pylist()]
            stats[f"{split}_mean_tokens"] = sum(lengths) / len(lengths)
            stats[f"{split}_truncated_fraction"] = sum(n >= cfg.max_length for n in lengths) / len(lengths)
        write_json("reports/tokenize.json", stats)
        tracker.log_metrics(stats)


if __name__ == "__main__":
    main()
