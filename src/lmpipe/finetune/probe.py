"""The linear probe (strategy `linear_probe`): features from the frozen encoder, extracted once, then a logistic
regression fitted to convergence with L-BFGS, its inverse L2 strength C chosen by k-fold cross-validation on the
training features. The fitted weights become the classifier's final linear layer, so the saved model is a stock
Hugging Face classifier whose logits are the probe's decision function: `lmpipe-predict` and the evaluate stage
read it like any other variant.

The probe's features are the input of the architecture's final linear layer, with the rest of the head fixed:

- ModernBERT: pooling (`mean` over the real tokens, or the `first` token) -> head.dense set to the identity, its
  activation to `linear` -> head.norm, a LayerNorm with unit scale and zero shift. The LayerNorm cannot be
  switched off in the stock class, so the features are each pooled vector centred and scaled to unit variance
  (the saved model computes the same, exactly).
- BERT, RoBERTa, RoBERTa-PreLayerNorm: the first token -> the pooler's (or classification head's) dense layer set
  to the identity -> its tanh. These heads read only the first token, so `mean` is refused.

`mean_max` (the mean and the maximum over tokens, concatenated) is not offered: no stock classification head
computes a maximum over tokens, so a saved model could not reproduce such a probe (see docs/finetuning.md).

The features are standardised per dimension for the fit (L-BFGS converges in few iterations, and one C grid suits
every encoder width); the standardisation is folded into the saved weights.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN

from lmpipe.config.loader import ParamsError
from lmpipe.config.schema import FinetuneParams, ProbeParams
from lmpipe.engine.objectives.base import pad_batch
from lmpipe.engine.precision import resolve_precision
from lmpipe.engine.reports import TRAIN_CURVE_COLUMNS
from lmpipe.evaluation.metrics import classification_from_confusion
from lmpipe.io import write_json, write_rows_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadLayout:
    """Where a stock classification head keeps its layers, and what it can pool."""

    final: str  # the final nn.Linear: its input is the probe's features
    identity: tuple[str, ...]  # square dense layers between pooling and `final`, set to the identity
    poolings: tuple[str, ...]  # the poolings the stock forward computes
    after_pooling: str  # what stands between the pooled vector and `final`, in words


_FIRST_TOKEN_TANH = HeadLayout("classifier.out_proj", ("classifier.dense",), ("first",), "tanh")
HEAD_LAYOUTS = {
    "modernbert": HeadLayout("classifier", ("head.dense",), ("mean", "first"), "LayerNorm"),
    "bert": HeadLayout("classifier", ("bert.pooler.dense",), ("first",), "tanh"),
    "roberta": _FIRST_TOKEN_TANH,
    "roberta-prelayernorm": _FIRST_TOKEN_TANH,
    "xlm-roberta": _FIRST_TOKEN_TANH,
}
MODERNBERT_POOLING = {"mean": "mean", "first": "cls"}  # our names -> ModernBertConfig.classifier_pooling


def prepare_probe_head(model: PreTrainedModel, pooling: str, section: str = "freeze_finetune") -> nn.Linear:
    """Fix every weight of `model` except the final linear layer's, with the head reduced to `pooling` and the
    fixed transform its class cannot drop; returns that final layer. Nothing trains by gradient afterwards."""
    model_type = model.config.model_type
    layout = HEAD_LAYOUTS.get(model_type)
    if layout is None:
        raise ParamsError(f"{section}.strategy: linear_probe knows the classification heads of "
                          f"{', '.join(sorted(HEAD_LAYOUTS))}, not {model_type!r}; use strategy frozen_encoder")
    if pooling not in layout.poolings:
        raise ParamsError(f"{section}.probe.pooling: a {model_type} classifier reads only the "
                          f"{' or '.join(layout.poolings)} pooling, not {pooling!r}")
    with torch.no_grad():
        for name in layout.identity:
            dense = model.get_submodule(name)
            dense.weight.copy_(torch.eye(dense.out_features, dense.in_features))
            if dense.bias is not None:
                dense.bias.zero_()
        if model_type == "modernbert":
            model.config.classifier_pooling = MODERNBERT_POOLING[pooling]  # read at every forward pass
            model.config.classifier_activation = "linear"  # saved, so a reload builds the same head
            model.head.act = ACT2FN["linear"]
            model.head.norm.weight.fill_(1.0)
            if model.head.norm.bias is not None:
                model.head.norm.bias.zero_()
    for param in model.parameters():
        param.requires_grad = False
    return model.get_submodule(layout.final)


@torch.no_grad()
def extract_features(model: nn.Module, final: nn.Linear, ids: Sequence[np.ndarray], pad_token_id: int,
                     batch_size: int, precision: str, device: torch.device | None = None) -> np.ndarray:
    """The input of `final` for every sequence (N x features, float32, in the order of `ids`): the model's own
    forward pass in eval mode, batched by length, under the engine's autocast for `precision`."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    dtype = resolve_precision(precision, device)
    captured: list[torch.Tensor] = []
    handle = final.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    features = np.zeros((len(ids), final.in_features), dtype=np.float32)
    order = np.argsort([len(x) for x in ids], kind="stable")
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in pad_batch([ids[i] for i in chunk], pad_token_id).items()}
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                model(**batch)
            features[chunk] = captured.pop().float().cpu().numpy()
    finally:
        handle.remove()
    return features


