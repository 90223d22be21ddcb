"""The causal-LM side: objective arithmetic (one label shift), packing, training through the engine (loss falls,
determinism, resume after SIGKILL), generation (seeded, stops at end-of-text), and the real `dvc repro
clm/dvc.yaml` on tiny params. Everything uses a real tiny GPT-2 (2 layers, width 32, blocks of 32 tokens) and a
320-token byte-level BPE trained on builtin documents (tests/clm_worker.py)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import clm_worker as cw
import engine_worker as ew
import numpy as np
import pipeline_copy
import pytest
import torch
import torch.nn.functional as F
from pipeline_copy import CLM_TINY, copy_source
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmpipe.cli.generate import main as generate_main
from lmpipe.config.clm_schema import SamplingParams
from lmpipe.engine import checkpoint
from lmpipe.engine.distributed import Dist
from lmpipe.engine.evaluate import evaluate
from lmpipe.engine.loop import train
from lmpipe.engine.objectives.causal_lm import target_bytes
from lmpipe.models.generation import generate
from lmpipe.models.save import save_model
from lmpipe.text.packing import pack_documents

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("clm_worker.py")
TIMEOUT = 180


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return cw.make_data(tmp_path_factory.mktemp("clm-data"))


@pytest.fixture(scope="module")
def data(data_dir):
    return cw.load_data(data_dir)


# --------------------------------------------------------------------------------------------- objective


def sampling(**options) -> SamplingParams:
    """The lmpipe-generate defaults, with `options` changed."""
    return SamplingParams(**{"greedy": False, "temperature": 0.8, "top_k": 50, "top_p": 0.95, "max_new_tokens": 50,
                             **options})


def test_labels_are_shifted_exactly_once(data):
    tokenizer, train_blocks, _ = data
    objective = cw.clm_objective(tokenizer, train_blocks, train_blocks[:4])
    objective.eval()
    ids = torch.from_numpy(train_blocks[:2, :6])  # two short sequences: 5 targets each
    out = objective({"input_ids": ids})
    logits = objective.model(input_ids=ids).logits.double()
    hand = 0.0
    for row in range(2):
        for t in range(5):  # position t predicts token t + 1
            hand -= torch.log_softmax(logits[row, t], -1)[ids[row, t + 1]].item()
    assert out["targets"].item() == 10 == objective.count_targets({"input_ids": ids})
    assert out["loss_sum"].item() == pytest.approx(hand, rel=1e-5)
    # Hugging Face shifts `labels` itself: our sum equals its mean with labels=input_ids times the target count...
    hf = objective.model(input_ids=ids, labels=ids).loss.item()
    assert out["loss_sum"].item() / 10 == pytest.approx(hf, rel=1e-5)
    # ...while shifting before handing labels over (a second shift) predicts two tokens ahead: not the same.
    twice = objective.model(input_ids=ids[:, :-1], labels=ids[:, 1:]).loss.item()
    assert abs(twice - hf) > 1e-3


def test_packing_separates_documents_with_end_of_text(data):
    tokenizer = data[0]
    eot = tokenizer.eos_token_id
    docs = ["The film was long.", "", "A second review, short."]
    blocks = pack_documents(tokenizer, docs, 4)
    stream = blocks.reshape(-1).tolist()
    expected = [eot, *tokenizer.encode(docs[0]), eot, *tokenizer.encode(docs[2]), eot]
    assert stream == expected[:len(stream)] and len(stream) == len(expected) // 4 * 4
    assert tokenizer.decode(expected, skip_special_tokens=True) == docs[0] + docs[2]
    # bytes per block: the decoded targets plus one byte per end-of-text
    block = np.asarray(expected[:8]).reshape(1, 8)
    text = tokenizer.decode(expected[1:8], skip_special_tokens=True)
    assert target_bytes(tokenizer, block, eot)[0] == len(text.encode()) + expected[1:8].count(eot)
    with pytest.raises(ValueError, match="fewer than one block"):
        pack_documents(tokenizer, ["tiny"], 64)


def test_engine_applies_a_causal_mask_even_with_custom_attention(data):
    """The engine's CPU kernels swap the attention function; the future must stay invisible."""
    tokenizer, train_blocks, heldout = data
    objective = cw.clm_objective(tokenizer, train_blocks, heldout)
    train(objective, ew.train_params(steps=1, fast_cpu_kernels=True), lr=1e-3, seed=0, dist_info=Dist())
    objective.eval()
    ids = torch.from_numpy(heldout[:2])
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % len(tokenizer)  # only the last target differs

    def logits(x):  # what the swapped-in attention computes when the caller passes no mask
        return objective.model(input_ids=x).logits.float()

    def last_target_loss(lg, x):
        return F.cross_entropy(lg[:, -2], x[:, -1], reduction="sum")

    with torch.no_grad():
        la, lb = logits(ids), logits(changed)
        a, b = objective({"input_ids": ids}), objective({"input_ids": changed})
    assert torch.equal(la[:, :-1], lb[:, :-1])  # no position sees the changed last token
    # the objective's loss moves by exactly the last target's term: nothing earlier saw the future either
    expected = (last_target_loss(la, ids) - last_target_loss(lb, changed)).item()
    assert (a["loss_sum"] - b["loss_sum"]).item() == pytest.approx(expected, abs=1e-3)
    assert abs(expected) > 1e-3


