"""Strategies: which parameters receive gradients on a real backward pass, what training through the real engine
leaves untouched, LoRA save/load and merged export, other starting points, multi-class and class weights."""

import numpy as np
import pandas as pd
import pytest
import torch
from repo_params import finetune_params, lora_params, model_params, params_with, tokenizer_params, train_params
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaPreLayerNormConfig,
    RobertaPreLayerNormForMaskedLM,
)

from lmpipe.config.loader import ParamsError
from lmpipe.config.schema import FinetuneParams
from lmpipe.engine.distributed import Dist
from lmpipe.engine.loop import train
from lmpipe.engine.optim import build_optimizer, param_groups
from lmpipe.finetune.lora import load_lora_classifier
from lmpipe.finetune.saving import ADAPTER_DIR, encode_for_model, save_finetuned
from lmpipe.finetune.strategies import (
    GradualUnfreezing,
    apply_strategy,
    check_stage_setup,
    class_weights,
    is_head,
    layer_index,
    layer_lr_scale,
    make_objective,
    unfreeze_period_steps,
)
from lmpipe.models.build import build_masked_lm, count_parameters
from lmpipe.models.load import effective_max_length, load_classifier, position_limit
from lmpipe.models.save import save_model
from lmpipe.text.encoding import encode_labelled, encode_split
from lmpipe.text.tokenizers import train_tokenizer

LABELS = ["negative", "positive"]
VOCAB = 120


def _tiny(**extra):
    return dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                **extra)


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("mlm")
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(max_position_embeddings=32, **_tiny())).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def prelayernorm_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("roberta-prelayernorm")
    torch.manual_seed(0)
    config = RobertaPreLayerNormConfig(max_position_embeddings=34, pad_token_id=0, type_vocab_size=1, **_tiny())
    RobertaPreLayerNormForMaskedLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def modernbert_dir(tmp_path_factory):
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    path = tmp_path_factory.mktemp("modernbert")
    torch.manual_seed(0)
    config = ModernBertConfig(max_position_embeddings=32, pad_token_id=0, bos_token_id=2, cls_token_id=2,
                              eos_token_id=3, sep_token_id=3, layer_types=["full_attention"] * 3,
                              classifier_pooling="mean", **_tiny())
    ModernBertForMaskedLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["bert", "roberta-prelayernorm", "modernbert"])
def encoder_dir(request, mlm_dir, prelayernorm_dir, modernbert_dir):
    return {"bert": mlm_dir, "roberta-prelayernorm": prelayernorm_dir, "modernbert": modernbert_dir}[request.param]


def _grads(model, num_labels: int = 2) -> dict[str, bool]:
    torch.manual_seed(1)
    ids = torch.randint(5, VOCAB, (4, 16))
    labels = torch.arange(4) % num_labels
    loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, labels)
    loss.backward()
    received = {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return received


def _data(n: int, num_labels: int = 2, seed: int = 0, length: int = 12):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_labels
    # The label is readable from the tokens, so a few steps move the weights in a consistent direction.
    ids = [np.concatenate([[2], rng.integers(10, VOCAB, length - 2), [3]]).astype(np.int64) for _ in range(n)]
    for x, y in zip(ids, labels):
        x[1] = 10 + y
    return ids, labels


def _objective(model, num_labels: int = 2, cfg: FinetuneParams | None = None):
    train_ids, train_labels = _data(16, num_labels)
    val_ids, val_labels = _data(8, num_labels, seed=1)
    return make_objective(model, train_ids, train_labels, val_ids, val_labels, num_labels=num_labels,
                          pad_token_id=0, cfg=cfg or finetune_params())


def _train(objective, steps: int = 3, lr: float = 1e-2, **kwargs):
    cfg = train_params(batch_size=4, steps=steps, precision="fp32", warmup=0.0, schedule="constant",
                      checkpoint_every=0, eval_every=1000, log_every=1, weight_decay=0.01)
    return train(objective, cfg, lr=lr, seed=0, dist_info=Dist(), **kwargs)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


LAYER = {"bert": "bert.encoder.layer.", "roberta-prelayernorm": "roberta_prelayernorm.encoder.layer.",
         "modernbert": "model.layers."}
CLASSIFIER = {"bert": "classifier.weight", "roberta-prelayernorm": "classifier.out_proj.weight",
              "modernbert": "classifier.weight"}


def _arch(path) -> str:
    return next(a for a in ("modernbert", "roberta-prelayernorm") if path.name.startswith(a)) \
        if not path.name.startswith("mlm") else "bert"


@pytest.mark.parametrize("strategy, frozen", [
    ("full", lambda n: False),
    ("frozen_encoder", lambda n: not is_head(n)),
    ("freeze_embeddings", lambda n: ".embeddings." in n),
    ("freeze_bottom", lambda n: ".embeddings." in n or any(f".{x}.{i}." in n for x in ("layer", "layers")
                                                           for i in (0, 1))),
])
def test_strategy_trains_exactly_what_it_claims(encoder_dir, strategy, frozen):
    model = apply_strategy(load_classifier(encoder_dir, LABELS), finetune_params(strategy=strategy, freeze_layers=2))
    before = _snapshot(model)
    received = _grads(model)
    for name, got in received.items():
        assert got == (not frozen(name)), f"{strategy}: {name} {'got' if got else 'missed'} a gradient"
    trainable, total = count_parameters(model)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if not frozen(n))
    assert received[CLASSIFIER[_arch(encoder_dir)]]
    # Through the real engine (AdamW with weight decay): frozen weights are bit-identical, the rest moved.
    _train(_objective(model))
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == frozen(name), f"{strategy}: {name}"


