"""lmpipe.engine.sparse_mlm: the last encoder layer at the masked positions only gives the full forward's loss
and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM

from lmpipe.engine.accel.cpu_kernels import use_fast_cpu_kernels
from lmpipe.engine.accel.sparse_mlm import QUERY_BUCKET, query_index, supports_sparse_last_layer
from lmpipe.engine.objectives.masked_lm import MaskedLM

VOCAB, SEQ = 50, 24


def test_query_index_groups_each_rows_positions():
    # rows of 5: row 0 selects columns 1, 3; row 1 none; row 2 selects 0, 2, 4; then 3 padding entries
    positions = torch.tensor([1, 3, 10, 12, 14, 0, 0, 0])
    index = query_index(positions, count=5, seq_len=5, batch_size=3)
    columns, slots = index["query_columns"], index["query_slots"]
    assert columns.shape == (3, QUERY_BUCKET)
    assert columns[0, :2].tolist() == [1, 3] and columns[2, :3].tolist() == [0, 2, 4]
    assert slots.tolist() == [0, 1, 2 * QUERY_BUCKET, 2 * QUERY_BUCKET + 1, 2 * QUERY_BUCKET + 2, 0, 0, 0]
    # every real position's slot points back at its own column
    flat_columns = columns.reshape(-1)[slots[:5]]
    assert flat_columns.tolist() == [p % 5 for p in positions[:5].tolist()]


def _masked_lm(architecture: str, layer_types: list[str]) -> torch.nn.Module:
    from transformers import BertConfig, BertForMaskedLM, RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM

    torch.manual_seed(0)
    special = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if architecture == "modernbert":
        return ModernBertForMaskedLM(ModernBertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=len(layer_types), num_attention_heads=2,
            intermediate_size=48, max_position_embeddings=SEQ, local_attention=8, layer_types=layer_types,
            initializer_range=0.3, attention_dropout=0.0, mlp_dropout=0.0, embedding_dropout=0.0,
            cls_token_id=1, sep_token_id=2, **special))
    config_class, model_class = {"bert": (BertConfig, BertForMaskedLM),
                                 "roberta-prelayernorm": (RobertaPreLayerNormConfig,
                                                          RobertaPreLayerNormForMaskedLM)}[architecture]
    return model_class(config_class(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=len(layer_types), num_attention_heads=2,
        intermediate_size=48, max_position_embeddings=SEQ + 2, initializer_range=0.3, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, **special))


def _objective(implementation: str, layer_types: list[str], architecture: str = "modernbert") -> MaskedLM:
    model = _masked_lm(architecture, layer_types).train()
    if implementation == "fast":
        use_fast_cpu_kernels(model)
    else:
        model.set_attn_implementation(implementation)
    blocks = np.random.default_rng(0).integers(5, VOCAB, size=(8, SEQ))
    return MaskedLM(model, blocks, blocks[:2], mask_rate=0.3, mask_token_fraction=0.8, random_token_fraction=0.1,
                    mask_token_id=4, special_token_ids=[0, 1, 2, 3, 4], vocab_size=VOCAB)


def _loss_and_grads(objective: MaskedLM, batch: dict) -> tuple[dict, dict]:
    objective.zero_grad()
    sums = objective(batch)
    sums["loss_sum"].backward()
    grads = {name: p.grad.clone() for name, p in objective.named_parameters() if p.grad is not None}
    return sums, grads


@pytest.mark.parametrize("implementation", ["fast", "sdpa", "eager"])
@pytest.mark.parametrize("architecture, layer_types", [
    ("modernbert", ["full_attention", "full_attention"]),
    ("modernbert", ["full_attention", "sliding_attention"]),  # the last layer's mask matters
    ("bert", ["full_attention"] * 2),
    ("roberta-prelayernorm", ["full_attention"] * 2),
])
def test_sparse_last_layer_gives_the_full_forwards_loss_and_gradients(implementation, architecture, layer_types):
    objective = _objective(implementation, layer_types, architecture)
    encoder = objective.model.base_model
    last_mlp = (encoder.layers[-1].mlp if architecture == "modernbert" else encoder.encoder.layer[-1].intermediate)
    assert supports_sparse_last_layer(encoder)
    batch = objective.train_batch(np.arange(6), step=0, seed=0)
    real = int((batch["targets"] != -100).sum())
    assert real < len(batch["positions"])  # padding entries are exercised too

    mlp_rows = []
    hook = last_mlp.register_forward_hook(lambda m, args, out: mlp_rows.append(args[0].shape[:-1]))
    sparse, sparse_grads = _loss_and_grads(objective, batch)
    full_batch = {k: v for k, v in batch.items() if k not in ("query_columns", "query_slots")}
    full, full_grads = _loss_and_grads(objective, full_batch)
    hook.remove()
    assert mlp_rows == [(len(batch["positions"]),), (6, SEQ)]  # the sparse path really skipped the other rows

    assert int(sparse["targets"]) == int(full["targets"]) == real
    torch.testing.assert_close(sparse["loss_sum"], full["loss_sum"], rtol=1e-5, atol=1e-5)
    assert sparse_grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        scale = grad.abs().max().clamp(min=1e-8)
        assert (sparse_grads[name] - grad).abs().max() / scale < 1e-4, name


def test_other_attention_functions_run_the_full_forward():
    objective = _objective("sdpa", ["full_attention", "full_attention"])
    objective.model.config._attn_implementation = "flex_attention"  # no per-row query gather for block masks
    assert not supports_sparse_last_layer(objective.model.base_model)


def test_outside_the_tested_transformers_releases_the_stock_modules_run(monkeypatch):
    """An untested transformers: no module is swapped, the last layer runs in full, and one warning says so."""
    from packaging.specifiers import SpecifierSet

    from lmpipe.engine.accel import transformers_compat

    monkeypatch.setattr(transformers_compat, "TESTED_TRANSFORMERS", SpecifierSet("<1"))
    monkeypatch.setattr(transformers_compat, "_warned", False)
    model = _masked_lm("modernbert", ["full_attention"] * 2).train()
    classes = [type(m) for m in model.modules()]
    with pytest.warns(transformers_compat.UntestedTransformersWarning, match="outside the releases") as caught:
        assert use_fast_cpu_kernels(model) == 0
        assert not supports_sparse_last_layer(model.model)
    assert len(caught) == 1
    assert [type(m) for m in model.modules()] == classes
    assert model.config._attn_implementation != "lmpipe_cpu"
