"""bench/replaced_token.py: ELECTRA's corruption, the tied embeddings, and the discriminator saved as a base model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import ModernBertConfig

from bench.replaced_token import (
    ReplacedTokenDetection,
    build_pair,
    discriminator_as_masked_lm,
)
from lmpipe.engine.objectives.base import IGNORE
from lmpipe.models.load import load_classifier

VOCAB, SPECIAL = 48, [0, 1, 2, 3, 4]  # pad, unk, cls, sep, mask


@pytest.fixture()
def objective():
    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=32, pad_token_id=0, bos_token_id=2,
                              cls_token_id=2, eos_token_id=3, sep_token_id=3, layer_types=["full_attention"] * 2)
    rng = np.random.default_rng(0)
    blocks = rng.integers(5, VOCAB, (24, 16))
    blocks[:, 0], blocks[:, -1] = 2, 3
    return ReplacedTokenDetection(build_pair(config, generator_layers=1), blocks, blocks[:8], discriminator_weight=50.0,
                                  mask_rate=0.3, mask_token_fraction=1.0, random_token_fraction=0.0, mask_token_id=4,
                                  special_token_ids=SPECIAL, vocab_size=VOCAB), config


def _masked(batch):
    valid = batch["targets"] != IGNORE
    return batch["positions"][valid], batch["targets"][valid]


def test_the_generator_shares_the_discriminators_token_embeddings(objective):
    pair = objective[0].model
    shared = pair.discriminator.get_input_embeddings().weight
    assert pair.generator.get_input_embeddings().weight is shared
    assert pair.generator.get_output_embeddings().weight is shared
    assert len(pair.generator.base_model.layers) == 1 and len(pair.discriminator.base_model.layers) == 2


def test_corruption_replaces_exactly_the_masked_tokens_with_the_generators_samples(objective):
    objective = objective[0]
    batch = objective.train_batch(np.arange(8), step=0, seed=0)
    positions, targets = _masked(batch)
    assert len(positions) > 0
    original = torch.where(batch["labels"] != IGNORE, batch["labels"], batch["input_ids"])
    # A generator sure of the original token replaces nothing.
    sure = torch.full((len(positions), VOCAB), -30.0).scatter_(1, targets[:, None], 30.0)
    corrupted, replaced, scored = objective.corrupt(batch, sure, positions)
    assert torch.equal(corrupted, original) and replaced.sum() == 0
    assert not scored[:, 0].any() and not scored[:, -1].any() and scored[:, 1:-1].all()  # [CLS], [SEP]
    # One sure of another token puts it at every masked position, and nowhere else.
    other = (targets + 1 - 5) % (VOCAB - 5) + 5
    wrong = torch.full((len(positions), VOCAB), -30.0).scatter_(1, other[:, None], 30.0)
    corrupted, replaced, _ = objective.corrupt(batch, wrong, positions)
    assert torch.equal(corrupted.reshape(-1)[positions], other)
    expected = torch.zeros(original.numel())
    expected[positions] = 1.0
    assert torch.equal(replaced.reshape(-1), expected)
    # A uniform generator samples by the batch's keyed uniforms: the same draw every time, spread over the vocabulary.
    flat = torch.zeros(len(positions), VOCAB)
    first = objective.corrupt(batch, flat, positions)[0]
    assert torch.equal(first, objective.corrupt(batch, flat, positions)[0])
    assert len(set(first.reshape(-1)[positions].tolist())) > len(positions) // 2


def test_loss_adds_the_weighted_discriminator_mean_to_the_generator_mean(objective):
    objective = objective[0]
    batch = objective.train_batch(np.arange(8), step=0, seed=0)
    out = objective(batch)
    n = float(out["targets"])
    assert out["scored"] == 8 * 14  # every token but [CLS] and [SEP]
    expected = out["generator_loss_sum"] / n + 50.0 * out["discriminator_loss_sum"] / out["scored"]
    assert float(out["loss_sum"].detach()) / n == pytest.approx(float(expected), rel=1e-5)
    out["loss_sum"].backward()
    pair = objective.model
    assert pair.generator.base_model.layers[0].attn.Wqkv.weight.grad.abs().sum() > 0
    assert pair.discriminator.classifier.weight.grad.abs().sum() > 0


def test_the_saved_discriminator_is_the_classifiers_encoder(objective, tmp_path):
    objective, config = objective
    pair = objective.model
    discriminator_as_masked_lm(pair, config).save_pretrained(tmp_path)
    classifier = load_classifier(str(tmp_path), ["neg", "pos"])
    for name, weight in pair.discriminator.state_dict().items():
        if name.startswith(("model.", "head.")):  # the encoder, and ModernBERT's prediction head
            assert torch.equal(classifier.state_dict()[name], weight), name
