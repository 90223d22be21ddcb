"""Strategies: which parameters receive gradients on a real backward pass; the head always trains."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForMaskedLM

from lmpipe.finetuning import apply_strategy, is_head
from lmpipe.modeling import count_parameters, load_classifier
from lmpipe.params import FinetuneParams

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    path = tmp_path_factory.mktemp("mlm")
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(path)
    return path


def _grads(model) -> dict[str, bool]:
    torch.manual_seed(1)
    ids = torch.randint(5, 120, (4, 16))
    loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, torch.tensor([0, 1, 0, 1]))
    loss.backward()
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in model.named_parameters()}


@pytest.mark.parametrize("strategy, frozen", [
    ("full", lambda n: False),
    ("frozen_encoder", lambda n: not is_head(n)),
    ("freeze_embeddings", lambda n: ".embeddings." in n),
    ("freeze_bottom", lambda n: ".embeddings." in n or ".layer.0." in n or ".layer.1." in n),
])
def test_strategy_trains_exactly_what_it_claims(mlm_dir, strategy, frozen):
    model = load_classifier(mlm_dir, LABELS)
    apply_strategy(model, FinetuneParams(strategy=strategy, freeze_layers=2))
    received = _grads(model)
    for name, got in received.items():
        assert got == (not frozen(name)), f"{strategy}: {name} {'got' if got else 'missed'} a gradient"
    trainable, total = count_parameters(model)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if not frozen(n))
    # the pooler is new (a masked-LM checkpoint has none) and must train in every strategy
    assert received["bert.pooler.dense.weight"] and received["classifier.weight"]


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


def test_label_map_mismatch_is_a_clear_error(mlm_dir, tmp_path):
    load_classifier(mlm_dir, ["bad", "good", "ugly"]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"labels \['bad', 'good', 'ugly'\] do not match the data's labels"):
        load_classifier(tmp_path, LABELS)
    same = load_classifier(tmp_path, ["bad", "good", "ugly"])
    assert isinstance(same, type(AutoModelForSequenceClassification.from_pretrained(tmp_path)))