@dataclass
class FittedProbe:
    """A multinomial (binary: logistic) regression on raw features: logits = features @ weight.T + bias."""

    weight: np.ndarray  # num_labels x features, the standardisation folded in (float32 values, as saved)
    bias: np.ndarray  # num_labels (float32 values)
    c: float  # the chosen inverse L2 strength
    cv: list[dict[str, float]]  # one row per C tried: its mean and spread over the folds
    iterations: int  # L-BFGS iterations of the final fit
    converged: bool
    train_loss: float  # mean cross-entropy of the final fit on the training features
    timings: dict[str, float]  # seconds: the cross-validation and the final fit

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight.T + self.bias


def _class_weight(spec: str | list[float] | None) -> Any:
    if spec is None or spec == "balanced":
        return spec
    return dict(enumerate(spec))


def _score(model: Any, features: np.ndarray, labels: np.ndarray, metric: str, num_labels: int) -> float:
    """The fold's score, larger is better (the negated loss for `loss`)."""
    from sklearn.metrics import f1_score, log_loss

    if metric == "loss":
        return -float(log_loss(labels, model.predict_proba(features), labels=list(range(num_labels))))
    predictions = model.predict(features)
    if metric == "f1_macro":
        return float(f1_score(labels, predictions, labels=list(range(num_labels)), average="macro", zero_division=0))
    return float(np.mean(predictions == labels))


def _logistic(c: float, cfg: ProbeParams, class_weight: Any, warm_start: bool = False) -> Any:
    from sklearn.linear_model import LogisticRegression

    # lbfgs minimises the full multinomial loss for more than two classes; the default penalty is L2
    return LogisticRegression(C=c, solver="lbfgs", max_iter=cfg.max_iter, tol=cfg.tol, class_weight=class_weight,
                              warm_start=warm_start)