def test_pooler_of_a_masked_lm_checkpoint_always_trains(mlm_dir):
    model = apply_strategy(load_classifier(mlm_dir, LABELS), finetune_params(strategy="frozen_encoder"))
    received = _grads(model)
    assert received["bert.pooler.dense.weight"] and received["classifier.weight"]


def test_freeze_bottom_beyond_the_model_is_a_params_error(mlm_dir):
    with pytest.raises(ParamsError, match=r"freeze_finetune.freeze_layers: 5 exceeds the model's 3 layers"):
        apply_strategy(load_classifier(mlm_dir, LABELS), finetune_params(strategy="freeze_bottom", freeze_layers=5),
                       "freeze_finetune")


# --------------------------------------------------------------------------------------------- gradual unfreezing


def test_gradual_unfreezing_releases_one_group_from_the_top_per_period(encoder_dir):
    model = apply_strategy(load_classifier(encoder_dir, LABELS), finetune_params(strategy="gradual_unfreezing"))
    hook = GradualUnfreezing(model, period_steps=2)
    assert len(hook.groups) == 4  # 3 layers + embeddings
    prefix = LAYER[_arch(encoder_dir)]

    def trained_at(step):
        hook(step)
        return {n for n, got in _grads(model).items() if got}

    head_only = trained_at(0)
    assert head_only and all(is_head(n) for n in head_only)
    assert trained_at(1) == head_only
    top = trained_at(2) - head_only
    assert top and all(n.startswith(prefix + "2.") or layer_index(n) is None and ".embeddings." not in n for n in top)
    assert {layer_index(n) for n in trained_at(4)} - {None} == {1, 2}
    everything = trained_at(8)
    assert everything == set(_grads(model)) == {n for n, _ in model.named_parameters()}
    assert trained_at(100) == everything
    assert trained_at(0) == head_only  # a pure function of the step: a resumed run freezes the same


def test_gradual_unfreezing_through_the_engine_leaves_unreleased_layers_bit_identical(mlm_dir):
    model = apply_strategy(load_classifier(mlm_dir, LABELS), finetune_params(strategy="gradual_unfreezing"))
    before = _snapshot(model)
    hook = GradualUnfreezing(model, period_steps=2)
    steps = []
    _train(_objective(model), steps=5, on_step=lambda step, obj: (steps.append(step), hook(step, obj)))
    assert steps == [0, 1, 2, 3, 4] and hook.unfrozen == 2  # head, then layer 2, then layer 1
    for name, param in model.named_parameters():
        released = is_head(name) or ".layer.2." in name or ".layer.1." in name
        assert torch.equal(param, before[name]) != released, name
    assert hook.released_parameters() == sum(p.numel() for n, p in model.named_parameters()
                                             if is_head(n) or ".layer.2." in n or ".layer.1." in n)


