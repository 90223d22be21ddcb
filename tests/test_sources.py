"""lmpipe.data.sources: real files in tmp_path and real `datasets` calls (no mocks)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from lmpipe.data.sources import (
    DataError,
    build_label_map,
    carve_validation,
    encode_labels,
    load_corpus_file,
    load_corpus_hub,
    load_labelled_files,
    load_labelled_hub,
    read_table,
)

TEXTS = ["a fine film", 'he said "wow", then left', "  leading spaces kept", "tabs\tinside? no: csv only"]


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """Keep `datasets` off the network and out of ~/.cache (its config is read at import time)."""
    datasets = pytest.importorskip("datasets")
    cache = tmp_path / "hf-cache"
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    datasets.disable_progress_bars()
    return datasets


# ----------------------------------------------------------------------------- formats


def test_csv_round_trip_imdb_layout(tmp_path):
    """IMDB: `review,sentiment`, quoted fields with commas/newlines; negative=0, positive=1."""
    reviews = ['Great, really great.\nSecond line "quoted".', "Awful<br />film", "ok, fine", "bad"]
    sentiments = ["positive", "negative", "positive", "negative"]
    path = tmp_path / "imdb.csv"
    pd.DataFrame({"review": reviews, "sentiment": sentiments}).to_csv(path, index=False)

    frame = read_table(path, "review", "sentiment")
    assert frame["text"].tolist() == reviews
    assert frame["label"].tolist() == sentiments
    label_map = build_label_map(frame["label"])
    assert label_map == ["negative", "positive"]
    assert encode_labels(frame, label_map, str(path))["label"].tolist() == [1, 0, 1, 0]


def test_tsv_glue_layout_with_bare_quotes(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('sentence\tlabel\nhide new secretions \t0\nit \'s a "charming" journey\t1\n"\t1\nNA\t0\n',
                    encoding="utf-8")
    frame = read_table(path, "sentence", "label")
    # Trailing whitespace stripped, quotes untouched, "NA" is a sentence not a missing value.
    assert frame["text"].tolist() == ["hide new secretions", 'it \'s a "charming" journey', '"', "NA"]
    assert frame["label"].tolist() == [0, 1, 1, 0]
    assert build_label_map(frame["label"]) == ["0", "1"]
    assert encode_labels(frame, ["0", "1"], str(path))["label"].tolist() == [0, 1, 1, 0]


def test_jsonl_parquet_and_json_array_round_trip(tmp_path):
    records = [{"text": t, "label": i % 2, "extra": [1, 2]} for i, t in enumerate(TEXTS)]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    array = tmp_path / "d.json"
    array.write_text(json.dumps(records), encoding="utf-8")
    parquet = tmp_path / "d.parquet"
    pd.DataFrame(records).to_parquet(parquet)

    for path in (jsonl, array, parquet):
        frame = read_table(path, "text", "label")
        assert list(frame.columns) == ["text", "label"]
        assert frame["text"].tolist() == [t.rstrip() for t in TEXTS], path
        assert frame["label"].tolist() == [0, 1, 0, 1], path


def test_txt_one_document_per_non_empty_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b" = Title = \r\n\n   \nfirst doc\nsecond \xc3\xa9 doc  \n")
    assert read_table(path, "text")["text"].tolist() == [" = Title =", "first doc", "second é doc"]
    assert load_corpus_file(path) == [" = Title =", "first doc", "second é doc"]
    assert load_corpus_file(path, max_documents=2) == [" = Title =", "first doc"]
    with pytest.raises(DataError, match="unlabelled"):
        read_table(path, "text", "label")


def test_corpus_skips_blank_rows_but_not_an_empty_corpus(tmp_path):
    path = tmp_path / "wiki.csv"
    pd.DataFrame({"text": ["", "  ", "real text", ""]}).to_csv(path, index=False)
    assert load_corpus_file(path) == ["real text"]
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(str(blank))):
        load_corpus_file(blank)


# ----------------------------------------------------------------------------- labels


def test_string_multiclass_and_explicit_label_names(tmp_path):
    topics = ["world", "sports", "business", "sci/tech"] * 3
    path = tmp_path / "ag.jsonl"
    path.write_text("\n".join(json.dumps({"t": f"doc {i}", "topic": x}) for i, x in enumerate(topics)),
                    encoding="utf-8")
    frame = read_table(path, "t", "topic")
    inferred = build_label_map(frame["label"])
    assert inferred == ["business", "sci/tech", "sports", "world"]
    assert encode_labels(frame, inferred, "ag")["label"].tolist()[:4] == [3, 2, 0, 1]

    explicit = ["world", "sports", "business", "sci/tech"]
    assert encode_labels(frame, build_label_map(frame["label"], explicit), "ag")["label"].tolist()[:4] == [0, 1, 2, 3]
    with pytest.raises(DataError, match="unique"):
        build_label_map([], ["a", "a"])


def test_integer_labels_sort_numerically_and_act_as_ids_for_named_maps():
    assert build_label_map(list(range(12))) == [str(i) for i in range(12)]
    assert build_label_map(["Positive", "Negative"]) == ["Negative", "Positive"]
    frame = pd.DataFrame({"text": ["a", "b"], "label": [1, 0]})
    # GLUE-style 0/1 with readable names: ints are ids.
    assert encode_labels(frame, ["negative", "positive"], "glue")["label"].tolist() == [1, 0]
    # Names that are integers match by name only ("1" is id 0 here, 0 is not a label).
    with pytest.raises(DataError, match=r"glue: row 2: label 0 is not one of the allowed labels \['1', '2'\]"):
        encode_labels(frame, ["1", "2"], "glue")


def test_label_outside_set_names_row_and_value(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame({"text": ["a", "b", "c", "d"], "label": ["pos", "neg", "pos", "neg"]}).to_csv(train, index=False)
    pd.DataFrame({"text": ["x", "y", "z"], "label": ["pos", "neutral", "neutral"]}).to_csv(test, index=False)
    with pytest.raises(DataError) as err:
        load_labelled_files(str(train), str(test), None, "text", "label", None, 0.5, 0)
    message = str(err.value)
    assert str(test) in message and "row 2" in message and "'neutral'" in message and "['neg', 'pos']" in message


# ----------------------------------------------------------------------------- errors


def test_missing_column_names_file_column_and_existing_columns(tmp_path):
    path = tmp_path / "imdb.csv"
    pd.DataFrame({"review": ["a"], "sentiment": ["positive"]}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_table(path, "text", "sentiment")
    assert str(path) in str(err.value) and "'text'" in str(err.value) and "['review', 'sentiment']" in str(err.value)


def test_empty_text_and_missing_label_name_the_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nfine,1\n"   ",0\n,1\n', encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}: row 2: empty or whitespace-only text") + ".*2 rows"):
        read_table(path, "text", "label")
    path.write_text("text,label\nfine,1\nmore,\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}: row 2: missing label")):
        read_table(path, "text", "label")


def test_undecodable_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("sentence\tlabel\ngood\t1\ncaf\u00e9\t0\n".encode("latin-1"))
    with pytest.raises(DataError, match=re.escape(f"{path}: line 3: not valid UTF-8 (byte offset 25")):
        read_table(path, "sentence", "label")


def test_empty_file_split_missing_file_and_bad_extension(tmp_path):
    header_only = tmp_path / "h.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{header_only}: no data rows")):
        read_table(header_only, "text", "label")
    empty = tmp_path / "e.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{empty}: file is empty")):
        read_table(empty, "text", "label")
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_table(tmp_path / "nope.csv", "text")
    (tmp_path / "d.xlsx").write_bytes(b"")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        read_table(tmp_path / "d.xlsx", "text")
    stray_tab = tmp_path / "tab.tsv"
    for body in ("sentence\tlabel\na\tb\t1\n", "sentence\tlabel\nok\t1\na\tb\t1\n"):  # first or later row
        stray_tab.write_text(body, encoding="utf-8")
        with pytest.raises(DataError, match=re.escape(f"{stray_tab}: cannot parse TSV")):
            read_table(stray_tab, "sentence", "label")
    bad_json = tmp_path / "b.jsonl"
    bad_json.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{bad_json}: line 2: invalid JSON")):
        read_table(bad_json, "text")


# ----------------------------------------------------------------------------- splits


def _balanced(n_per_class: int, classes: int = 2) -> pd.DataFrame:
    rows = [(f"doc {c}-{i}", c) for i in range(n_per_class) for c in range(classes)]
    return pd.DataFrame(rows, columns=["text", "label"])


def test_carve_validation_deterministic_stratified_disjoint():
    train = _balanced(50, classes=4)
    part, val = carve_validation(train, 0.2, seed=7)
    again_part, again_val = carve_validation(train, 0.2, seed=7)
    pd.testing.assert_frame_equal(val, again_val)
    pd.testing.assert_frame_equal(part, again_part)
    assert len(val) == 40 and len(part) == 160
    assert val["label"].value_counts().tolist() == [10, 10, 10, 10]
    assert set(val["text"]).isdisjoint(part["text"]) and set(val["text"]) | set(part["text"]) == set(train["text"])
    assert list(val.index) == list(range(40))
    assert set(carve_validation(train, 0.2, seed=8)[1]["text"]) != set(val["text"])
    # A singleton class cannot be stratified: fall back to a plain split instead of failing.
    odd = pd.concat([train, pd.DataFrame({"text": ["lonely"], "label": [9]})], ignore_index=True)
    assert sum(len(p) for p in carve_validation(odd, 0.2, seed=7)) == len(odd)


def test_load_labelled_files_with_and_without_validation(tmp_path):
    train, test, val = (tmp_path / f"{s}.tsv" for s in ("train", "test", "dev"))
    for path, n in ((train, 20), (test, 4), (val, 6)):
        path.write_text("sentence\tlabel\n" + "".join(f"s {i}\t{i % 2}\n" for i in range(n)), encoding="utf-8")

    splits, label_map = load_labelled_files(str(train), str(test), None, "sentence", "label", None, 0.25, 3)
    assert label_map == ["0", "1"] and list(splits) == ["train", "validation", "test"]
    assert [len(splits[s]) for s in splits] == [15, 5, 4]
    assert str(splits["train"]["label"].dtype) == "int64"

    splits, _ = load_labelled_files(str(train), str(test), str(val), "sentence", "label", ["neg", "pos"], 0.25, 3)
    assert [len(splits[s]) for s in splits] == [20, 6, 4]
    assert splits["validation"]["label"].tolist() == [0, 1] * 3


def test_a_source_without_test_split_has_test_then_validation_carved_from_train(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("review,sentiment\n" + "".join(f"review {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40)))
    splits, label_map = load_labelled_files(str(train), None, None, "review", "sentiment", None, 0.2, 3,
                                            test_fraction=0.1)
    assert list(splits) == ["train", "validation", "test"] and label_map == ["neg", "pos"]
    assert [len(splits[s]) for s in splits] == [28, 8, 4]  # fractions of the file's 40 rows
    assert all(splits[s]["label"].value_counts().tolist() == [len(splits[s]) // 2] * 2 for s in splits)
    texts = [set(frame["text"]) for frame in splits.values()]
    assert set.union(*texts) == {f"review {i}" for i in range(40)} and sum(map(len, texts)) == 40
    again, _ = load_labelled_files(str(train), None, None, "review", "sentiment", None, 0.2, 3, test_fraction=0.1)
    for split in splits:
        pd.testing.assert_frame_equal(splits[split], again[split])

    with pytest.raises(DataError, match=re.escape(f"{train}: the source has no test split; set data.test_fraction")):
        load_labelled_files(str(train), None, None, "review", "sentiment", None, 0.2, 3)
    with pytest.raises(DataError, match="cannot carve a 0.5 validation fraction after the test split from 20 "):
        load_labelled_files(str(train), None, None, "review", "sentiment", None, 0.5, 3, test_fraction=0.5)


def test_a_given_test_split_leaves_the_validation_carve_unchanged(tmp_path):
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    for path, n in ((train, 30), (test, 6)):
        path.write_text("sentence\tlabel\n" + "".join(f"s {i}\t{i % 2}\n" for i in range(n)), encoding="utf-8")
    splits, _ = load_labelled_files(str(train), str(test), None, "sentence", "label", None, 0.2, 5, test_fraction=0.3)
    frame = read_table(train, "sentence", "label")
    part, validation = carve_validation(frame.assign(label=frame["label"].astype(int)), 0.2, seed=5)
    assert splits["validation"]["text"].tolist() == validation["text"].tolist() and len(splits["test"]) == 6


# ----------------------------------------------------------------------------- datasets


def test_hub_save_to_disk_with_class_label(tmp_path, offline_datasets):
    ds = offline_datasets
    features = ds.Features({"text": ds.Value("string"), "label": ds.ClassLabel(names=["neg", "pos"])})
    def split(n: int, start: int = 0) -> "ds.Dataset":
        return ds.Dataset.from_dict(
            {"text": [f"review {start + i}  \n" for i in range(n)], "label": [i % 2 for i in range(n)]}, features)
    saved = tmp_path / "saved"
    ds.DatasetDict({"train": split(10), "test": split(4, 100), "unsupervised": split(3, 200)}).save_to_disk(saved)

    splits, label_map = load_labelled_hub(str(saved), None, "train", "test", None, "text", "label", None, 0.2, 0)
    assert label_map == ["neg", "pos"]
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [8, 2, 4]
    assert splits["test"]["text"].tolist()[0] == "review 100"
    assert splits["test"]["label"].tolist() == [0, 1, 0, 1]
    # no test split named: carved from train like the files source does, never read from "test"
    carved, _ = load_labelled_hub(str(saved), None, "train", None, None, "text", "label", None, 0.2, 0,
                                  test_fraction=0.2)
    assert [len(carved[s]) for s in ("train", "validation", "test")] == [6, 2, 2]
    assert all(int(text.split()[1]) < 10 for frame in carved.values() for text in frame["text"])

    with pytest.raises(DataError, match=r"no such split; available splits: \['test', 'train', 'unsupervised'\]"):
        load_labelled_hub(str(saved), None, "train", "test", "validation", "text", "label", None, 0.2, 0)
    with pytest.raises(DataError, match=r"column 'sentence' not found; available columns: \['text', 'label'\]"):
        load_labelled_hub(str(saved), None, "train", "test", None, "sentence", "label", None, 0.2, 0)

    assert load_corpus_hub(str(saved), None, "unsupervised") == ["review 200", "review 201", "review 202"]
    single = tmp_path / "single"
    split(3).save_to_disk(single)
    assert load_corpus_hub(str(single), None, "train", max_documents=2) == ["review 0", "review 1"]


def test_hub_hidden_test_labels_are_reported(tmp_path, offline_datasets):
    ds = offline_datasets
    features = ds.Features({"sentence": ds.Value("string"), "label": ds.ClassLabel(names=["negative", "positive"])})
    train = ds.Dataset.from_dict({"sentence": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]}, features)
    test = ds.Dataset.from_dict({"sentence": ["x", "y"], "label": [-1, -1]}, features)
    saved = tmp_path / "glue"
    ds.DatasetDict({"train": train, "test": test}).save_to_disk(saved)
    with pytest.raises(DataError, match=r"split 'test': row 1: label -1 is not one of .*hidden.*\(2 rows affected\)"):
        load_labelled_hub(str(saved), None, "train", "test", None, "sentence", "label", None, 0.5, 0)


def test_hub_directory_of_csv_files(tmp_path, offline_datasets):
    data = tmp_path / "imdb_csv"
    data.mkdir()
    for name, n in (("train", 12), ("test", 4)):
        pd.DataFrame({"review": [f"{name} review {i}, with comma" for i in range(n)],
                      "sentiment": ["positive" if i % 2 else "negative" for i in range(n)]}
                     ).to_csv(data / f"{name}.csv", index=False)

    splits, label_map = load_labelled_hub(str(data), None, "train", "test", None, "review", "sentiment", None,
                                          0.25, 1)
    assert label_map == ["negative", "positive"]
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [9, 3, 4]
    assert splits["test"]["label"].tolist() == [0, 1, 0, 1]
    assert sorted(splits["validation"]["label"].value_counts().tolist()) == [1, 2]  # stratified 6/6 -> 1 and 2
    assert load_corpus_hub(str(data), None, "test", "review", max_documents=1) == ["test review 0, with comma"]
    with pytest.raises(DataError, match=r"split 'validation': no such split; available splits: \['test', 'train'\]"):
        load_corpus_hub(str(data), None, "validation", "review")
    with pytest.raises(DataError, match="cannot load dataset"):
        load_corpus_hub(str(tmp_path / "missing_dir"), None, "train")
    assert any((tmp_path / "hf-cache").iterdir())  # the Arrow cache went to tmp_path, not ~/.cache
