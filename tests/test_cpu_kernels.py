"""lmpipe.engine.cpu_kernels, the pre-LayerNorm architecture, and length-grouped batching."""

from __future__ import annotations

import os
import subprocess
import sys

import engine_worker as ew
import numpy as np
import pytest
import torch
from repo_params import model_params
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

from lmpipe.engine.accel.cpu_kernels import FastDropout, dropout_keep_mask, use_fast_cpu_kernels
from lmpipe.engine.distributed import Dist
from lmpipe.engine.loop import train
from lmpipe.engine.schedule import StepSampler
from lmpipe.models.build import build_masked_lm
from lmpipe.models.load import load_classifier
from lmpipe.models.save import save_model


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return ew.load_data(ew.make_data(tmp_path_factory.mktemp("kernels-data")))[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_mask_has_the_requested_rate_and_keeps_the_expectation(dtype):
    torch.manual_seed(0)
    x = torch.ones(1000, 1000, dtype=dtype)
    mask = dropout_keep_mask(x, 0.1)
    assert mask.dtype == dtype and mask.shape == x.shape
    assert abs((mask == 0).float().mean().item() - 0.1) < 0.002
    assert abs(mask.float().mean().item() - 1.0) < 0.003 + (0.002 if dtype == torch.bfloat16 else 0)  # bf16(1/0.9)
    assert torch.unique(mask).tolist() == [0.0, torch.tensor(1 / 0.9, dtype=dtype).item()]
    # every 16-bit lane of a 64-bit draw is random, the top one (the int64 sign bit) included
    lane_rates = (mask.view(-1, 4) == 0).float().mean(dim=0)
    assert torch.all((lane_rates - 0.1).abs() < 0.004), lane_rates
    torch.manual_seed(0)
    assert torch.equal(dropout_keep_mask(x, 0.1), mask)  # the global generator makes it reproducible


def _modernbert_with_fast_kernels(tokenizer, fused: bool, dropout: float):
    # a wide init makes attention peaked, so q and k get gradients of the same order as v
    cfg = model_params(architecture="modernbert", layers=2, hidden=32, heads=2, intermediate=64, max_position=32,
                      dropout=dropout, attention_dropout=dropout, init_std=0.3)
    torch.manual_seed(0)
    model = build_masked_lm(cfg, tokenizer).train()
    use_fast_cpu_kernels(model)
    blocks = [m for m in model.modules() if type(m).__name__ in ("FastModernBertAttention", "FastModernBertMLP")]
    assert len(blocks) == 2 * cfg.layers
    if not fused:  # back to transformers' own blocks; dropouts and attention function stay the fast ones
        for module in blocks:
            module.__class__ = type(module).__mro__[1]
    return model


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fused_modernbert_blocks_give_transformers_gradients(tokenizer, dropout):
    ids = torch.randint(5, len(tokenizer), (3, 16))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    results = []
    for fused in (False, True):
        model = _modernbert_with_fast_kernels(tokenizer, fused, dropout)
        torch.manual_seed(1)  # the same dropout masks, drawn in the same order
        logits = model(input_ids=ids, attention_mask=mask).logits
        logits.pow(2).mean().backward()
        results.append((logits.detach(), {name: p.grad for name, p in model.named_parameters()}))
    (logits_hf, grads_hf), (logits_fused, grads_fused) = results
    torch.testing.assert_close(logits_fused, logits_hf, atol=1e-6 * logits_hf.abs().max().item(), rtol=1e-5)
    assert grads_fused.keys() == grads_hf.keys()
    for name, grad in grads_hf.items():
        # Wqkv's rows are q, k and v: each part against its own scale
        for part, (fused_part, hf_part) in enumerate(zip(grads_fused[name].chunk(3 if "Wqkv" in name else 1),
                                                         grad.chunk(3 if "Wqkv" in name else 1))):
            assert hf_part.abs().max() > 0, (name, part)
            torch.testing.assert_close(fused_part, hf_part, atol=1e-5 * hf_part.abs().max().item(), rtol=1e-4,
                                       msg=f"{name} part {part}")


@pytest.mark.parametrize("architecture", ["bert", "roberta-prelayernorm", "modernbert"])
def test_fast_kernels_compute_the_same_function_with_padding(tokenizer, tmp_path, architecture):
    cfg = model_params(architecture=architecture, layers=2, hidden=32, heads=2, intermediate=64, max_position=32)
    save_model(build_masked_lm(cfg, tokenizer), tokenizer, tmp_path / "mlm")
    reference = load_classifier(tmp_path / "mlm", ["a", "b"]).eval()
    fast = load_classifier(tmp_path / "mlm", ["a", "b"]).eval()
    fast.load_state_dict(reference.state_dict())
    assert use_fast_cpu_kernels(fast) > 0
    assert fast.training is False and all(not m.training for m in fast.modules() if isinstance(m, FastDropout))
    ids = torch.randint(5, len(tokenizer), (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = tokenizer.pad_token_id
    with torch.no_grad():
        torch.testing.assert_close(fast(input_ids=ids, attention_mask=mask).logits,
                                   reference(input_ids=ids, attention_mask=mask).logits, atol=1e-5, rtol=1e-5)
        # padding must really be masked: changing a padded token changes nothing
        other = ids.clone()
        other[2, 5] = 7
        torch.testing.assert_close(fast(input_ids=other, attention_mask=mask).logits[2],
                                   fast(input_ids=ids, attention_mask=mask).logits[2])


def test_prelayernorm_encoder_pretrains_and_saves_a_plain_hugging_face_directory(tokenizer, tmp_path):
    _, blocks = ew.load_data(ew.make_data(tmp_path / "data"))
    cfg = model_params(architecture="roberta-prelayernorm", layers=2, hidden=32, heads=2, intermediate=64,
                      max_position=ew.SEQ, dropout=0.1, attention_dropout=0.1)
    torch.manual_seed(0)
    model = build_masked_lm(cfg, tokenizer)
    objective = ew.MaskedLM(model, blocks[:-ew.N_EVAL], blocks[-ew.N_EVAL:], mask_rate=0.15, mask_token_fraction=0.8,
                            random_token_fraction=0.1, mask_token_id=tokenizer.mask_token_id,
                            special_token_ids=tokenizer.all_special_ids, vocab_size=len(tokenizer))
    result = train(objective, ew.train_params(steps=40, eval_every=20), lr=3e-3, seed=0, dist_info=Dist())
    assert result.evals[-1]["loss"] < result.evals[0]["loss"] < np.log(len(tokenizer))
    save_model(model, tokenizer, tmp_path / "pretrained")
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "pretrained")
    assert type(reloaded).__name__ == "RobertaPreLayerNormForMaskedLM"
    assert reloaded.config._attn_implementation != "lmpipe_cpu"  # the run-time kernel is not saved
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pretrained", num_labels=2)
    torch.testing.assert_close(classifier.roberta_prelayernorm.encoder.layer[0].attention.self.query.weight,
                               model.roberta_prelayernorm.encoder.layer[0].attention.self.query.weight)


def test_length_grouping_makes_batches_of_similar_length_and_still_visits_every_example():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=1600)
    grouped = StepSampler(1600, 16, seed=1, lengths=lengths)
    plain = StepSampler(1600, 16, seed=1)
    epoch = np.concatenate([grouped.indices(step) for step in range(100)])
    assert sorted(epoch.tolist()) == list(range(1600))

    def padding(sampler: StepSampler) -> float:
        return float(np.mean([lengths[sampler.indices(s)].max() - lengths[sampler.indices(s)].mean()
                              for s in range(100)]))

    assert padding(grouped) < padding(plain) / 5
    # deterministic in (seed, step), and the batches come in shuffled order (not sorted by length)
    again = StepSampler(1600, 16, seed=1, lengths=lengths)
    assert all(np.array_equal(again.indices(s), grouped.indices(s)) for s in (0, 57, 99, 150))
    means = [lengths[grouped.indices(s)].mean() for s in range(100)]
    assert not (np.all(np.diff(means) >= 0) or np.all(np.diff(means) <= 0))


def test_fast_attention_keeps_a_decoder_causal():
    """transformers passes no mask to a decoder's attention when is_causal can stand in for it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=16, bos_token_id=0,
                        eos_token_id=0)
    model = GPT2LMHeadModel._from_config(config, attn_implementation="sdpa").eval()
    ids = torch.randint(1, 50, (2, 10))
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        use_fast_cpu_kernels(model)
        fast = model(input_ids=ids).logits
        changed_last = ids.clone()
        changed_last[:, -1] = (changed_last[:, -1] + 1) % 50
        later = model(input_ids=changed_last).logits
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
    assert torch.equal(later[:, :-1], fast[:, :-1])  # no position sees a later token


FAULTS_SCRIPT = """
import resource, sys, torch
from lmpipe.engine.accel.cpu_kernels import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
def step():  # a step's activations: several large blocks alive together, then all freed
    blocks = [torch.ones(5 * 2**20) for _ in range(4)]  # 4 x 20 MiB
    del blocks
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_reuses_large_blocks_without_page_faults():
    # glibc's default thresholds adapt to what was freed, so whether a block is mapped afresh varies from run
    # to run; these start every process with small fixed ones (every large block mapped afresh), which
    # keep_freed_memory must override.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, mode], check=True, capture_output=True,
                             text=True, env=env)
        return int(out.stdout.strip())

    pages = 10 * 4 * 5 * 2**20 * 4 // 4096  # what ten steps of fresh blocks cost in page faults
    off, on = faults("off"), faults("on")
    assert off > pages // 2, f"{off} page faults without keep_freed_memory"  # every block mapped afresh
    assert on < pages // 50, f"{on} page faults with keep_freed_memory (without: {off})"  # reused from the heap