def test_unfreeze_period_in_epochs_follows_the_engine_epoch():
    cfg = finetune_params(strategy="gradual_unfreezing", unfreeze_every=0.5, unfreeze_unit="epochs")
    assert unfreeze_period_steps(cfg, train_size=4000) == 62  # 125 steps of 32 per epoch
    assert unfreeze_period_steps(finetune_params(unfreeze_every=7, unfreeze_unit="steps"), 4000) == 7


def test_gradual_unfreezing_under_torchrun_is_a_params_error():
    with pytest.raises(ParamsError, match="finetune.strategy: gradual_unfreezing runs in one process only"):
        check_stage_setup(finetune_params(strategy="gradual_unfreezing"), "finetune", world=2)
    check_stage_setup(finetune_params(strategy="full"), "finetune", world=2)


# --------------------------------------------------------------------------------------------- layer-wise lr


@pytest.mark.parametrize("strategy", ["full", "freeze_embeddings"])
def test_layer_wise_lr_decay_scales_each_update(mlm_dir, strategy):
    model = apply_strategy(load_classifier(mlm_dir, LABELS), finetune_params(strategy=strategy))
    lr, decay = 0.1, 0.5
    groups = param_groups(model, lr, 0.0, layer_lr_scale(model, decay))
    by_name = {n: g["lr"] for g in groups for n in g["names"]}
    assert by_name["classifier.weight"] == by_name["bert.pooler.dense.weight"] == lr
    assert by_name["bert.encoder.layer.2.output.dense.weight"] == pytest.approx(lr * decay)
    assert by_name["bert.encoder.layer.0.output.dense.weight"] == pytest.approx(lr * decay ** 3)
    if strategy == "full":
        assert by_name["bert.embeddings.word_embeddings.weight"] == pytest.approx(lr * decay ** 4)
        assert min(by_name.values()) == by_name["bert.embeddings.word_embeddings.weight"]
    else:
        assert not any(".embeddings." in n for n in by_name)
    # A real step of plain SGD moves each parameter by exactly its group's lr times its gradient.
    optimizer = build_optimizer(groups, train_params(steps=1, optimizer="sgd", momentum=0.0), torch.device("cpu"))
    before = _snapshot(model)
    _grads_kept = _backward(model)
    optimizer.step()
    for name, param in model.named_parameters():
        if name in by_name:
            torch.testing.assert_close(before[name] - param.detach(), by_name[name] * _grads_kept[name],
                                       rtol=1e-4, atol=1e-7)
    assert layer_lr_scale(model, 1.0) is None


def _backward(model) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(5, VOCAB, (4, 16))
    torch.nn.functional.cross_entropy(model(input_ids=ids).logits, torch.tensor([0, 1, 0, 1])).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# --------------------------------------------------------------------------------------------- LoRA


def test_lora_trains_adapters_and_head_only_and_round_trips(encoder_dir, tmp_path):
    cfg = finetune_params(strategy="lora", lora=lora_params(rank=4, alpha=8, dropout=0.0))
    model = apply_strategy(load_classifier(encoder_dir, LABELS), cfg)
    received = _grads(model)
    for name, got in received.items():
        adapter = ".lora_A." in name or ".lora_B." in name
        head_copy = ".modules_to_save." in name
        # lora_A gets no gradient on the first step (lora_B starts at zero), so check requires_grad for it
        if ".lora_A." in name:
            assert dict(model.named_parameters())[name].requires_grad
        else:
            assert got == (adapter or head_copy), name
    trainable, total = count_parameters(model)
    expected = sum(p.numel() for n, p in model.named_parameters()
                   if ".lora_" in n or ".modules_to_save." in n)
    assert trainable == expected and 0 < trainable / total < 0.5
    assert total == sum(p.numel() for p in load_classifier(encoder_dir, LABELS).parameters()) + sum(
        p.numel() for n, p in model.named_parameters() if ".lora_" in n)

    before = _snapshot(model)
    _train(_objective(model), steps=3)
    for name, param in model.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed == (".lora_" in name or ".modules_to_save." in name), name

    model.eval()
    ids, _ = _data(6, seed=3)
    batch = torch.tensor(np.stack(ids))
    with torch.no_grad():
        expected_logits = model(input_ids=batch).logits
    out = tmp_path / "lora-stage"
    tokenizer = _tokenizer()
    save_finetuned(model, tokenizer, out, {"max_length": 16}, LABELS)
    # models/<stage> is a plain Hugging Face directory: merged weights, loadable without peft.
    merged = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert merged.config.id2label == {0: "negative", 1: "positive"}
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=batch).logits, expected_logits, rtol=1e-4, atol=1e-5)
    # The adapter (with its head) on a freshly loaded base gives identical predictions.
    torch.manual_seed(123)  # a different random head before the adapter's is loaded
    reloaded = load_lora_classifier(encoder_dir, out / ADAPTER_DIR, LABELS).eval()
    trained = dict(model.named_parameters())
    for name, param in reloaded.named_parameters():
        if ".original_module." not in name:  # peft's frozen, unused copy of the base's (random) head
            assert torch.equal(param, trained[name]), name  # every weight, adapters and head, bit for bit
    with torch.no_grad():
        logits = reloaded(input_ids=batch).logits
    # (training swapped in the engine's CPU attention kernel; the reloaded model uses SDPA: rounding only)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-6)
    assert torch.equal(logits.argmax(-1), expected_logits.argmax(-1))
    with pytest.raises(ValueError, match=r"adapter's labels \['negative', 'positive'\] do not match"):
        load_lora_classifier(encoder_dir, out / ADAPTER_DIR, ["a", "b", "c", "d"])