# --------------------------------------------------------------------------------------------- training


def test_loss_falls_on_the_builtin_corpus(data):
    tokenizer, train_blocks, heldout = data
    objective = cw.clm_objective(tokenizer, train_blocks, heldout)
    before = evaluate(objective, 16)
    cfg = ew.train_params(steps=150, batch_size=16, warmup=0.1, eval_every=75, log_every=10)
    result = train(objective, cfg, lr=3e-3, seed=0, dist_info=Dist())
    after = result.evals[-1]
    assert before["loss"] == pytest.approx(math.log(len(tokenizer)), abs=0.3)  # uniform at initialisation
    assert after["loss"] < before["loss"] - 1.5, (before, after)
    assert result.history[-1]["loss"] < result.history[0]["loss"] - 1.0
    assert after["perplexity"] == pytest.approx(math.exp(after["loss"]))
    # per byte: the same summed loss over the bytes the targets cover (builtin text is ASCII)
    assert after["bits_per_byte"] == pytest.approx(after["loss"] / after["bytes_per_token"] / math.log(2))
    assert 1.0 < after["bytes_per_token"] < 6.0


def test_same_seed_same_run(data):
    tokenizer, train_blocks, heldout = data
    cfg = ew.train_params(steps=4, batch_size=8, eval_every=2, micro_batch_size=4)

    def run(seed: int):
        objective = cw.clm_objective(tokenizer, train_blocks, heldout, dropout=0.1)
        result = train(objective, cfg, lr=3e-3, seed=seed, dist_info=Dist())
        return ew.plain(result.history), result.evals

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert [r["loss"] for r in other[0]] != [r["loss"] for r in first[0]]


def _launch(data_dir: Path, out: Path, ckpt_dir: Path, *extra: str) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, str(WORKER), "--data", str(data_dir), "--out", str(out), "--ckpt-dir", str(ckpt_dir),
           *extra]
    with open(out / "log.txt", "ab") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, out: Path) -> dict:
    try:
        rc = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert rc == 0, (out / "log.txt").read_text()[-3000:]
    return json.loads((out / "record-0.json").read_text())


