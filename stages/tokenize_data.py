"""tokenize: train WordPiece on the corpus shards, encode them in parallel into token files, pack MLM blocks,
encode the labelled splits."""

from __future__ import annotations

import pandas as pd

from lmpipe.config.loader import to_dict
from lmpipe.config.schema import SPLITS
from lmpipe.data.corpus import CorpusShards
from lmpipe.io import atomic_outputs, atomic_path, write_json, write_table
from lmpipe.stage import start
from lmpipe.text.encoding import encode_labelled
from lmpipe.text.packing import heldout_mask, mlm_packer
from lmpipe.text.sharded import encode_shards, pack_token_file, training_sample
from lmpipe.text.tokenizers import train_tokenizer
from lmpipe.tracking import Tracker

RAW, TOKENIZER, TOKENIZED = "data/raw", "data/tokenizer", "data/tokenized"
CORPUS = f"{RAW}/corpus"
# data/tokenized/: mlm_{train,heldout}.npy (int64 blocks, memory-mapped by pretraining), their token files
# mlm_{train,heldout}_ids.npy + _offsets.npy, and the labelled splits {train,validation,test}.parquet


def main() -> None:
    params = start("tokenize")
    cfg = params.tokenizer
    with Tracker("tokenize", {"seed": params.seed, "tokenizer": to_dict(cfg)},
                 experiment=params.tracking.experiment, enabled=params.tracking.enabled) as tracker:
        corpus = CorpusShards(CORPUS)
        # Sizes first (documents on each side of the held-out cut), from the shards' footers.
        heldout = heldout_mask(corpus.documents, cfg.heldout_fraction, params.seed, source=CORPUS)
        tokenizer = train_tokenizer(corpus.selection(training_sample(~heldout, cfg.train_documents, params.seed)),
                                    cfg)
        # Everything is written into temporaries that replace the outputs together at the end: a corpus too small
        # for a block, or a failure anywhere, leaves the previous tokenizer and blocks whole.
        with (atomic_outputs(), atomic_path(TOKENIZER, directory=True) as tokenizer_dir,
              atomic_path(TOKENIZED, directory=True) as tokenized):
            tokenized.mkdir()
            train_tokens, heldout_tokens = encode_shards(
                tokenizer, corpus.paths, heldout.astype("int8"),
                [tokenized / "mlm_train", tokenized / "mlm_heldout"], workers=cfg.workers)
            packer = mlm_packer(tokenizer, cfg.max_length)
            packer.count(train_tokens.tokens, train_tokens.nonempty,
                         f"{CORPUS}: the {train_tokens.documents} training documents")
            heldout_blocks = pack_token_file(
                heldout_tokens, mlm_packer(tokenizer, cfg.max_length), tokenized / "mlm_heldout.npy",
                what=f"{CORPUS}: the {heldout_tokens.documents} held-out documents "
                     f"(tokenizer.heldout_fraction={cfg.heldout_fraction:g})")
            train_blocks = pack_token_file(train_tokens, packer, tokenized / "mlm_train.npy",
                                           what=f"{CORPUS}: the {train_tokens.documents} training documents")
            stats = {"vocab_size": len(tokenizer), "mlm_train_blocks": train_blocks,
                     "mlm_heldout_blocks": heldout_blocks}
            for split in SPLITS:
                table = encode_labelled(tokenizer, pd.read_parquet(f"{RAW}/{split}.parquet"), cfg.max_length)
                lengths = [len(x) for x in table.column("input_ids").to_pylist()]
                stats[f"{split}_mean_tokens"] = sum(lengths) / len(lengths)
                stats[f"{split}_truncated_fraction"] = sum(n >= cfg.max_length for n in lengths) / len(lengths)
                write_table(tokenized / f"{split}.parquet", table)
            tokenizer.save_pretrained(tokenizer_dir)
            write_json("reports/tokenize.json", stats)
        tracker.log_metrics(stats)


if __name__ == "__main__":
    main()
