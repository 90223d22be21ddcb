"""download: labelled splits, label names and the pretraining corpus (Parquet shards, streamed) into data/raw/."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from lmpipe.config.loader import to_dict
from lmpipe.config.schema import SPLITS
from lmpipe.data.corpus import write_corpus_shards
from lmpipe.data.loading import load_data
from lmpipe.io import atomic_outputs, atomic_path, write_json, write_table
from lmpipe.stage import start
from lmpipe.tracking import Tracker

RAW = "data/raw"
CORPUS = "corpus"  # data/raw/corpus/shard-00000.parquet, ...


def main() -> None:
    params = start("download")
    with Tracker("download", {"seed": params.seed, "data": to_dict(params.data)},
                 experiment=params.tracking.experiment, enabled=params.tracking.enabled) as tracker:
        data = load_data(params.data, params.seed)
        stats = {"corpus_documents": 0, "corpus_words": 0}  # counted while the corpus streams to its shards
        for split in SPLITS:
            frame = data.splits[split]
            stats[f"{split}_examples"] = len(frame)
            counts = Counter(frame["label"].tolist())
            stats[f"{split}_label_fraction"] = {name: counts.get(i, 0) / len(frame)
                                                for i, name in enumerate(data.label_names)}
        # data/raw is replaced as a whole, together with its report: a failure (a full disk, a kill, a bad row deep
        # in the corpus) leaves the previous splits, corpus and labels.json as they were, never a mix.
        with atomic_outputs(), atomic_path(RAW, directory=True) as raw:
            for split in SPLITS:
                write_table(raw / f"{split}.parquet", pa.Table.from_pandas(data.splits[split], preserve_index=False))
            corpus = write_corpus_shards(raw / CORPUS, data.corpus_batches(), params.data.shard_documents)
            stats.update(corpus_documents=corpus.documents, corpus_words=corpus.words)
            write_json(raw / "labels.json", data.label_names)
            write_json("reports/data.json", stats)
        tracker.log_metrics({k: v for k, v in stats.items() if not isinstance(v, dict)})


if __name__ == "__main__":
    main()
