"""tokenize: train WordPiece on the corpus, pack it into MLM blocks, encode the labelled splits."""

from __future__ import annotations

import pandas as pd

from lmpipe.config.loader import to_dict
from lmpipe.config.schema import SPLITS
from lmpipe.io import atomic_outputs, atomic_path, write_json, write_table
from lmpipe.stage import start
from lmpipe.text.encoding import encode_labelled
from lmpipe.text.packing import pack_blocks, split_heldout, write_blocks
from lmpipe.text.tokenizers import train_tokenizer
from lmpipe.tracking import Tracker

RAW, TOKENIZER, TOKENIZED = "data/raw", "data/tokenizer", "data/tokenized"
CORPUS = f"{RAW}/corpus.parquet"


def main() -> None:
    params = start("tokenize")
    cfg = params.tokenizer
    with Tracker("tokenize", {"seed": params.seed, "tokenizer": to_dict(cfg)},
                 experiment=params.tracking.experiment, enabled=params.tracking.enabled) as tracker:
        corpus = pd.read_parquet(CORPUS)["text"].tolist()
        # Sizes first (documents on each side of the held-out cut, then a block on each side), and everything in
        # memory before anything is written: a corpus too small leaves the previous tokenizer and blocks whole.
        train_docs, heldout_docs = split_heldout(corpus, cfg.heldout_fraction, params.seed, source=CORPUS)
        tokenizer = train_tokenizer(train_docs, cfg)
        mlm_train = pack_blocks(tokenizer, train_docs, cfg.max_length,
                                what=f"{CORPUS}: the {len(train_docs)} training documents")
        mlm_heldout = pack_blocks(tokenizer, heldout_docs, cfg.max_length,
                                  what=f"{CORPUS}: the {len(heldout_docs)} held-out documents "
                                       f"(tokenizer.heldout_fraction={cfg.heldout_fraction:g})")
        stats = {"vocab_size": len(tokenizer), "mlm_train_blocks": len(mlm_train),
                 "mlm_heldout_blocks": len(mlm_heldout)}
        labelled = {}
        for split in SPLITS:
            labelled[split] = encode_labelled(tokenizer, pd.read_parquet(f"{RAW}/{split}.parquet"), cfg.max_length)
            lengths = [len(x) for x in labelled[split].column("input_ids").to_pylist()]
            stats[f"{split}_mean_tokens"] = sum(lengths) / len(lengths)
            stats[f"{split}_truncated_fraction"] = sum(n >= cfg.max_length for n in lengths) / len(lengths)

        with (atomic_outputs(), atomic_path(TOKENIZER, directory=True) as tokenizer_dir,
              atomic_path(TOKENIZED, directory=True) as tokenized):
            tokenizer.save_pretrained(tokenizer_dir)
            write_blocks(tokenized / "mlm_train.parquet", mlm_train)
            write_blocks(tokenized / "mlm_heldout.parquet", mlm_heldout)
            for split, table in labelled.items():
                write_table(tokenized / f"{split}.parquet", table)
            write_json("reports/tokenize.json", stats)
        tracker.log_metrics(stats)


if __name__ == "__main__":
    main()
