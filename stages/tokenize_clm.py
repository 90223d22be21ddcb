"""tokenize-clm: the corpus (the download stage's code, streamed into temporary shards) -> a byte-level BPE
tokenizer (or a base model's), token files and packed next-token blocks in data/clm/."""

from __future__ import annotations

import argparse
import tempfile

from lmpipe.config.clm_schema import CLM_PARAMS_FILE, load_clm_params
from lmpipe.config.loader import to_dict
from lmpipe.data.corpus import CorpusShards, write_corpus_shards
from lmpipe.data.loading import load_data
from lmpipe.io import atomic_outputs, atomic_path, write_json
from lmpipe.models.load import base_context_length
from lmpipe.stage import start
from lmpipe.text.packing import clm_packer, heldout_mask
from lmpipe.text.sharded import encode_shards, pack_token_file, training_sample
from lmpipe.text.tokenizers import load_base_tokenizer, train_bpe_tokenizer
from lmpipe.tracking import Tracker

TOKENIZER, TOKENIZED, REPORT = "data/clm/tokenizer", "data/clm/tokenized", "reports/clm/tokenize.json"
# data/clm/tokenized/: {train,heldout}.npy (int64 blocks, memory-mapped by pretraining and evaluation) and their
# token files {train,heldout}_ids.npy + _offsets.npy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=CLM_PARAMS_FILE)
    args = parser.parse_args(argv)
    params = start("tokenize-clm", args.params, load_clm_params)
    cfg, length = params.tokenizer, params.model.context_length
    logged = {"seed": params.seed, "base_model": params.base_model, "data": to_dict(params.data),
              "tokenizer": to_dict(cfg), "context_length": length}
    with Tracker("tokenize-clm", logged, experiment=params.tracking.experiment,
                 enabled=params.tracking.enabled) as tracker:
        if params.base_model is not None:
            # Cheap checks first: the base model's tokenizer and positions, before the corpus is built.
            tokenizer = load_base_tokenizer(params.base_model)
            limit = base_context_length(params.base_model)
            if length > limit:
                raise ValueError(f"model.context_length {length} exceeds base_model {params.base_model!r}'s "
                                 f"{limit} positions")
            tokenizer.model_max_length = length
        data = load_data(params.data, params.seed)
        # Everything is written into temporaries that replace the outputs together at the end: a corpus too small
        # for a block, or a failure anywhere, changes nothing.
        with (atomic_outputs(), atomic_path(TOKENIZER, directory=True) as tokenizer_dir,
              atomic_path(TOKENIZED, directory=True) as tokenized):
            tokenized.mkdir()
            shards = tempfile.TemporaryDirectory(prefix=".corpus-", dir=tokenized)
            with shards:
                write_corpus_shards(shards.name, data.corpus_batches(), params.data.shard_documents)
                corpus = CorpusShards(shards.name)
                heldout = heldout_mask(corpus.documents, cfg.heldout_fraction, params.seed,
                                       source="the corpus (data:)")
                if params.base_model is None:
                    sample = training_sample(~heldout, cfg.train_documents, params.seed)
                    tokenizer = train_bpe_tokenizer(corpus.selection(sample), cfg, length)
                train_tokens, heldout_tokens = encode_shards(tokenizer, corpus.paths, heldout.astype("int8"),
                                                             [tokenized / "train", tokenized / "heldout"],
                                                             workers=cfg.workers)
            what = {"train": f"the {train_tokens.documents} training documents",
                    "heldout": f"the {heldout_tokens.documents} held-out documents "
                               f"(tokenizer.heldout_fraction={cfg.heldout_fraction:g})"}
            for name, tokens in (("train", train_tokens), ("heldout", heldout_tokens)):  # sizes before writing
                clm_packer(tokenizer, length).count(tokens.tokens, tokens.nonempty, what[name])
            blocks = {name: pack_token_file(tokens, clm_packer(tokenizer, length), tokenized / f"{name}.npy",
                                            what[name])
                      for name, tokens in (("train", train_tokens), ("heldout", heldout_tokens))}
            stats = {"documents": corpus.documents, "heldout_documents": heldout_tokens.documents,
                     "vocab": len(tokenizer), "end_of_text": tokenizer.eos_token, "block_length": length,
                     "train_blocks": blocks["train"], "heldout_blocks": blocks["heldout"],
                     "train_tokens": blocks["train"] * length,
                     "bytes_per_token": train_tokens.text_bytes / max(blocks["train"] * length, 1)}
            tokenizer.save_pretrained(tokenizer_dir)
            write_json(REPORT, stats)
        tracker.log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))})


if __name__ == "__main__":
    main()
