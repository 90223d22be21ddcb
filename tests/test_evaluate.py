"""The evaluate stage's parts: the comparison, the report files (predictions.csv streamed), summary.md, the
chunked encoding and disk-backed inference, and registering the best classifier in a real MLflow store
(sqlite in a temp dir)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from test_predict import LABELS, TEXTS, _config, _tokenizer
from transformers import BertForSequenceClassification

from lmpipe.evaluation import comparison as evaluation
from lmpipe.evaluation.baseline import predict_proba as baseline_proba
from lmpipe.evaluation.baseline import tfidf_logistic_regression
from lmpipe.evaluation.comparison import BASELINE
from lmpipe.evaluation.inference import TokenIdFile, encode_split_to_file, predict_proba
from lmpipe.evaluation.registry import log_classifier, pip_requirements, try_log_classifier
from lmpipe.evaluation.report import render_summary
from lmpipe.finetune.saving import PREPROCESSING_FILE, encode_for_model
from lmpipe.io import streaming_csv, write_rows_csv
from lmpipe.tracking import TrackingWarning

NAMES = ["negative", "positive"]


def _variants(n: int = 60) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and four variants of decreasing quality (the baseline between the best and the rest)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    out = {}
    for variant, signal in [("finetune", 2.0), ("freeze-finetune", 0.5), ("finetune-scratch", 0.2), (BASELINE, 1.0)]:
        p = 1 / (1 + np.exp(-(signal * (2 * labels - 1) + rng.normal(size=n))))
        out[variant] = np.stack([1 - p, p], axis=1).astype(np.float32)
    return labels, out


def test_comparison_is_the_difference_of_the_variants():
    labels, probs = _variants()
    results = evaluation.score(labels, probs, NAMES, ece_bins=10)
    metrics = evaluation.metrics_json(results, {"heldout_perplexity": 123.4, "steps": 6}, "f1_macro")
    comparison = metrics["comparison"]
    for metric in ("accuracy", "f1_macro", "roc_auc", "pr_auc", "ece"):
        assert comparison["pretraining_gain"][metric] == pytest.approx(
            results["finetune"][metric] - results["finetune-scratch"][metric])
        assert comparison["full_minus_frozen"][metric] == pytest.approx(
            results["finetune"][metric] - results["freeze-finetune"][metric])
        assert comparison["best_minus_baseline"][metric] == pytest.approx(
            results["finetune"][metric] - results[BASELINE][metric])
    assert comparison["pretraining_gain"]["accuracy"] > 0  # the strongest signal wins
    assert metrics["pretrained_encoder"] == {"heldout_perplexity": 123.4}
    assert "confusion_matrix" not in metrics["finetune"] and "per_class" in metrics["finetune"]
    json.dumps(metrics)  # plain JSON numbers only


def test_the_baseline_is_never_the_best_classifier():
    results = {"finetune": {"f1_macro": 0.6}, "freeze-finetune": {"f1_macro": 0.7}, BASELINE: {"f1_macro": 0.9}}
    assert evaluation.best_variant(results, "f1_macro") == "freeze-finetune"


def _write_predictions(path: Path, labels: np.ndarray, texts: list[str], probs: dict[str, np.ndarray]) -> None:
    with evaluation.open_predictions(str(path), NAMES) as predictions:
        for variant, p in probs.items():
            predictions.write(variant, labels, p, iter(texts))  # a one-pass iterator, as the stage streams them


def test_reports_hold_every_variant_and_example(tmp_path):
    labels, probs = _variants(40)
    texts = [f"review number {i}, with a comma" for i in range(40)]
    results = evaluation.score(labels, probs, NAMES, ece_bins=10)
    evaluation.write_reports(str(tmp_path), labels, NAMES, probs, results, ece_bins=10)
    _write_predictions(tmp_path / "predictions.csv", labels, texts, probs)

    with open(tmp_path / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 40
    assert list(rows[0]) == ["example", "variant", "label", "predicted", "p_negative", "p_positive", "text"]
    for variant, p in probs.items():
        mine = [r for r in rows if r["variant"] == variant]
        assert [r["text"] for r in mine] == texts
        assert [int(r["example"]) for r in mine] == list(range(40))
        np.testing.assert_allclose([[float(r["p_negative"]), float(r["p_positive"])] for r in mine], p, atol=1e-6)
        assert [r["label"] for r in mine] == [NAMES[i] for i in labels]
        assert [r["predicted"] for r in mine] == [NAMES[i] for i in p.argmax(axis=1)]

        roc = list(csv.DictReader(open(tmp_path / "curves" / f"roc_{variant}.csv")))
        assert (roc[0]["fpr"], roc[-1]["tpr"]) == ("0.0", "1.0")
        assert list(csv.DictReader(open(tmp_path / "curves" / f"pr_{variant}.csv")))[0].keys() == {"recall", "precision"}
        calibration = list(csv.DictReader(open(tmp_path / "curves" / f"calibration_{variant}.csv")))
        assert sum(int(r["examples"]) for r in calibration) == 40
        confusion = (tmp_path / f"confusion_{variant}.csv").read_text().splitlines()
        assert confusion[0] == "actual,predicted" and len(confusion) == 41
        assert confusion[1:] == [f"{NAMES[a]},{NAMES[b]}" for a, b in zip(labels, p.argmax(axis=1))]
    matrices = json.loads((tmp_path / "confusion_matrices.json").read_text())
    assert matrices["labels"] == NAMES and np.sum(matrices["finetune"]) == 40


def test_predictions_file_appears_only_when_complete(tmp_path):
    """A failure while the rows stream (here: one text short) leaves the previous file as it was."""
    labels, probs = _variants(10)
    path = tmp_path / "predictions.csv"
    path.write_text("previous\n")
    with pytest.raises(ValueError), evaluation.open_predictions(str(path), NAMES) as predictions:
        predictions.write("finetune", labels, probs["finetune"], iter(["t"] * 10))
        predictions.write(BASELINE, labels, probs[BASELINE], iter(["t"] * 9))
    assert path.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]  # no temporary left behind


def test_streaming_csv_writes_the_bytes_of_write_rows_csv(tmp_path):
    rows = [{"actual": "neg", "predicted": "pos, really"}, {"actual": 'a "quote"', "predicted": "line\nbreak"}]
    write_rows_csv(tmp_path / "whole.csv", rows, ["actual", "predicted"])
    with streaming_csv(tmp_path / "streamed.csv", ["actual", "predicted"]) as writer:
        writer.writerows([r["actual"], r["predicted"]] for r in rows)
    assert (tmp_path / "streamed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_a_single_class_split_still_writes_every_curve_file(tmp_path):
    labels = np.zeros(5, dtype=int)
    probs = {"finetune": np.tile(np.float32([0.7, 0.3]), (5, 1))}
    results = evaluation.score(labels, probs, NAMES, ece_bins=10)
    evaluation.write_reports(str(tmp_path), labels, NAMES, probs, results, ece_bins=10)
    assert (tmp_path / "curves" / "roc_finetune.csv").read_text().strip() == "fpr,tpr"  # DVC needs the out


# ------------------------------------------------------------------------------ streaming encoding, inference


def test_token_id_file_reads_back_every_sequence():
    arrays = [pa.array([[5, 6, 7], [], [8]], type=pa.list_(pa.int32())),
              pa.array([[1, 2], [3, 4, 5, 6], [9]], type=pa.list_(pa.int32())).slice(1, 2),  # offsets not at 0
              pa.chunked_array([pa.array([[70000, 2**31 - 1]], type=pa.list_(pa.int32()))])]
    expected = [[5, 6, 7], [], [8], [3, 4, 5, 6], [9], [70000, 2**31 - 1]]
    with TokenIdFile() as ids:
        ids.append(arrays[0])
        assert ids[2].tolist() == [8] and len(ids) == 3  # readable between appends
        for array in arrays[1:]:
            ids.append(array)
        assert len(ids) == len(expected) and ids.lengths.tolist() == [len(x) for x in expected]
        assert [ids[i].tolist() for i in range(len(ids))] == expected
        assert ids[0].dtype == np.int64


@pytest.mark.parametrize("truncation", ["head", "head_tail"])
def test_chunked_encoding_gives_the_ids_of_encode_for_model(tmp_path, truncation):
    tokenizer = _tokenizer()
    model_dir = tmp_path / "model"
    tokenizer.save_pretrained(model_dir)
    (model_dir / PREPROCESSING_FILE).write_text(json.dumps(
        {"max_length": 6, "truncation": truncation, "head_fraction": 0.25}))
    texts = [TEXTS[i % len(TEXTS)] * (1 + i % 3) for i in range(11)]
    pd.DataFrame({"text": texts, "label": [i % 3 for i in range(11)]}).to_parquet(tmp_path / "split.parquet")

    whole, whole_labels = encode_for_model(model_dir, tmp_path / "split.parquet", tokenizer)
    ids, labels = encode_split_to_file(model_dir, tmp_path / "split.parquet", tokenizer, rows=4)
    with ids:
        assert [ids[i].tolist() for i in range(len(ids))] == [x.tolist() for x in whole]
        assert max(ids.lengths) == 6 and min(ids.lengths) < 6  # truncated, and of different lengths
    assert labels.dtype == np.int64 and labels.tolist() == whole_labels.tolist()


def test_predict_proba_from_a_token_id_file_is_bitwise_the_same(capsys):
    """The stage's disk-backed ids give exactly the probabilities of in-memory arrays (the same sorted
    batches), and its progress bar counts examples."""
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    model = BertForSequenceClassification(_config(tokenizer))
    texts = [TEXTS[i % len(TEXTS)] * (1 + i % 4) for i in range(9)]
    encoded = tokenizer(texts, truncation=True, max_length=24)["input_ids"]
    arrays = [np.asarray(x, dtype=np.int64) for x in encoded]
    expected = predict_proba(model, arrays, tokenizer.pad_token_id, batch_size=4, precision="fp32",
                             device=torch.device("cpu"))
    with TokenIdFile() as ids:
        for start in range(0, len(encoded), 4):
            ids.append(pa.array(encoded[start:start + 4], type=pa.list_(pa.int32())))
        streamed = predict_proba(model, ids, tokenizer.pad_token_id, batch_size=4, precision="fp32",
                                 device=torch.device("cpu"), progress=True, desc="finetune", unit="example")
    assert np.array_equal(streamed, expected)
    err = capsys.readouterr().err
    assert "finetune" in err and "9/9" in err and "examples/s" in err


def test_chunked_baseline_probabilities_equal_one_call():
    """The stage scores the baseline chunk by chunk: each row's probabilities must not depend on the chunk."""
    rng = np.random.default_rng(0)
    words = ["superb", "dull", "great", "awful", "plot", "acting", "film", "not"]
    texts = [" ".join(rng.choice(words, 6)) for _ in range(60)]
    train = pd.DataFrame({"text": texts[:40], "label": [int("superb" in t or "great" in t) for t in texts[:40]]})
    model = tfidf_logistic_regression(train, seed=0)
    whole = baseline_proba(model, texts[40:], 2)
    chunked = np.concatenate([baseline_proba(model, texts[start:start + 7], 2) for start in range(40, 60, 7)])
    assert np.array_equal(chunked, whole)


