"""`data.source` through params alone: builtin, the IMDB CSV layout and the GLUE TSV layout."""

import pandas as pd
import pytest
from repo_params import params_with

from lmpipe.config.loader import ParamsError
from lmpipe.data.loading import load_data
from lmpipe.data.sources import DataError


@pytest.fixture()
def external(tmp_path, monkeypatch):
    """A project directory as the stages see it: the working directory, with local data under data/external/."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/external").mkdir(parents=True)
    return tmp_path / "data/external"


def test_builtin_splits_are_deterministic_and_distinct():
    cfg = params_with({"data": {"builtin": {"corpus_documents": 50, "train_size": 40, "validation_size": 10,
                                                 "test_size": 20}}}).data
    first, again = load_data(cfg, seed=1), load_data(cfg, seed=1)
    assert [len(first.splits[s]) for s in ("train", "validation", "test")] == [40, 10, 20]
    assert first.label_names == ["negative", "positive"] and len(first.corpus) == 50
    pd.testing.assert_frame_equal(first.splits["train"], again.splits["train"])
    assert not set(first.splits["train"]["text"]) & set(first.splits["test"]["text"])


def test_imdb_csv_layout_through_params(external):
    tmp_path = external
    rows = [("A superb, moving film.", "positive"), ('Dull, "boring"\nand long.', "negative")] * 10
    for split in ("train", "test"):
        pd.DataFrame(rows, columns=["review", "sentiment"]).to_csv(tmp_path / f"{split}.csv", index=False)
    cfg = params_with({"data": {"source": "files", "files": {
        "train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv"),
        "text_column": "review", "label_column": "sentiment"}}}).data
    data = load_data(cfg, seed=0)
    assert data.label_names == ["negative", "positive"]
    assert len(data.splits["validation"]) == 2 and len(data.splits["train"]) == 18  # carved: 10%
    assert set(data.splits["test"]["label"]) == {0, 1}
    assert data.corpus == data.splits["train"]["text"].tolist()  # no corpus file: pretrain on train texts


def test_glue_tsv_layout_with_a_corpus_file(external):
    tmp_path = external
    # (the header once: repeated, its `label` rows were a third class among the 0/1 labels, now an error)
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "it 's \"great\" \t1\nso dull \t0\n" * 5)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nfine film \t1\nbad film \t0\n")
    (tmp_path / "corpus.txt").write_text("first document\n\nsecond document\n")
    cfg = params_with({"data": {"source": "files", "files": {
        "train": str(tmp_path / "train.tsv"), "test": str(tmp_path / "dev.tsv"), "validation": str(tmp_path / "dev.tsv"),
        "text_column": "sentence", "corpus": str(tmp_path / "corpus.txt")}}}).data
    data = load_data(cfg, seed=0)
    assert data.splits["train"]["text"][0] == 'it \'s "great"'
    assert data.corpus == ["first document", "second document"]


def test_bad_row_names_file_and_row(external):
    tmp_path = external
    (tmp_path / "train.csv").write_text("text,label\ngood,1\n,0\n")
    (tmp_path / "test.csv").write_text("text,label\ngood,1\nbad,0\n")
    cfg = params_with({"data": {"source": "files", "files": {
        "train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}}}).data
    with pytest.raises(DataError, match=r"train\.csv.*row 2"):
        load_data(cfg, seed=0)


@pytest.mark.parametrize("where", ["outside", "dotdot", "absolute-outside"])
def test_data_files_outside_data_external_are_refused(external, where):
    """DVC tracks data/external/: a file elsewhere could change without any stage rerunning."""
    outside = external.parents[1] / "elsewhere"
    outside.mkdir()
    for split in ("train", "test"):
        (outside / f"{split}.csv").write_text("text,label\ngood,1\nbad,0\n")
        (external / f"{split}.csv").write_text("text,label\ngood,1\nbad,0\n")
    train = {"outside": "elsewhere/train.csv", "dotdot": "data/external/../../elsewhere/train.csv",
             "absolute-outside": str(outside / "train.csv")}[where]
    with pytest.raises(ParamsError, match=r"data\.files\.train: .* is outside data/external/"):
        params_with({"data": {"source": "files", "files": {"train": train, "test": "data/external/test.csv"}}})
    absolute_inside = str(external / "train.csv")  # absolute paths under data/external/ are fine
    assert params_with({"data": {"source": "files", "files": {
        "train": absolute_inside, "test": "data/external/test.csv"}}}).data.files.train == absolute_inside
