"""Sharded tokenization (lmpipe.text.sharded): token files equal to the in-memory encoder's ids, the same bytes for
any number of workers and any shard size, blocks equal to the in-memory packers, a tokenizer trained from shards
equal to one trained from a list, and memory-mapped blocks the engine uses without a copy."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from repo_params import clm_tokenizer_params, tokenizer_params

from lmpipe.data.builtin import generate_corpus, iter_corpus
from lmpipe.data.corpus import CorpusShards, write_corpus_shards
from lmpipe.engine.objectives.base import BlockObjective
from lmpipe.text.encoding import encode_texts
from lmpipe.text.packing import (
    BlockPacker,
    clm_packer,
    heldout_mask,
    mlm_packer,
    pack_blocks,
    pack_documents,
    read_blocks,
    split_heldout,
    write_blocks,
)
from lmpipe.text.sharded import encode_shards, id_dtype, pack_token_file, training_sample
from lmpipe.text.tokenizers import train_bpe_tokenizer, train_tokenizer

N_DOCS = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[list[str], CorpusShards]:
    directory = tmp_path_factory.mktemp("corpus")
    docs = generate_corpus(N_DOCS, seed=11)
    write_corpus_shards(directory, iter_corpus(N_DOCS, seed=11), shard_documents=130)
    return docs, CorpusShards(directory)


@pytest.fixture(scope="module")
def wordpiece(corpus):
    return train_tokenizer(corpus[0], tokenizer_params(vocab_size=400, min_frequency=1, max_length=32))


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.npy"))}


def _encode_and_pack(tokenizer, shards: CorpusShards, heldout: np.ndarray, out: Path, workers: int) -> None:
    files = encode_shards(tokenizer, shards.paths, heldout.astype(np.int8), [out / "train", out / "heldout"],
                          workers=workers)
    for name, tokens in zip(("train", "heldout"), files):
        pack_token_file(tokens, mlm_packer(tokenizer, 32), out / f"{name}.npy", what=name)


def test_token_files_hold_the_encoders_ids_and_the_same_bytes_for_any_number_of_workers(corpus, wordpiece,
                                                                                        tmp_path):
    docs, shards = corpus
    heldout = heldout_mask(len(docs), 0.1, seed=5)
    outputs = {}
    for workers in (1, 2):
        _encode_and_pack(wordpiece, shards, heldout, tmp_path / f"w{workers}", workers)
        outputs[workers] = _digests(tmp_path / f"w{workers}")
    assert outputs[1] == outputs[2]
    assert set(outputs[1]) == {f"{n}{s}.npy" for n in ("train", "heldout") for s in ("", "_ids", "_offsets")}

    train_docs, heldout_docs = split_heldout(docs, 0.1, seed=5)
    ids, offsets = np.load(tmp_path / "w1/train_ids.npy"), np.load(tmp_path / "w1/train_offsets.npy")
    assert ids.dtype == np.uint16 and offsets.dtype == np.int64 and len(offsets) == len(train_docs) + 1
    expected = encode_texts(wordpiece, train_docs, None, special_tokens=False)
    assert [ids[offsets[i]:offsets[i + 1]].tolist() for i in range(len(train_docs))] == expected
    assert np.array_equal(np.load(tmp_path / "w1/train.npy"), pack_blocks(wordpiece, train_docs, 32))
    assert np.array_equal(np.load(tmp_path / "w1/heldout.npy"), pack_blocks(wordpiece, heldout_docs, 32))


def test_blocks_do_not_depend_on_the_shard_size(corpus, wordpiece, tmp_path):
    docs, shards = corpus
    heldout = heldout_mask(len(docs), 0.1, seed=5)
    _encode_and_pack(wordpiece, shards, heldout, tmp_path / "a", workers=2)
    write_corpus_shards(tmp_path / "one", [docs], shard_documents=10_000)
    _encode_and_pack(wordpiece, CorpusShards(tmp_path / "one"), heldout, tmp_path / "b", workers=2)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def _reference_blocks(stream_start: list[int], documents: list[list[int]], separator: int, length: int,
                      first: list[int], last: list[int]) -> np.ndarray:
    """The packing rule written out with Python lists (how the stages packed before token files)."""
    stream = list(stream_start)
    for ids in documents:
        if ids:
            stream += ids + [separator]
    body = length - len(first) - len(last)
    n = len(stream) // body
    return np.array([first + stream[i * body:(i + 1) * body] + last for i in range(n)], dtype=np.int64)


def test_block_packer_fed_in_pieces_follows_the_packing_rule():
    rng = np.random.default_rng(0)
    documents = [rng.integers(5, 100, size=rng.integers(0, 40)).tolist() for _ in range(300)]  # empty ones too
    for start, first, last, length in (([], [1], [2], 16), ([3], [], [], 9)):
        packer = BlockPacker(length, 3, start=start, first=first, last=last)
        pieces = []
        for lo in range(0, len(documents), 17):  # fed in uneven pieces
            part = documents[lo:lo + 17]
            flat = np.array([t for d in part for t in d], dtype=np.uint16)
            pieces.append(packer.blocks(flat, np.array([len(d) for d in part])))
        expected = _reference_blocks(start, documents, 3, length, first, last)
        assert np.array_equal(np.concatenate(pieces), expected)
        lengths = [len(d) for d in documents]
        assert packer.count(sum(lengths), sum(n > 0 for n in lengths), "x") == len(expected)
    with pytest.raises(ValueError, match=r"the docs hold 4 tokens, fewer than one block of 16 \(hint\)"):
        BlockPacker(16, 3, start=[], first=[1], last=[2], hint="(hint)").count(3, 1, "the docs")


def test_causal_lm_token_files_pack_like_pack_documents(corpus, tmp_path):
    docs, shards = corpus
    bpe = train_bpe_tokenizer(docs, clm_tokenizer_params(vocab_size=400, min_frequency=1), 24)
    everything = np.zeros(len(docs), dtype=np.int8)
    (tokens,) = encode_shards(bpe, shards.paths, everything, [tmp_path / "all"], workers=2)
    pack_token_file(tokens, clm_packer(bpe, 24), tmp_path / "all.npy", what="the corpus")
    assert np.array_equal(np.load(tmp_path / "all.npy"), pack_documents(bpe, docs, 24))
    assert tokens.text_bytes == sum(len(d.encode()) for d in docs) and tokens.documents == len(docs)


def test_documents_assigned_to_no_stream_are_not_encoded(corpus, wordpiece, tmp_path):
    docs, shards = corpus
    assignment = np.full(len(docs), -1, dtype=np.int8)
    assignment[::50] = 0
    (tokens,) = encode_shards(wordpiece, shards.paths, assignment, [tmp_path / "some"], workers=1)
    assert tokens.documents == len(docs[::50])
    with pytest.raises(ValueError, match="assignments for 600 documents"):
        encode_shards(wordpiece, shards.paths, assignment[:-1], [tmp_path / "x"])


def test_a_tokenizer_trained_from_the_shards_is_the_one_trained_from_a_list(corpus, tmp_path):
    docs, shards = corpus
    cfg = tokenizer_params(vocab_size=400, min_frequency=1)
    heldout = heldout_mask(len(docs), 0.1, seed=5)
    from_list = train_tokenizer(split_heldout(docs, 0.1, seed=5)[0], cfg)
    from_shards = train_tokenizer(shards.selection(~heldout), cfg)
    assert from_shards.backend_tokenizer.to_str() == from_list.backend_tokenizer.to_str()
    with pytest.raises(TypeError, match="re-iterable"):
        train_tokenizer(iter(docs), cfg)


def test_training_sample_is_a_seeded_subset_of_the_training_documents():
    keep = np.arange(1000) % 10 != 0
    sample = training_sample(keep, 100, seed=1)
    assert sample.sum() == 100 and not (sample & ~keep).any()
    assert np.array_equal(sample, training_sample(keep, 100, seed=1))
    assert not np.array_equal(sample, training_sample(keep, 100, seed=2))
    assert np.array_equal(training_sample(keep, None, seed=1), keep)
    assert np.array_equal(training_sample(keep, 10_000, seed=1), keep)


def test_id_dtype_is_the_smallest_that_holds_the_vocabulary():
    assert id_dtype(65_536) == np.uint16 and id_dtype(65_537) == np.uint32 and id_dtype(300) == np.uint16


def test_memory_mapped_blocks_reach_the_engine_without_a_copy(tmp_path):
    blocks = np.arange(6 * 8, dtype=np.int64).reshape(6, 8)
    write_blocks(tmp_path / "b.npy", blocks)
    mapped = read_blocks(tmp_path / "b.npy")
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, blocks)
    objective = BlockObjective(torch.nn.Linear(1, 1), mapped, mapped[:2])
    assert np.shares_memory(objective.train_blocks.numpy(), mapped)  # a view of the file, not a copy
    assert torch.equal(objective.train_blocks[torch.tensor([4, 1])], torch.from_numpy(blocks[[4, 1]]))
    # the old Parquet name still finds the .npy (callers that name the Parquet block files of before)
    assert np.array_equal(read_blocks(tmp_path / "b.parquet"), blocks)
    shutil.copy(tmp_path / "b.npy", tmp_path / "c.npy")
    np.save(tmp_path / "c.npy", blocks.astype(np.int32))
    with pytest.raises(ValueError, match="expected int64 blocks"):
        read_blocks(tmp_path / "c.npy")


def _run_stages(directory: Path, monkeypatch, **tokenizer) -> dict[str, str]:
    import yaml

    from stages import download, tokenize_data

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    raw["tracking"]["enabled"] = False
    raw["data"]["shard_documents"] = 90
    raw["data"]["builtin"].update(corpus_documents=400, train_size=40, validation_size=10, test_size=10)
    raw["tokenizer"].update(vocab_size=300, max_length=32, **tokenizer)
    directory.mkdir()
    (directory / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(directory)
    download.main()
    tokenize_data.main()
    built = [*sorted((directory / "data").rglob("*.*")), directory / "reports/tokenize.json"]
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in built}


def test_download_and_tokenize_stages_write_the_same_bytes_for_any_number_of_workers(tmp_path, monkeypatch):
    one = _run_stages(tmp_path / "one", monkeypatch, workers=1)
    two = _run_stages(tmp_path / "two", monkeypatch, workers=2)
    assert one == two
    assert "data/raw/corpus/shard-00004.parquet" in one and "data/tokenized/mlm_train_ids.npy" in one
    assert not [name for name in one if ".parts-" in name or ".lmpipe-tmp-" in name]  # no temporaries left
    sampled = _run_stages(tmp_path / "sampled", monkeypatch, workers=2, train_documents=50)
    assert sampled["data/tokenizer/tokenizer.json"] != one["data/tokenizer/tokenizer.json"]


@pytest.mark.usefixtures("one_thread")
def test_training_from_memory_mapped_blocks_is_training_from_blocks_in_memory(tmp_path):
    """Same losses, evaluations and weights: the rows a step indexes, and their (seed, step, example) masks, do not
    depend on where the blocks live."""
    import engine_worker as ew

    from lmpipe.engine.distributed import Dist
    from lmpipe.engine.loop import train

    tokenizer, blocks = ew.load_data(ew.make_data(tmp_path / "data"))
    write_blocks(tmp_path / "blocks.npy", blocks)
    cfg = ew.train_params(steps=4, eval_every=2, log_every=1)
    runs = []
    for source in (blocks, read_blocks(tmp_path / "blocks.npy")):
        objective = ew.mlm_objective(tokenizer, source)
        result = train(objective, cfg, lr=1e-3, seed=3, dist_info=Dist())
        runs.append((ew.plain(result.history), result.evals, objective.model.state_dict()))
    (history, evals, weights), (mapped_history, mapped_evals, mapped_weights) = runs
    assert mapped_history == history and mapped_evals == evals
    assert all(torch.equal(weights[k], mapped_weights[k]) for k in weights)