def fit_probe(features: np.ndarray, labels: np.ndarray, num_labels: int, cfg: ProbeParams, *, metric: str,
              class_weights: str | list[float] | None, seed: int, section: str = "freeze_finetune") -> FittedProbe:
    """C by stratified k-fold cross-validation on `features` (the validation metric `metric` of the section, on
    the held-out fold; ties go to the smaller C), then the final fit on all of them."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_labels)
    if counts.min() < cfg.cv_folds:
        raise ParamsError(f"{section}.probe.cv_folds: {cfg.cv_folds} folds need at least {cfg.cv_folds} train "
                          f"examples of every class; class {int(counts.argmin())} has {int(counts.min())}")
    x = np.asarray(features, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature carries nothing; leave it unscaled
    z = (x - mean) / scale
    class_weight = _class_weight(class_weights)
    cs = sorted(cfg.c_values)
    folds = StratifiedKFold(n_splits=cfg.cv_folds, shuffle=True, random_state=seed)
    scores = np.zeros((len(cs), cfg.cv_folds))
    started = time.perf_counter()
    unconverged = 0
    for k, (train_rows, held_rows) in enumerate(folds.split(z, labels)):
        model = _logistic(cs[0], cfg, class_weight, warm_start=True)  # each C starts from the previous solution
        for i, c in enumerate(cs):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.set_params(C=c).fit(z[train_rows], labels[train_rows])
            unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            scores[i, k] = _score(model, z[held_rows], labels[held_rows], metric, num_labels)
    if unconverged:
        log.warning("%s.probe: %d of %d cross-validation fits stopped at max_iter=%d before converging",
                    section, unconverged, len(cs) * cfg.cv_folds, cfg.max_iter)
    cv_seconds = time.perf_counter() - started
    best = int(np.argmax(scores.mean(axis=1)))  # the first maximum: the strongest regularisation among ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported through `converged`
        final = _logistic(cs[best], cfg, class_weight).fit(z, labels)
    iterations = int(np.max(final.n_iter_))
    if iterations >= cfg.max_iter:
        log.warning("%s.probe: the final fit stopped at max_iter=%d before converging; raise it", section,
                    cfg.max_iter)
    coef, intercept = final.coef_, final.intercept_
    if num_labels == 2:  # one logit for the second class; the first class's logit is 0, so softmax = sigmoid
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    # float32, the precision of the saved layer: the probe and the saved classifier are the same numbers
    weight = (coef / scale).astype(np.float32).astype(np.float64)
    bias = (intercept - weight @ mean).astype(np.float32).astype(np.float64)
    natural = -scores if metric == "loss" else scores  # the rows report the metric itself
    return FittedProbe(weight=weight, bias=bias, c=cs[best],
                       cv=[{"c": c, f"cv_{metric}_mean": float(s.mean()), f"cv_{metric}_std": float(s.std())}
                           for c, s in zip(cs, natural)],
                       iterations=iterations, converged=iterations < cfg.max_iter,
                       train_loss=cross_entropy(x @ weight.T + bias, labels),
                       timings={"cv_seconds": cv_seconds, "fit_seconds": time.perf_counter() - started - cv_seconds})


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def evaluate_probe(probe: FittedProbe, features: np.ndarray, labels: np.ndarray, num_labels: int) -> dict[str, float]:
    """The metrics the gradient-trained variants report for their validation split (loss: mean cross-entropy)."""
    logits = probe.decision_function(features)
    labels = np.asarray(labels, dtype=np.int64)
    confusion = np.bincount(labels * num_labels + logits.argmax(axis=1), minlength=num_labels ** 2)
    return {"loss": cross_entropy(logits, labels),
            **classification_from_confusion(confusion.reshape(num_labels, num_labels))}


def set_final_layer(final: nn.Linear, probe: FittedProbe) -> None:
    with torch.no_grad():
        final.weight.copy_(torch.as_tensor(probe.weight, dtype=final.weight.dtype))
        final.bias.copy_(torch.as_tensor(probe.bias, dtype=final.bias.dtype))


@dataclass
class ProbeRun:
    probe: FittedProbe
    validation: dict[str, float]
    features: int
    train_tokens: int
    telemetry: dict[str, float]


def run_linear_probe(model: PreTrainedModel, train_ids: list[np.ndarray], train_labels: np.ndarray,
                     val_ids: list[np.ndarray], val_labels: np.ndarray, *, num_labels: int, pad_token_id: int,
                     cfg: FinetuneParams, seed: int, section: str = "freeze_finetune") -> ProbeRun:
    """The whole strategy: fix the head, extract both splits' features, fit, write the probe into `model`."""
    final = prepare_probe_head(model, cfg.probe.pooling, section)
    started = time.perf_counter()
    train_x = extract_features(model, final, train_ids, pad_token_id, cfg.probe.batch_size, cfg.train.precision)
    val_x = extract_features(model, final, val_ids, pad_token_id, cfg.probe.batch_size, cfg.train.precision)
    extract_seconds = time.perf_counter() - started
    probe = fit_probe(train_x, train_labels, num_labels, cfg.probe, metric=cfg.metric,
                      class_weights=cfg.class_weights, seed=seed, section=section)
    set_final_layer(final, probe)
    telemetry = {"train_seconds": time.perf_counter() - started, "extract_seconds": extract_seconds,
                 **probe.timings}
    return ProbeRun(probe, evaluate_probe(probe, val_x, val_labels, num_labels), train_x.shape[1],
                    int(sum(len(x) for x in train_ids)), telemetry)


def probe_metrics(run: ProbeRun, cfg: FinetuneParams, *, trainable: int, total: int, max_length: int,
                  precision: str) -> dict[str, Any]:
    """reports/<stage>/metrics.json: the validation scores under the same keys as the gradient-trained variants,
    then what the probe is (deterministic values only; times go to telemetry)."""
    best = next(row for row in run.probe.cv if row["c"] == run.probe.c)
    return {**{f"validation_{k}": v for k, v in run.validation.items()},
            "trainable_parameters": trainable, "trainable_fraction": trainable / total, "total_parameters": total,
            "max_length": max_length, "probe_pooling": cfg.probe.pooling, "probe_features": run.features,
            "probe_c": run.probe.c, f"probe_cv_{cfg.metric}": best[f"cv_{cfg.metric}_mean"],
            "probe_iterations": run.probe.iterations, "probe_converged": run.probe.converged,
            "train_loss": run.probe.train_loss, "train_tokens": run.train_tokens, "precision": precision}


def write_probe_reports(directory: str | Path, metrics: dict[str, Any], run: ProbeRun, tracker: Any) -> None:
    """The files a gradient-trained variant writes, so the pipeline's plots and comparisons read the probe alike:
    the "curves" hold one point, the final fit (step: its L-BFGS iterations; no learning rate). The cross-validation
    score of every C tried is saved with the classifier (stages/finetune.py), so every strategy's report files are
    the same."""
    write_json(f"{directory}/metrics.json", metrics)
    write_json(f"{directory}/telemetry.json", run.telemetry)
    write_rows_csv(f"{directory}/train_curve.csv", [{"step": run.probe.iterations, "loss": run.probe.train_loss,
                                                     "lr": None, "tokens": run.train_tokens}],
                   columns=TRAIN_CURVE_COLUMNS)
    write_rows_csv(f"{directory}/eval_curve.csv", [{"step": run.probe.iterations, **run.validation}])
    numbers = {k: v for k, v in {**metrics, **run.telemetry}.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    tracker.log_metrics(numbers)
    log.info("%s: %s", directory, " ".join(f"{k}={v:.4g}" for k, v in numbers.items()))