@pytest.mark.subprocess
def test_resume_after_sigkill_gives_the_same_weights(data_dir, tmp_path):
    from safetensors.torch import load_file

    args = ["--steps", "10", "--checkpoint-every", "3", "--log-every", "2", "--eval-every", "4"]
    ckpt_dir = tmp_path / "ckpt" / f"clm-{checkpoint.fingerprint('clm', args, [data_dir])}"
    reference = _launch(data_dir, tmp_path / "reference", tmp_path / "ckpt-reference", *args)
    out = tmp_path / "run"
    victim = _launch(data_dir, out, ckpt_dir, *args, "--sleep", "0.2")
    state_file = ckpt_dir / checkpoint.STATE_FILE
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and victim.poll() is None:
        progress = out / "progress"
        text = progress.read_text() if progress.exists() else ""
        if state_file.exists() and text and int(text) >= 4:  # past a checkpoint, with steps to redo
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL, (out / "log.txt").read_text()[-3000:]
    saved_step = checkpoint.load(ckpt_dir)["loop"]["step"]
    assert saved_step in (3, 6, 9)

    resumed = _finish(_launch(data_dir, out, ckpt_dir, *args), out)
    expected = _finish(reference, tmp_path / "reference")
    assert resumed["first_step"] == saved_step and expected["first_step"] == 0
    assert resumed["history"] == expected["history"] and resumed["evals"] == expected["evals"]
    assert not ckpt_dir.exists()  # a finished run removes its checkpoint
    want, got = load_file(str(tmp_path / "reference" / "weights.safetensors")), load_file(str(out / "weights.safetensors"))
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name


# --------------------------------------------------------------------------------------------- generation


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory) -> Path:
    tokenizer, train_blocks, heldout = data
    objective = cw.clm_objective(tokenizer, train_blocks, heldout)
    train(objective, ew.train_params(steps=10, batch_size=16), lr=3e-3, seed=0, dist_info=Dist())
    path = tmp_path_factory.mktemp("clm-model") / "model"
    save_model(objective.model, tokenizer, path)
    return path


def test_saved_model_loads_with_auto_classes(model_dir):
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in model_dir.iterdir()}
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert type(model).__name__ == "GPT2LMHeadModel" and tokenizer.eos_token == "<|endoftext|>"


def test_generate_is_deterministic_for_a_seed(model_dir, capsys):
    argv = [str(model_dir), "The film", "--max-new-tokens", "12", "--seed", "3", "--json"]
    runs = []
    for seed in ("3", "3", "4"):
        argv[-2] = seed
        assert generate_main(argv) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0] == runs[1]
    assert runs[0]["text"] != runs[2]["text"]
    assert 1 <= runs[0]["new_tokens"] <= 12
    # streaming prints the same text as it comes
    assert generate_main(argv[:-3] + ["--seed", "3"]) == 0
    assert capsys.readouterr().out == "The film" + runs[0]["text"] + "\n"
    greedy = [generate_main([str(model_dir), "The film", "--greedy", "--max-new-tokens", "8", "--json",
                             "--seed", s]) or json.loads(capsys.readouterr().out)["text"] for s in ("1", "2")]
    assert greedy[0] == greedy[1]  # argmax decoding does not depend on the seed


def test_prompts_start_a_document_after_end_of_text(model_dir):
    from lmpipe.models.generation import generate

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    seen = []
    real_generate = model.generate
    model.generate = lambda input_ids, **kwargs: seen.append(input_ids[0].tolist()) or real_generate(input_ids, **kwargs)
    for prompt in ("The film", ""):
        generate(model, tokenizer, prompt, sampling(max_new_tokens=3, greedy=True), seed=0)
    prompt_ids = tokenizer("The film", add_special_tokens=False).input_ids
    assert seen == [[tokenizer.eos_token_id, *prompt_ids], [tokenizer.eos_token_id]]  # as packed documents are