def test_lora_target_modules_must_exist(mlm_dir):
    cfg = finetune_params(strategy="lora", lora=lora_params(target_modules=["q_proj"]))
    with pytest.raises(ParamsError, match=r"finetune.lora.target_modules: \['q_proj'\] name no module"):
        apply_strategy(load_classifier(mlm_dir, LABELS), cfg)


# --------------------------------------------------------------------------------------------- starting points


def _tokenizer():
    texts = ["the plot was dull but the acting was superb", "not great never boring", "a film"] * 20
    return train_tokenizer(texts, tokenizer_params(vocab_size=100, min_frequency=1, max_length=16))


@pytest.fixture(scope="module")
def own_tokenizer_dir(tmp_path_factory):
    """A generic HF encoder (DistilBERT, another layout) with its own tokenizer, as from the hub."""
    path = tmp_path_factory.mktemp("external") / "data" / "external" / "tiny-distilbert"
    tokenizer = _tokenizer()
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    DistilBertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_start_from_a_local_model_directory_with_its_own_tokenizer(own_tokenizer_dir, tmp_path):
    labels4 = ["a", "b", "c", "d"]
    frame = pd.DataFrame({"text": ["the plot was dull", "not great", "never boring", "the acting was superb"] * 4,
                          "label": [0, 1, 2, 3] * 4})
    frame.to_parquet(tmp_path / "train.parquet")
    tokenizer = AutoTokenizer.from_pretrained(own_tokenizer_dir)
    cfg = finetune_params(strategy="freeze_embeddings", class_weights="balanced", layer_lr_decay=0.8)
    ids, labels = encode_split(tokenizer, tmp_path / "train.parquet", 16, cfg.truncation, cfg.head_fraction)
    assert ids[0].tolist() == tokenizer("the plot was dull")["input_ids"]  # its own vocabulary
    # The directory's head has 2 unnamed labels (LABEL_0, LABEL_1): it is re-made for the data's 4 named ones;
    # the encoder keeps the directory's weights.
    model = apply_strategy(load_classifier(own_tokenizer_dir, labels4), cfg)
    assert model.config.num_labels == 4 and model.config.id2label[3] == "d"
    original = DistilBertForSequenceClassification.from_pretrained(own_tokenizer_dir)
    assert torch.equal(model.distilbert.transformer.layer[1].attention.q_lin.weight,
                       original.distilbert.transformer.layer[1].attention.q_lin.weight)
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".embeddings." in n)
    before = _snapshot(model)
    objective = make_objective(model, ids, labels, ids, labels, num_labels=4, pad_token_id=tokenizer.pad_token_id,
                               cfg=cfg)
    _train(objective, steps=2, lr_scale=layer_lr_scale(model, cfg.layer_lr_decay))
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == (".embeddings." in name), name
    preprocessing = {"max_length": 16, "truncation": "head_tail", "head_fraction": 0.5}
    save_finetuned(model, tokenizer, tmp_path / "out", preprocessing, labels4)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    # Evaluation re-encodes a split as the model saw it: its tokenizer, its truncation.
    again, _ = encode_for_model(tmp_path / "out", tmp_path / "train.parquet")
    expected = encode_split(tokenizer, tmp_path / "train.parquet", 16, "head_tail", 0.5)[0]
    assert [x.tolist() for x in again] == [x.tolist() for x in expected]
    assert type(loaded).__name__ == "DistilBertForSequenceClassification" and loaded.config.num_labels == 4
    assert AutoTokenizer.from_pretrained(tmp_path / "out").get_vocab() == tokenizer.get_vocab()


