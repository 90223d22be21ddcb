"""The linear probe (strategy linear_probe): the saved classifier computes exactly the fitted probe, C comes from
cross-validation, the fit converges, and poolings a stock head cannot compute are refused."""

import numpy as np
import pytest
import torch
from repo_params import finetune_params, params_with
from sklearn.linear_model import LogisticRegression
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ModernBertConfig,
    ModernBertForMaskedLM,
    RobertaPreLayerNormConfig,
    RobertaPreLayerNormForMaskedLM,
)

from lmpipe.config.loader import ParamsError
from lmpipe.engine.objectives.base import pad_batch
from lmpipe.evaluation.inference import predict_proba
from lmpipe.finetune.probe import (
    HEAD_LAYOUTS,
    extract_features,
    fit_probe,
    prepare_probe_head,
    run_linear_probe,
)
from lmpipe.finetune.saving import save_finetuned
from lmpipe.finetune.strategies import apply_strategy, check_stage_setup
from lmpipe.models.load import load_classifier

VOCAB = 120
LABELS = ["negative", "positive"]


def _tiny(**extra):
    return dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                **extra)


def _save(model, path):
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """Masked-LM directories of the three architectures the pipeline builds."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("encoders")
    modernbert = ModernBertConfig(max_position_embeddings=32, pad_token_id=0, bos_token_id=2, cls_token_id=2,
                                  eos_token_id=3, sep_token_id=3, layer_types=["full_attention"] * 2,
                                  classifier_pooling="mean", **_tiny())
    prelayernorm = RobertaPreLayerNormConfig(max_position_embeddings=34, pad_token_id=0, type_vocab_size=1, **_tiny())
    return {"modernbert": _save(ModernBertForMaskedLM(modernbert), root / "modernbert"),
            "bert": _save(BertForMaskedLM(BertConfig(max_position_embeddings=32, **_tiny())), root / "bert"),
            "roberta-prelayernorm": _save(RobertaPreLayerNormForMaskedLM(prelayernorm), root / "prelayernorm")}


def _data(n: int, num_labels: int = 2, seed: int = 0):
    """Variable-length sequences whose label is written as one token among random ones (so padding matters and a
    probe on the features can read the label)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_labels
    ids = []
    for y in labels:
        x = np.concatenate([[2], rng.integers(10, VOCAB, int(rng.integers(6, 20))), [3]]).astype(np.int64)
        x[int(rng.integers(1, len(x) - 1))] = 5 + y
        ids.append(x)
    return ids, labels


def _probe_cfg(pooling: str, **probe):
    cfg = finetune_params("freeze_finetune")
    settings = {**vars(cfg.probe), "pooling": pooling, "cv_folds": 3, "batch_size": 7, **probe}
    return finetune_params("freeze_finetune", strategy="linear_probe", probe=type(cfg.probe)(**settings),
                           train=type(cfg.train)(**{**vars(cfg.train), "precision": "fp32"}))


def _by_hand(model, ids, pooling: str) -> torch.Tensor:
    """The features computed without the hook: the encoder's last states, pooled, then the head's fixed transform."""
    batch = pad_batch(ids, 0)
    model_type = model.config.model_type
    with torch.no_grad():
        if model_type == "modernbert":
            states = model.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (states * mask).sum(1) / mask.sum(1) if pooling == "mean" else states[:, 0]
            return torch.nn.functional.layer_norm(pooled, (pooled.shape[-1],), eps=model.config.norm_eps)
        encoder = model.bert if model_type == "bert" else model.roberta_prelayernorm
        return torch.tanh(encoder(**batch).last_hidden_state[:, 0])


@pytest.mark.parametrize("architecture, pooling", [("modernbert", "mean"), ("modernbert", "first"),
                                                   ("bert", "first"), ("roberta-prelayernorm", "first")])