def test_streaming_prints_held_back_bytes_when_generation_stops_inside_a_character(model_dir, capsys):
    from lmpipe.models.generation import _PrintStreamer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer("ok \u20ac", add_special_tokens=False).input_ids  # the euro sign is 3 bytes
    cut = next(i for i in range(1, len(ids) + 1) if tokenizer.decode(ids[:i]).endswith("\ufffd"))
    streamer = _PrintStreamer(tokenizer)
    streamer.put(torch.tensor([[tokenizer.eos_token_id]]))  # the prompt
    for token in ids[:cut]:
        streamer.put(torch.tensor([token]))
    streamer.end()
    final = tokenizer.decode(ids[:cut], skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert final.endswith("\ufffd")
    assert capsys.readouterr().out == final + "\n"  # what the non-streaming output would print


def _eot_model(model_dir: Path, out: Path, eot_probability: float) -> Path:
    """The tiny model with its output made constant: end-of-text with the given probability, others uniform."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab, eot = len(tokenizer), tokenizer.eos_token_id
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0  # every final hidden state is e_0
        model.lm_head.weight[:, 0] = 0.0  # (tied to the input embeddings) logits: 0 for every token...
        model.lm_head.weight[eot, 0] = math.log(eot_probability * (vocab - 1) / (1 - eot_probability))  # ...but eot
    save_model(model, tokenizer, out)
    return out


def test_generation_stops_at_end_of_text(model_dir, tmp_path):
    path = _eot_model(model_dir, tmp_path / "eot-model", eot_probability=0.3)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    greedy = generate(model, tokenizer, "The film", sampling(max_new_tokens=20, greedy=True), seed=0)
    assert greedy.new_tokens == 1 and greedy.stopped_at_end_of_text and greedy.text == ""
    sampled = [generate(model, tokenizer, "The film", sampling(max_new_tokens=28, top_k=0, top_p=1.0, temperature=1.0),
                        seed=s) for s in range(5)]
    assert all(r.stopped_at_end_of_text and r.new_tokens < 28 for r in sampled)  # seeded; P(no eot in 28) ~ 5e-5
    assert max(r.new_tokens for r in sampled) > 1  # it sampled other tokens first, then stopped
    # the console command, prompt on stdin: streams, then stops at end-of-text
    proc = subprocess.run([sys.executable, "-m", "lmpipe.cli.generate", str(path), "--max-new-tokens", "28",
                           "--top-k", "0", "--top-p", "1", "--temperature", "1", "--seed", "0", "--json"],
                          input="The film\n", capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout)
    assert record["prompt"] == "The film" and record["stopped_at_end_of_text"] and record["new_tokens"] < 28
    assert record == {**json.loads(json.dumps(record)), "text": sampled[0].text, "new_tokens": sampled[0].new_tokens,
                      "stopped_at_end_of_text": True}


def test_generate_rejects_a_directory_without_a_model(tmp_path, capsys):
    assert generate_main([str(tmp_path), "hello"]) == 2
    assert "no config.json" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- the pipeline

@pytest.mark.slow
def test_dvc_repro_runs_the_clm_pipeline(tmp_path):
    repo = copy_source(tmp_path / "repo", {"clm/params.yaml": CLM_TINY})

    def run(*args: str) -> str:
        return pipeline_copy.run(repo, *args, tracking=False)

    output = run("dvc", "repro", "clm/dvc.yaml")
    assert pipeline_copy.ran(output) == {
        f"clm/dvc.yaml:{stage}" for stage in ("check-params-clm", "tokenize-clm", "pretrain-clm", "evaluate-clm")}
    assert "Running stage 'download'" not in output  # its own pipeline: the main one is not run

    model = repo / "models/clm/model"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in model.iterdir()}
    AutoModelForCausalLM.from_pretrained(model)
    pretrain = json.loads((repo / "reports/clm/pretrain/metrics.json").read_text())
    assert pretrain["steps"] == 6 and pretrain["heldout_perplexity"] > 1
    metrics = json.loads((repo / "reports/clm/evaluate/metrics.json").read_text())
    assert metrics["heldout_perplexity"] > 1 and 0 < metrics["heldout_bits_per_byte"] < 16
    samples = json.loads((repo / "reports/clm/evaluate/samples.json").read_text())["samples"]
    assert [s["prompt"] for s in samples] == ["The film", ""]
    assert "The film" in (repo / "reports/clm/evaluate/samples.md").read_text()
    assert (repo / "clm/dvc.lock").is_file()
    assert "Running stage" not in run("dvc", "repro", "clm/dvc.yaml")  # nothing is stale
    assert "reports/clm/evaluate/metrics.json" in run("dvc", "metrics", "show")
    plots = subprocess.run(["dvc", "plots", "show", "--json"], cwd=repo, env=pipeline_copy.environment(repo, False),
                           capture_output=True, text=True)
    plots = json.loads(plots.stdout)  # (the main pipeline's plots have no data here: errors for those)
    assert not [e for e in plots.get("errors", []) if "clm" in json.dumps(e)]  # paths resolve from clm/
    assert "Causal-LM loss (per token)" in plots["data"]