def test_a_local_base_model_outside_data_external_is_refused(own_tokenizer_dir, tmp_path):
    repo = own_tokenizer_dir.parents[2]
    check_stage_setup(finetune_params(base_model=str(own_tokenizer_dir)), "finetune", world=1, repo=repo)
    with pytest.raises(ParamsError, match="finetune.base_model: .* is outside data/external/"):
        check_stage_setup(finetune_params(base_model=str(own_tokenizer_dir)), "finetune", world=1, repo=tmp_path)


def test_base_model_values_are_checked_with_their_path(own_tokenizer_dir, tmp_path):
    assert params_with({"finetune": {"base_model": str(own_tokenizer_dir)}}).finetune.base_model
    assert params_with({"finetune": {"base_model": "bert-base-uncased", "base_revision": "main"}})
    with pytest.raises(ParamsError, match="finetune.base_model: './missing' is not"):
        params_with({"finetune": {"base_model": "./missing"}})
    with pytest.raises(ParamsError, match="finetune.base_model: .* has no config.json"):
        params_with({"finetune": {"base_model": str(tmp_path)}})
    with pytest.raises(ParamsError, match="finetune_scratch.class_weights: expected 'balanced' or list or null"):
        params_with({"finetune_scratch": {"class_weights": "equal"}})
    assert params_with({"finetune": {"class_weights": [1, 2]}}).finetune.class_weights == [1.0, 2.0]


# --------------------------------------------------------------------------------------------- classification


def test_label_map_mismatch_is_a_clear_error(mlm_dir, tmp_path):
    load_classifier(mlm_dir, ["bad", "good", "ugly"]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"labels \['bad', 'good', 'ugly'\] do not match the data's labels"):
        load_classifier(tmp_path, LABELS)
    same = load_classifier(tmp_path, ["bad", "good", "ugly"])
    assert isinstance(same, type(AutoModelForSequenceClassification.from_pretrained(tmp_path)))


def test_classifier_from_masked_lm_keeps_encoder_weights(mlm_dir):
    mlm = BertForMaskedLM.from_pretrained(mlm_dir)
    clf = load_classifier(mlm_dir, LABELS)
    assert torch.equal(clf.bert.encoder.layer[0].attention.self.query.weight,
                       mlm.bert.encoder.layer[0].attention.self.query.weight)
    assert clf.config.id2label == {0: "negative", 1: "positive"} and clf.config.label2id["positive"] == 1


def test_scratch_control_is_randomly_initialised(mlm_dir):
    mlm = BertForMaskedLM.from_pretrained(mlm_dir)
    torch.manual_seed(5)
    clf = load_classifier(mlm_dir, LABELS, scratch=True)
    assert not torch.equal(clf.bert.encoder.layer[0].attention.self.query.weight,
                           mlm.bert.encoder.layer[0].attention.self.query.weight)