def test_summary_answers_was_it_worth_it():
    labels, probs = _variants()
    results = evaluation.score(labels, probs, NAMES, ece_bins=10)
    metrics = evaluation.metrics_json(results, {"heldout_perplexity": 87.65, "heldout_loss": 4.47}, "accuracy")
    fractions = {"finetune": 1.0, "freeze-finetune": 0.0123, "finetune-scratch": 1.0, "pretrain-mlm": None}
    text = render_summary(results, metrics, "finetune", "accuracy", fractions, "test", NAMES)

    for variant in probs:
        assert f"| {variant} |" in text or f"| **{variant}** (best accuracy) |" in text
    gain = metrics["comparison"]["pretraining_gain"]["accuracy"]
    assert f"| pretraining gain: finetune − finetune-scratch | {gain:+.4f} |" in text
    assert "| 1.2% |" in text  # the frozen encoder's trainable fraction
    assert "perplexity **87.65**" in text
    assert "test** split (60 examples" in text


def test_missing_inputs_are_named_with_the_stage_that_writes_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("here.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"models/finetune/config.json \(written by finetune\)"):
        evaluation.require_files({"here.json": "x", "models/finetune/config.json": "finetune"})


# ------------------------------------------------------------------------------------------- MLflow model


@pytest.fixture()
def store(tmp_path, monkeypatch) -> tuple[str, str]:
    """A real sqlite MLflow store in tmp_path and an open run in it (as the Tracker makes)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("lmpipe", artifact_location=(tmp_path / "mlartifacts").as_uri())
    return uri, client.create_run(experiment, run_name="evaluate").info.run_id


def test_best_classifier_is_registered_with_an_alias(store, tmp_path):
    uri, run_id = store
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    model_dir = tmp_path / "models" / "finetune"
    BertForSequenceClassification(_config(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    assert log_classifier(model_dir, run_id, uri, "lmpipe-test", "champion", description="test run") == "1"
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version_by_alias("lmpipe-test", "champion")
    assert str(version.version) == "1" and version.run_id == run_id and version.description == "test run"

    local = Path(mlflow.artifacts.download_artifacts("models:/lmpipe-test@champion", tracking_uri=uri))
    requirements = (local / "requirements.txt").read_text()
    assert "torch==" in requirements and "transformers==" in requirements and "torchvision" not in requirements
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model("models:/lmpipe-test@champion")
    predictions = loaded.predict(["a superb film", "awful"])
    assert set(predictions["label"]) <= set(LABELS.values()) and len(predictions) == 2

    # a later evaluation registers a new version and moves the alias to it
    assert log_classifier(model_dir, run_id, uri, "lmpipe-test", "champion") == "2"
    assert str(client.get_model_version_by_alias("lmpipe-test", "champion").version) == "2"


def test_registry_failure_is_a_warning_not_a_crash(store, tmp_path):
    uri, run_id = store
    (tmp_path / "empty").mkdir()
    with pytest.warns(TrackingWarning, match="no config.json"):
        assert try_log_classifier(tmp_path / "empty", run_id, uri, "lmpipe-test", "champion") is None


def test_pip_requirements_are_pinned_without_local_build_tags():
    pins = pip_requirements()
    assert [p.split("==")[0] for p in pins] == ["torch", "transformers", "tokenizers", "safetensors"]
    assert all("==" in p and "+" not in p for p in pins)


@pytest.mark.parametrize("key, value, message", [
    ("evaluate.model_alias", "latest", "evaluate.model_alias: must be letters"),
    ("evaluate.model_alias", "v3", "evaluate.model_alias: must be letters"),
    ("evaluate.model_alias", "a b", "evaluate.model_alias: must be letters"),
    ("evaluate.registered_model_name", " ", "evaluate.registered_model_name: must not be empty"),
    ("evaluate.ece_bins", 0, "evaluate.ece_bins: must be > 0"),
])
def test_bad_evaluate_params_fail_before_any_work(key, value, message):
    from lmpipe.config.loader import ParamsError
    from lmpipe.config.schema import load_params

    root = Path(__file__).resolve().parents[1]
    assert load_params(root / "params.yaml", {"evaluate.model_alias": "champion-2"}).evaluate.model_alias == "champion-2"
    with pytest.raises(ParamsError, match=message):
        load_params(root / "params.yaml", {key: value})
