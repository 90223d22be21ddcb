"""The corpus as a stream (lmpipe.data.corpus): every file type read in chunks gives the documents of the whole-file
reader, errors name the same line and byte; globs, directories and lists of files; shards; markup cleaning and the
train split added to the corpus (data.clean_markup, data.corpus_add_train)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from repo_params import params_with

from lmpipe.config.loader import ParamsError
from lmpipe.data import corpus as corpus_module
from lmpipe.data.builtin import generate_corpus, iter_corpus
from lmpipe.data.corpus import CorpusShards, capped, iter_corpus_file, iter_corpus_hub, write_corpus_shards
from lmpipe.data.loading import load_data
from lmpipe.data.markup import clean_markup
from lmpipe.data.sources import DataError, _read_frame, _validate_rows

# Documents with what trips readers up: quotes, commas and newlines inside CSV fields, trailing spaces, tabs,
# non-ASCII, a form feed (a line break for str.splitlines, not for the corpus), "NA" (a sentence, not missing).
DOCUMENTS = ['A "quoted", comma film.', "Second\nline inside", "ends with spaces   ", "tab\tinside", "café ☕ naïve",
             "form\x0cfeed", "NA", "x" * 3000] + [f"document number {i}" for i in range(40)]


def _whole(path, column="text") -> list[str]:
    """The documents the whole-file reader keeps (blank ones skipped)."""
    return _validate_rows(_read_frame(path, column, None), str(path), column, None, skip_blank=True)["text"].tolist()


def _streamed(path, column="text", batch=3) -> list[str]:
    return [text for batch in iter_corpus_file(path, column, batch_documents=batch) for text in batch]


@pytest.fixture()
def small_chunks(monkeypatch):
    """Chunks of 64 bytes: every file below is read in many pieces, with lines and characters across the cuts."""
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 64)
    original = corpus_module._text_pieces
    monkeypatch.setattr(corpus_module, "_text_pieces", lambda path, chunk_bytes=64: original(path, chunk_bytes))


def _write_all_formats(tmp_path) -> list:
    rows = [{"text": text, "other": i} for i, text in enumerate(DOCUMENTS)]
    rows[3]["text"] = None  # a missing value: blank, skipped
    rows[5]["text"] = "   "
    csv_path, jsonl, parquet, array = (tmp_path / name for name in ("c.csv", "j.jsonl", "p.parquet", "a.json"))
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), parquet, row_group_size=7)
    array.write_text(json.dumps(rows), encoding="utf-8")
    tsv = tmp_path / "t.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t.replace(chr(9), ' ').replace(chr(10), ' ')} \t1\n"
                                             for t in DOCUMENTS), encoding="utf-8")
    txt = tmp_path / "w.txt"
    txt.write_bytes(b"\xef\xbb\xbf = Title = \r\n\n   \n" + "\n".join(DOCUMENTS).encode() + b"\n\n")
    return [csv_path, jsonl, parquet, array, tsv, txt]


def test_every_file_type_streams_the_documents_of_the_whole_file_reader(tmp_path, small_chunks):
    for path in _write_all_formats(tmp_path):
        expected = _whole(path)
        assert len(expected) > 40, path
        assert _streamed(path) == expected, path
        assert _streamed(path, batch=1000) == expected, path


def test_undecodable_and_nul_bytes_name_the_line_and_offset_of_the_whole_file_reader(tmp_path, small_chunks):
    lines = [f"line {i} of plain text".encode() for i in range(30)]
    for bad, where in ((b"caf\xe9", 23), (b"nul\x00byte", 17)):
        path = tmp_path / "bad.txt"
        path.write_bytes(b"\n".join(lines[:where] + [bad] + lines[where:]))
        with pytest.raises(DataError) as whole:
            _whole(path)
        with pytest.raises(DataError) as streamed:
            _streamed(path)
        assert str(streamed.value) == str(whole.value)
        assert f"line {where + 1}:" in str(streamed.value)


def test_bad_rows_and_empty_sources_are_refused_with_their_row(tmp_path, small_chunks):
    jsonl = tmp_path / "n.jsonl"
    jsonl.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(9)) + '{"text": 5}\n')
    with pytest.raises(DataError, match=re.escape(f"{jsonl}: row 10: text in column 'text' is int 5")):
        _streamed(jsonl)
    other = tmp_path / "o.jsonl"
    other.write_text('{"body": "a"}\n{"body": "b"}\n')
    with pytest.raises(DataError, match=r"column 'text' not found; available columns: \['body'\]"):
        _streamed(other)
    blank = tmp_path / "blank.csv"
    blank.write_text("text\n\n  \n\"\"\n")
    with pytest.raises(DataError, match="no non-empty documents"):
        _streamed(blank)
    header = tmp_path / "h.csv"
    header.write_text("text,label\n")
    with pytest.raises(DataError, match=re.escape(f"{header}: no data rows")):
        _streamed(header)


def test_capped_stops_at_max_documents():
    batches = [["a", "b"], ["c", "d", "e"], ["f"]]
    assert list(capped(iter(batches), 4)) == [["a", "b"], ["c", "d"]]
    assert list(capped(iter(batches), None)) == batches
    with pytest.raises(ValueError):
        list(capped(iter(batches), 0))


def test_hub_split_streams_from_its_arrow_files(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    texts = [f"review {i}  " if i % 4 else "  " for i in range(25)]
    datasets.DatasetDict({"unsupervised": datasets.Dataset.from_dict({"text": texts})}).save_to_disk(tmp_path / "d")
    batches = list(iter_corpus_hub(str(tmp_path / "d"), None, "unsupervised", batch_documents=4))
    assert all(len(batch) <= 4 for batch in batches)
    assert [t for batch in batches for t in batch] == [t.rstrip() for t in texts if t.strip()]


# ----------------------------------------------------------------------------- shards


def test_shards_hold_the_stream_in_order_whatever_the_shard_size(tmp_path):
    expected = generate_corpus(230, seed=3)
    assert [d for batch in iter_corpus(230, seed=3, batch_documents=17) for d in batch] == expected
    for size in (1000, 100, 7):
        written = write_corpus_shards(tmp_path / str(size), iter_corpus(230, seed=3, batch_documents=17), size)
        shards = CorpusShards(tmp_path / str(size))
        assert written.documents == shards.documents == 230
        assert written.words == sum(len(t.split()) for t in expected)
        assert shards.counts == [size] * (230 // size) + ([230 % size] if 230 % size else [])
        assert [t for batch in shards.batches(batch_documents=5) for t in batch] == expected
        keep = np.arange(230) % 3 == 0
        assert [t for batch in shards.selection(keep) for t in batch] == expected[::3]
        assert list(shards.selection(keep)) == list(shards.selection(keep))  # every iteration starts over


def test_no_shards_is_an_error_naming_the_stage(tmp_path):
    with pytest.raises(DataError, match="no corpus shards.*rerun the download stage"):
        CorpusShards(tmp_path)


# ----------------------------------------------------------------------------- data.files.corpus


@pytest.fixture()
def external(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/external").mkdir(parents=True)
    for split in ("train", "test"):
        (tmp_path / f"data/external/{split}.csv").write_text(
            "text,label\n" + "".join(f"{split} review {i} <br /><br />ok &amp; fine,{i % 2}\n" for i in range(20)))
    return tmp_path / "data/external"


def _files(corpus, **data) -> dict:
    return {"data": {"source": "files", "files": {"train": "data/external/train.csv", "test": "data/external/test.csv",
                                                  "corpus": corpus}, **data}}


def test_corpus_as_glob_directory_and_list(external):
    (external / "wiki").mkdir()
    (external / "wiki/b.txt").write_text("second file\n")
    (external / "wiki/a.txt").write_text("first file\n\nmore\n")
    (external / "wiki/.hidden.txt").write_text("never read\n")
    (external / "unsup.txt").write_text("unlabelled review\n")
    pd.DataFrame({"text": ["from parquet"]}).to_parquet(external / "wiki/c.parquet")
    expected = ["first file", "more", "second file", "from parquet"]
    assert load_data(params_with(_files("data/external/wiki")).data, 0).corpus == expected
    assert load_data(params_with(_files("data/external/wiki/*.txt")).data, 0).corpus == expected[:3]
    recursive = load_data(params_with(_files("data/external/**/*.txt")).data, 0).corpus
    assert recursive == ["unlabelled review"] + expected[:3]
    listed = params_with(_files(["data/external/unsup.txt", "data/external/wiki/b.txt"])).data
    assert load_data(listed, 0).corpus == ["unlabelled review", "second file"]


def test_corpus_entries_that_name_nothing_or_lie_outside_are_refused(external):
    with pytest.raises(ParamsError, match=r"data\.files\.corpus: no file matches data/external/\*\.md"):
        params_with(_files("data/external/*.md"))
    with pytest.raises(ParamsError, match=r"data\.files\.corpus\[1\]: file not found: data/external/nope\.txt"):
        params_with(_files(["data/external/train.csv", "data/external/nope.txt"]))
    (external.parent.parent / "outside.txt").write_text("x\n")
    with pytest.raises(ParamsError, match=r"data\.files\.corpus: \*\.txt is outside data/external/"):
        params_with(_files("*.txt"))
    with pytest.raises(ParamsError, match=r"data\.files\.corpus: an empty list"):
        params_with(_files([]))


def test_clean_markup_and_corpus_add_train(external):
    (external / "unsup.txt").write_text("an unlabelled<br />review &quot;here&quot;\n<br /><br />\n")
    plain = load_data(params_with(_files("data/external/unsup.txt")).data, 0)
    assert "<br />" in plain.splits["train"]["text"][0]
    assert plain.corpus == ["an unlabelled<br />review &quot;here&quot;", "<br /><br />"]
    cfg = params_with(_files("data/external/unsup.txt", clean_markup=True, corpus_add_train=True)).data
    data = load_data(cfg, 0)
    train = data.splits["train"]["text"].tolist()
    assert all("<" not in t and "&amp;" not in t for s in data.splits.values() for t in s["text"])
    assert train[0].endswith("ok & fine") and "  " not in train[0]
    # the corpus: the cleaned file (a document of markup alone is gone), then the train split, never validation/test
    assert data.corpus == ['an unlabelled review "here"'] + train
    assert not set(data.corpus) & (set(data.splits["validation"]["text"]) | set(data.splits["test"]["text"]))
    capped_cfg = params_with(_files("data/external/unsup.txt", corpus_add_train=True, max_corpus_documents=1)).data
    assert len(load_data(capped_cfg, 0).corpus) == 1 + len(train)  # the cap is on the corpus source


def test_corpus_add_train_needs_a_corpus_of_its_own(external):
    with pytest.raises(ParamsError, match=r"data\.corpus_add_train: the corpus already is the training split"):
        params_with(_files(None, corpus_add_train=True))


def test_a_labelled_text_of_markup_alone_is_refused(external):
    (external / "train.csv").write_text("text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(20))
                                        + "<br /><br />,1\n")
    with pytest.raises(DataError, match=r"the train split: row \d+: nothing but markup"):
        load_data(params_with(_files(None, clean_markup=True)).data, 0)


@pytest.mark.parametrize(("text", "cleaned"), [
    ("Great film.<br /><br />Really.", "Great film. Really."),
    ("<br/>starts and ends<BR>", "starts and ends"),
    ("a < b and c > d, I <3 it", "a < b and c > d, I <3 it"),
    ("Tom &amp; Jerry&#39;s &quot;fun&quot; &#x27;x&#x27; AT&T", "Tom & Jerry's \"fun\" 'x' AT&T"),
    ("<p>Hi</p> there <i>you</i>.", "Hi there you ."),
    ("  kept leading spaces", "  kept leading spaces"),
])
def test_clean_markup(text, cleaned):
    assert clean_markup(text) == cleaned