def test_class_weights_balanced_and_explicit_weight_the_training_loss(mlm_dir):
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 3])
    balanced = class_weights("balanced", labels, 4)
    torch.testing.assert_close(balanced, torch.tensor([10 / 24, 10 / 8, 10 / 4, 10 / 4]))
    assert class_weights(None, labels, 4) is None
    with pytest.raises(ParamsError, match="finetune.class_weights: 3 weights for 4 labels"):
        class_weights([1, 2, 3], labels, 4)
    with pytest.raises(ValueError, match="balanced weights need every class"):
        class_weights("balanced", np.array([0, 1, 1]), 4)

    names = ["w", "x", "y", "z"]
    model = load_classifier(mlm_dir, names).eval()
    cfg = finetune_params(class_weights=[1.0, 2.0, 3.0, 4.0])
    objective = _objective(model, num_labels=4, cfg=cfg)
    batch = objective.train_batch(np.arange(8), 0, 0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    per_example = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    objective.train()
    model.eval()  # the objective is in training mode (weighted loss), the model without dropout
    torch.testing.assert_close(objective(batch)["loss_sum"],
                               (per_example * torch.tensor([1.0, 2.0, 3.0, 4.0])[batch["labels"]]).sum())
    objective.eval()  # evaluation loss stays unweighted, comparable across settings
    torch.testing.assert_close(objective(batch)["loss_sum"], per_example.sum())
    assert objective(batch)["confusion"].shape == (4, 4)


def test_multiclass_training_through_the_engine(mlm_dir):
    names = ["sports", "politics", "science", "arts", "travel"]
    model = apply_strategy(load_classifier(mlm_dir, names), finetune_params())
    objective = _objective(model, num_labels=5, cfg=finetune_params(class_weights="balanced"))
    result = _train(objective, steps=3)
    assert set(result.evals[-1]) >= {"accuracy", "f1_macro", "loss"}
    assert model.config.id2label[4] == "travel" and model.classifier.out_features == 5


def test_head_tail_truncation_keeps_both_ends():
    tokenizer = _tokenizer()
    text = " ".join(["the", "plot", "was", "dull"] + ["a"] * 30 + ["acting", "was", "superb"])
    frame = pd.DataFrame({"text": [text, "a film"], "label": [0, 1]})
    head = encode_labelled(tokenizer, frame, 12).column("input_ids").to_pylist()
    both = encode_labelled(tokenizer, frame, 12, "head_tail", 0.5).column("input_ids").to_pylist()
    words = tokenizer.convert_ids_to_tokens(both[0])
    assert len(both[0]) == len(head[0]) == 12 and words[0] == "[CLS]" and words[-1] == "[SEP]"
    assert words[1:5] == ["the", "plot", "was", "dull"] and words[-4:-1] == ["acting", "was", "superb"]
    assert tokenizer.convert_ids_to_tokens(head[0])[1:5] == words[1:5] and "superb" not in tokenizer.convert_ids_to_tokens(head[0])
    assert both[1] == head[1]  # short documents are untouched


@pytest.mark.parametrize("config, limit", [
    ({"model_type": "gpt2", "n_positions": 64}, 64),
    ({"model_type": "bert", "max_position_embeddings": 64}, 64),
    ({"model_type": "roberta", "max_position_embeddings": 66, "pad_token_id": 1}, 64),  # positions from pad + 1
])
def test_position_limit_reads_each_architectures_field(config, limit):
    from transformers import AutoConfig, PretrainedConfig

    assert position_limit(AutoConfig.for_model(**config)) == limit
    assert position_limit(PretrainedConfig()) is None  # no stated limit


@pytest.mark.parametrize("architecture", ["modernbert", "bert", "roberta-prelayernorm"])
def test_a_saved_encoder_takes_its_positions_not_its_pretraining_block_length(architecture, tmp_path, caplog):
    """Pretrained on 16-token blocks with 48 positions: fine-tuning may read 48 tokens (finetune.max_length), and a
    longer request is cut at 48 with a warning, not silently at the block length."""
    tokenizer = _tokenizer()  # model_max_length 16: tokenizer.max_length, the MLM block length
    model = build_masked_lm(model_params(architecture=architecture, layers=1, hidden=32, heads=2, intermediate=64,
                                         max_position=48), tokenizer)
    save_model(model, tokenizer, tmp_path / "pretrained")
    assert tokenizer.model_max_length == 16  # the caller's tokenizer is left as it was
    saved = AutoTokenizer.from_pretrained(tmp_path / "pretrained")
    classifier = load_classifier(str(tmp_path / "pretrained"), LABELS)
    assert saved.model_max_length == 48
    caplog.clear()
    with caplog.at_level("WARNING", logger="lmpipe.models.load"):
        assert effective_max_length(48, saved, classifier) == 48 and not caplog.records
        assert effective_max_length(64, saved, classifier) == 48
    assert "max_length 64 requested; the model takes at most 48 tokens" in caplog.text