def test_saved_classifier_computes_exactly_the_probe(encoders, architecture, pooling, tmp_path, one_thread):
    train_ids, train_labels = _data(60)
    val_ids, val_labels = _data(30, seed=1)
    model = load_classifier(encoders[architecture], LABELS)
    encoder_before = {n: p.clone() for n, p in model.named_parameters() if not n.startswith(("head.", "classifier"))
                      and ".pooler." not in n}
    cfg = _probe_cfg(pooling)
    run = run_linear_probe(model, train_ids, train_labels, val_ids, val_labels, num_labels=2, pad_token_id=0,
                           cfg=cfg, seed=0)
    save_finetuned(model, _tokenizer_stub(), tmp_path / "probe", {"max_length": 32}, LABELS)
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "probe").eval()
    for name, before in encoder_before.items():  # the encoder is frozen: only the head was set
        assert torch.equal(dict(saved.named_parameters())[name], before), name

    final = saved.get_submodule(HEAD_LAYOUTS[architecture].final)
    hooked = extract_features(saved, final, val_ids, 0, batch_size=7, precision="fp32")
    np.testing.assert_allclose(hooked, _by_hand(saved, val_ids, pooling).numpy(), rtol=1e-4, atol=1e-5)
    # In float64 the saved classifier's logits are the probe's decision function on the pooled features, to
    # rounding: its head adds nothing to features @ W.T + b.
    saved64 = AutoModelForSequenceClassification.from_pretrained(tmp_path / "probe").double().eval()
    features = _by_hand(saved64, val_ids, pooling).numpy()
    with torch.no_grad():
        logits = saved64(**pad_batch(val_ids, 0)).logits.numpy()
    decision = run.probe.decision_function(features)
    np.testing.assert_allclose(logits, decision, rtol=1e-9, atol=1e-9)
    assert np.all(logits[:, 0] == 0)  # binary: the first class's logit is 0, the second's the decision function

    # ... and that decision function is scikit-learn's logistic regression with the chosen C, fitted on the same
    # (float32) training features, up to the float32 rounding of the saved weights
    train_features = extract_features(saved, final, train_ids, 0, batch_size=7, precision="fp32").astype(np.float64)
    mean, scale = train_features.mean(0), train_features.std(0)
    reference = LogisticRegression(C=run.probe.c, max_iter=cfg.probe.max_iter, tol=1e-10).fit(
        (train_features - mean) / scale, train_labels)
    reference_probability = reference.predict_proba((features - mean) / scale)[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-decision[:, 1])), reference_probability, atol=2e-3)
    # what evaluate and lmpipe-predict read (float32): the probe's probabilities
    probabilities = predict_proba(saved, val_ids, pad_token_id=0, batch_size=8, precision="fp32")
    np.testing.assert_allclose(probabilities[:, 1], reference_probability, atol=2e-3)
    accuracy = float(np.mean(logits.argmax(1) == val_labels))
    assert run.validation["accuracy"] == pytest.approx(accuracy)


class _tokenizer_stub:
    """save_finetuned writes a tokenizer beside the model; these tests read only the model."""

    def save_pretrained(self, path):
        pass


def test_multiclass_probe_logits_are_the_multinomial_decision_function(encoders, tmp_path, one_thread):
    names = ["a", "b", "c"]
    train_ids, train_labels = _data(90, num_labels=3)
    val_ids, _ = _data(21, num_labels=3, seed=1)
    model = load_classifier(encoders["modernbert"], names)
    run = run_linear_probe(model, train_ids, train_labels, val_ids, np.arange(21) % 3, num_labels=3, pad_token_id=0,
                           cfg=_probe_cfg("mean"), seed=0)
    save_finetuned(model, _tokenizer_stub(), tmp_path / "probe", {"max_length": 32}, names)
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "probe").double().eval()
    with torch.no_grad():
        logits = saved(**pad_batch(val_ids, 0)).logits.numpy()
    np.testing.assert_allclose(logits, run.probe.decision_function(_by_hand(saved, val_ids, "mean").numpy()),
                               rtol=1e-9, atol=1e-9)
    assert run.probe.weight.shape == (3, 32) and not np.all(run.probe.weight[0] == 0)


def test_a_readable_label_is_learned_well_above_chance(encoders, one_thread):
    """A frozen random encoder still carries which token a sequence holds: the probe reads it."""
    train_ids, train_labels = _data(200)
    val_ids, val_labels = _data(100, seed=1)
    model = load_classifier(encoders["modernbert"], LABELS)
    run = run_linear_probe(model, train_ids, train_labels, val_ids, val_labels, num_labels=2, pad_token_id=0,
                           cfg=_probe_cfg("mean"), seed=0)
    assert run.validation["accuracy"] >= 0.85
    assert run.probe.converged and 0 < run.probe.iterations < 1000


def test_c_is_the_cross_validated_best_and_ties_go_to_the_stronger_penalty():
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 2
    features = rng.normal(size=(300, 8)) + 0.8 * labels[:, None] * np.eye(8)[0]
    cfg = _probe_cfg("mean", c_values=[100.0, 0.01, 1.0]).probe
    probe = fit_probe(features, labels, 2, cfg, metric="accuracy", class_weights=None, seed=0)
    assert [row["c"] for row in probe.cv] == [0.01, 1.0, 100.0]  # tried in increasing order
    scores = [row["cv_accuracy_mean"] for row in probe.cv]
    assert probe.c == probe.cv[scores.index(max(scores))]["c"]
    assert probe.converged
    # every C scores the same on pure noise with balanced folds at chance: the smallest C (first maximum) wins
    noise = fit_probe(np.zeros((30, 4)), np.arange(30) % 2, 2, cfg, metric="accuracy", class_weights=None, seed=0)
    assert noise.c == 0.01
    by_loss = fit_probe(features, labels, 2, cfg, metric="loss", class_weights=None, seed=0)
    losses = [row["cv_loss_mean"] for row in by_loss.cv]
    assert by_loss.c == by_loss.cv[losses.index(min(losses))]["c"] and min(losses) > 0


