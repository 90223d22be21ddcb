"""lmpipe-predict on a Hugging Face text-classification directory made outside the pipeline."""

from __future__ import annotations

import csv
import io
import json
import sys
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification, PreTrainedTokenizerFast

from lmpipe.cli.predict import PredictError, main, predict, read_texts

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["a superb film", "not good at all, the plot was dull", "great", "the acting was superb but the plot dull",
         "awful"]
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def _tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(TEXTS * 3, trainers.WordPieceTrainer(
        vocab_size=80, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def _config(tokenizer) -> BertConfig:
    return BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32, id2label=LABELS,
                      label2id={v: k for k, v in LABELS.items()})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny 3-class BERT classifier saved as plain Hugging Face files, as any other tool would."""
    path = tmp_path_factory.mktemp("hf") / "classifier"
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    BertForSequenceClassification(_config(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _reference(model_dir: Path, texts: list[str]) -> np.ndarray:
    """One text at a time, no padding, fp32: what batching must not change."""
    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    with torch.no_grad():
        return np.stack([torch.softmax(model(**tokenizer(t, return_tensors="pt")).logits[0], -1).numpy()
                         for t in texts])


def test_batched_probabilities_match_one_by_one(model_dir):
    names, probs = predict(model_dir, TEXTS, batch_size=2, precision="fp32", device="cpu")
    assert names == ["negative", "neutral", "positive"]
    assert probs.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(probs, _reference(model_dir, TEXTS), atol=1e-5)


def test_cli_arguments_to_csv_on_stdout(model_dir, capsys):
    assert main([str(model_dir), *TEXTS[:3], "--precision", "fp32"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    expected = _reference(model_dir, TEXTS[:3])
    assert [r["text"] for r in rows] == TEXTS[:3]
    for row, p in zip(rows, expected):
        assert row["label"] == LABELS[int(p.argmax())]
        assert float(row["score"]) == pytest.approx(p.max(), abs=1e-5)
        assert [float(row[f"p_{n}"]) for n in LABELS.values()] == pytest.approx(p.tolist(), abs=1e-5)


def test_cli_file_to_jsonl_file(model_dir, tmp_path):
    source = tmp_path / "reviews.csv"
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows([["id", "review"], *[[i, t] for i, t in enumerate(TEXTS)]])
    out = tmp_path / "out" / "predictions.jsonl"
    assert main([str(model_dir), "--file", str(source), "--text-column", "review", "-o", str(out),
                 "--batch-size", "2", "--precision", "fp32"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == TEXTS
    expected = _reference(model_dir, TEXTS)
    for record, p in zip(records, expected):
        assert record["label"] == LABELS[int(p.argmax())]
        assert sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert record["probabilities"]["neutral"] == pytest.approx(p[1], abs=1e-5)


def test_cli_stdin_skips_blank_lines(model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("great\n\n  \nawful\n"))
    assert main([str(model_dir), "--format", "jsonl", "--precision", "fp32"]) == 0
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == ["great", "awful"]


def test_long_input_shows_a_progress_bar_on_stderr(model_dir, capsys):
    texts = [TEXTS[i % len(TEXTS)] for i in range(9)]
    assert main([str(model_dir), *texts, "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 + 9
    assert "predict" in captured.err and "5/5" in captured.err  # tqdm: 5 batches
    assert main([str(model_dir), *texts, "--batch-size", "2", "--no-progress"]) == 0
    assert "5/5" not in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["x", "--file", "f.txt"], "not both"),
    (["   "], "argument 1: empty text"),
])
def test_bad_texts_are_named(args, message):
    texts, file = (args[:1], args[2]) if "--file" in args else (args, None)
    with pytest.raises(PredictError, match=message):
        read_texts(texts, file, "text", io.StringIO(""))


def test_bad_rows_in_a_file_are_named(model_dir, tmp_path, capsys):
    source = tmp_path / "reviews.jsonl"
    source.write_text('{"text": "fine"}\n{"text": ""}\n')
    assert main([str(model_dir), "--file", str(source)]) == 2
    assert f"{source}: row 2: empty" in capsys.readouterr().err
    assert main([str(model_dir), "--file", str(source), "--text-column", "review"]) == 2
    assert "column 'review' not found" in capsys.readouterr().err


def test_a_directory_that_is_not_a_classifier_fails_before_loading(tmp_path, capsys):
    tokenizer = _tokenizer()
    BertForMaskedLM(_config(tokenizer)).save_pretrained(tmp_path / "mlm")
    assert main([str(tmp_path / "mlm"), "text"]) == 2
    assert "BertForMaskedLM, not a text classifier" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), "text"]) == 2
    assert "model directory not found" in capsys.readouterr().err


def test_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["lmpipe-predict"].split(":")
    assert getattr(import_module(module), function) is main
