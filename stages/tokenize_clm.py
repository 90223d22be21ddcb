"""tokenize-clm: the corpus (the download stage's code) -> a byte-level BPE tokenizer (or a base model's) and
packed next-token blocks in data/clm/."""

from __future__ import annotations

import argparse

from lmpipe.config.clm_schema import CLM_PARAMS_FILE, load_clm_params
from lmpipe.config.loader import to_dict
from lmpipe.data.loading import load_data
from lmpipe.io import atomic_outputs, atomic_path, write_json
from lmpipe.models.load import base_context_length
from lmpipe.stage import start
from lmpipe.text.packing import pack_documents, split_heldout, write_blocks
from lmpipe.text.tokenizers import load_base_tokenizer, train_bpe_tokenizer
from lmpipe.tracking import Tracker

TOKENIZER, TOKENIZED, REPORT = "data/clm/tokenizer", "data/clm/tokenized", "reports/clm/tokenize.json"


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
        corpus = load_data(params.data, params.seed).corpus
        # Sizes first, and everything in memory before anything is written (a small corpus changes nothing).
        train_docs, heldout_docs = split_heldout(corpus, cfg.heldout_fraction, params.seed,
                                                 source="the corpus (data:)")
        if params.base_model is None:
            tokenizer = train_bpe_tokenizer(train_docs, cfg, length)
        train_blocks = pack_documents(tokenizer, train_docs, length, what=f"the {len(train_docs)} training documents")
        heldout_blocks = pack_documents(tokenizer, heldout_docs, length,
                                        what=f"the {len(heldout_docs)} held-out documents "
                                             f"(tokenizer.heldout_fraction={cfg.heldout_fraction:g})")
        stats = {"documents": len(corpus), "heldout_documents": len(heldout_docs), "vocab": len(tokenizer),
                 "end_of_text": tokenizer.eos_token, "block_length": length,
                 "train_blocks": int(len(train_blocks)), "heldout_blocks": int(len(heldout_blocks)),
                 "train_tokens": int(train_blocks.size),
                 "bytes_per_token": sum(len(t.encode()) for t in train_docs) / max(int(train_blocks.size), 1)}
        # The tokenizer, the blocks and the report are replaced together: a kill or a full disk leaves the old set.
        with (atomic_outputs(), atomic_path(TOKENIZER, directory=True) as tokenizer_dir,
              atomic_path(TOKENIZED, directory=True) as tokenized):
            tokenizer.save_pretrained(tokenizer_dir)
            write_blocks(tokenized / "train.parquet", train_blocks)
            write_blocks(tokenized / "heldout.parquet", heldout_blocks)
            write_json(REPORT, stats)
        tracker.log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))})


if __name__ == "__main__":
    main()