def test_too_few_examples_per_class_for_the_folds_is_a_params_error():
    cfg = _probe_cfg("mean", cv_folds=5).probe
    with pytest.raises(ParamsError, match=r"freeze_finetune.probe.cv_folds: 5 folds need at least 5 .* class 1 has 3"):
        fit_probe(np.ones((13, 2)), np.array([0] * 10 + [1] * 3), 2, cfg, metric="accuracy", class_weights=None,
                  seed=0)


def test_class_weights_shift_the_probe_towards_the_weighted_class():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 2
    features = rng.normal(size=(400, 4)) + 0.5 * labels[:, None]
    cfg = _probe_cfg("mean", c_values=[1.0]).probe
    plain = fit_probe(features, labels, 2, cfg, metric="accuracy", class_weights=None, seed=0)
    weighted = fit_probe(features, labels, 2, cfg, metric="accuracy", class_weights=[1.0, 5.0], seed=0)
    assert (weighted.decision_function(features)[:, 1] > 0).sum() > (plain.decision_function(features)[:, 1] > 0).sum()


def test_poolings_a_stock_head_cannot_compute_are_refused(encoders, tmp_path):
    with pytest.raises(ParamsError, match=r"freeze_finetune.probe.pooling: a bert classifier reads only the first"):
        prepare_probe_head(load_classifier(encoders["bert"], LABELS), "mean")
    config = DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    with pytest.raises(ParamsError, match=r"freeze_finetune.strategy: linear_probe knows .* not 'distilbert'"):
        prepare_probe_head(DistilBertForSequenceClassification(config), "first")
    with pytest.raises(ParamsError, match="freeze_finetune.probe.pooling: 'mean_max' is not one of"):
        params_with({"freeze_finetune": {"probe": {"pooling": "mean_max"}}})


def test_probe_params_are_checked_with_their_path():
    for override, key in [({"c_values": []}, "c_values"), ({"c_values": [1.0, -1.0]}, "c_values"),
                          ({"c_values": [1.0, 1.0]}, "c_values"), ({"cv_folds": 1}, "cv_folds"),
                          ({"max_iter": 0}, "max_iter"), ({"tol": 0}, "tol"), ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ParamsError, match=f"^freeze_finetune.probe.{key}:"):
            params_with({"freeze_finetune": {"probe": override}})
    assert params_with({"finetune": {"strategy": "linear_probe"}}).finetune.probe.pooling == "mean"


def test_linear_probe_is_not_a_gradient_strategy_and_runs_in_one_process(encoders):
    cfg = _probe_cfg("mean")
    with pytest.raises(ValueError, match="linear_probe trains nothing by gradient"):
        apply_strategy(load_classifier(encoders["bert"], LABELS), cfg)
    with pytest.raises(ParamsError, match="freeze_finetune.strategy: linear_probe runs in one process"):
        check_stage_setup(cfg, "freeze_finetune", world=2)


def test_the_pooling_bench_reproduces_the_stage_features(encoders, one_thread):
    """bench/probe_pooling.py measures poolings the stage cannot save (max, mean_max, earlier layers); its `mean` and
    `first` rows must be the very features the stage's probe fits, or its comparison says nothing."""
    from bench.probe_pooling import pooled_features

    ids, _ = _data(30)
    for pooling in ("mean", "first"):
        model = load_classifier(encoders["modernbert"], LABELS)
        stage = extract_features(model, prepare_probe_head(model, pooling), ids, 0, batch_size=7, precision="fp32")
        bench = pooled_features(model.model, ids, 0, batch_size=7)
        np.testing.assert_allclose(bench[pooling], stage, rtol=1e-4, atol=1e-5)
    assert set(bench) == {"first", "mean", "max", "mean_max", "mean of layer 1"}  # 2 layers: the last is `mean`
    np.testing.assert_array_equal(bench["mean_max"], np.hstack([bench["mean"], bench["max"]]))
    short, long = min(ids, key=len), max(ids, key=len)
    padded = pooled_features(model.model, [short, long], 0, batch_size=2)  # `short` padded to `long`'s length
    alone = pooled_features(model.model, [short], 0, batch_size=2)
    for name in bench:  # every pooling reads the real tokens only
        np.testing.assert_allclose(padded[name][0], alone[name][0], rtol=1e-4, atol=1e-5, err_msg=name)
