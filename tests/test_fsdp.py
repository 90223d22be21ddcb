"""train.parallel: fsdp: the tiny BERT of tests/engine_worker.py sharded with FSDP2 over 2 CPU processes (gloo).

The sharded run computes what one process computes for the same global batch (up to the order of float
sums), checkpoints through torch.distributed.checkpoint so that a run killed with SIGKILL resumes to the
bitwise weights of an uninterrupted one, and hands back a plain model that saves as a Hugging Face directory.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import engine_worker as ew
import numpy as np
import pytest
import torch
from repo_params import gpt_params, model_params
from transformers import AutoModelForMaskedLM

from lmpipe.engine import checkpoint
from lmpipe.engine.distributed import Dist, layer_stack
from lmpipe.engine.loop import train
from lmpipe.models.build import build_gpt2, build_masked_lm

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return ew.make_data(tmp_path_factory.mktemp("mlm-data"))


def _ranks(tmp_path: Path, name: str) -> list[Path]:
    return [tmp_path / name / f"rank{rank}" for rank in range(2)]


@pytest.mark.subprocess
def test_fsdp_matches_a_single_process_with_the_same_global_batch(data_dir, tmp_path):
    steps, n_eval = 6, 21
    # Each process runs 2 micro-batches of 4 a step (accumulation without gradient sync, then one
    # reduce-scatter). 21 held-out blocks in evaluation batches of 8: rank 0 has two, rank 1 one, so rank 1
    # pads its evaluation with a forward whose outputs it drops (each FSDP forward is a collective).
    args = ["--parallel", "fsdp", "--steps", str(steps), "--batch", "16", "--micro", "4", "--dropout", "0",
            "--checkpoint-every", "2", "--log-every", "1", "--eval-every", "3", "--n-eval", str(n_eval)]
    outs = _ranks(tmp_path, "fsdp")
    procs = ew.launch_ranks(data_dir, outs, tmp_path / "ckpt", *args)

    # The same global batch in one process, without accumulation, while the ranks run.
    tokenizer, blocks = ew.load_data(data_dir)
    single = ew.mlm_objective(tokenizer, blocks, n_eval=n_eval)
    result = train(single, ew.train_params(steps=steps, batch_size=16, warmup=0.25, eval_every=3), lr=1e-3, seed=0,
                   dist_info=Dist())
    records = ew.finish_ranks(procs, outs)

    assert [r["world"] for r in records] == [2, 2]
    assert [r["saves"] for r in records] == [[2, 4], [2, 4]]  # every process writes its shards
    assert not (tmp_path / "ckpt").exists()  # a finished run removes its checkpoints
    history = records[0]["history"]
    assert records[1]["history"] == history  # every rank logs the all-reduced loss
    assert [row["step"] for row in history] == list(range(1, steps + 1))
    assert [row["tokens"] for row in history] == [row["tokens"] for row in result.history]
    # fp32 sums in another order (two half batches, a reduce-scatter): the losses agree to float32 rounding
    np.testing.assert_allclose([row["loss"] for row in history], [row["loss"] for row in result.history],
                               rtol=1e-6, atol=0)
    np.testing.assert_allclose([e["loss"] for e in records[0]["evals"]], [e["loss"] for e in result.evals],
                               rtol=1e-6, atol=0)

    # train() hands back the model it was given, unsharded, with the full weights in every process.
    assert [r["plain_model"] for r in records] == [True, True]
    assert records[0]["weights_sum"] == records[1]["weights_sum"]
    got = ew.read_weights(outs[0])
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(got[name], value, atol=1e-6, rtol=1e-5, msg=name)
    saved = AutoModelForMaskedLM.from_pretrained(outs[0] / "model")  # a plain Hugging Face directory
    for name, value in saved.state_dict().items():
        assert torch.equal(value, got[name]), name


@pytest.mark.subprocess
def test_fsdp_resumes_after_sigkill_to_the_weights_of_an_uninterrupted_run(data_dir, tmp_path):
    # dropout 0.1: each process's RNG state is part of its checkpoint; log_every does not divide checkpoint_every
    args = ["--parallel", "fsdp", "--steps", "14", "--checkpoint-every", "4", "--log-every", "3", "--eval-every", "5",
            "--n-eval", "21"]
    reference_outs, outs = _ranks(tmp_path, "reference"), _ranks(tmp_path, "run")
    reference = ew.launch_ranks(data_dir, reference_outs, tmp_path / "ckpt-reference", *args)
    ckpt_dir = tmp_path / "ckpt"
    victims = ew.launch_ranks(data_dir, outs, ckpt_dir, *args, "--sleep", "0.25")
    deadline = time.monotonic() + ew.SUBPROCESS_TIMEOUT
    while time.monotonic() < deadline and all(p.poll() is None for p in victims):
        progress = outs[0] / "progress"
        text = progress.read_text() if progress.exists() else ""
        if checkpoint.sharded_checkpoints(ckpt_dir) and text and int(text) >= 6:  # past a checkpoint, steps to redo
            break
        time.sleep(0.05)
    for victim in victims:
        victim.send_signal(signal.SIGKILL)
    for victim, out in zip(victims, outs):
        assert victim.wait(timeout=30) == -signal.SIGKILL, (out / "log.txt").read_text()[-3000:]
    assert not (outs[0] / "weights.safetensors").exists()

    saved = checkpoint.sharded_checkpoints(ckpt_dir)[-1]
    saved_step = int(saved.name.removeprefix(checkpoint.SHARDED_PREFIX))
    assert saved_step in (4, 8)
    # torch.distributed.checkpoint's metadata and one shard file per process, and each process's loop state
    assert sorted(p.name for p in saved.iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "loop-0.pt",
                                                       "loop-1.pt"]
    # A checkpoint still being written when the run died is a temporary directory: resuming ignores it.
    partial = ckpt_dir / f".{checkpoint.SHARDED_PREFIX}{saved_step + 4:09d}.tmp"
    partial.mkdir(exist_ok=True)
    (partial / "__0_0.distcp").write_bytes(b"torn")

    resumed = ew.finish_ranks(ew.launch_ranks(data_dir, outs, ckpt_dir, *args), outs)
    expected = ew.finish_ranks(reference, reference_outs)

    assert [r["first_step"] for r in resumed] == [saved_step, saved_step]
    assert [r["saves"] for r in resumed] == [[s for s in (4, 8, 12) if s > saved_step]] * 2
    assert expected[0]["first_step"] == 0 and expected[0]["saves"] == [4, 8, 12]
    assert resumed[0]["history"] == expected[0]["history"]
    assert resumed[0]["evals"] == expected[0]["evals"]
    assert not ckpt_dir.exists()
    want, got = ew.read_weights(reference_outs[0]), ew.read_weights(outs[0])
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name


@pytest.mark.subprocess
def test_fsdp_keep_best_restores_the_best_weights_in_every_process(data_dir, tmp_path):
    # A learning rate far too high: the first evaluation (after step 1, at lr 0 in the warmup: the initial
    # weights) stays the best, and every later one is worse.
    args = ["--parallel", "fsdp", "--keep-best", "--lr", "0.5", "--steps", "4", "--eval-every", "1",
            "--checkpoint-every", "0", "--n-eval", "21"]
    outs = _ranks(tmp_path, "fsdp")
    records = ew.finish_ranks(ew.launch_ranks(data_dir, outs, tmp_path / "ckpt", *args), outs)

    evals = [e["loss"] for e in records[0]["evals"]]
    assert len(evals) == 4 and min(evals[1:]) > evals[0]
    assert [r["best_step"] for r in records] == [1, 1]
    tokenizer, blocks = ew.load_data(data_dir)
    initial = ew.mlm_objective(tokenizer, blocks, dropout=0.1).model.state_dict()
    got = ew.read_weights(outs[0])
    for name, value in initial.items():
        assert torch.equal(got[name], value), name
    assert records[0]["weights_sum"] == records[1]["weights_sum"]  # rank 1 got the best weights from rank 0


def test_the_layer_stack_is_found_for_each_architecture(data_dir):
    tokenizer, _ = ew.load_data(data_dir)
    sizes = {"layers": 3, "hidden": 32, "heads": 2, "intermediate": 64, "max_position": ew.SEQ}
    bert = build_masked_lm(model_params(architecture="bert", **sizes), tokenizer)
    assert layer_stack(bert) is bert.bert.encoder.layer
    modern = build_masked_lm(model_params(architecture="modernbert", **sizes), tokenizer)
    assert layer_stack(modern) is modern.model.layers
    gpt = build_gpt2(gpt_params(layers=3, width=32, heads=2), tokenizer)
    assert layer_stack(gpt) is gpt.transformer.h
