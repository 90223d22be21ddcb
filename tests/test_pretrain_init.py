"""pretrain.init_from: further masked-LM training of a given pretrained model on the corpus (within-task
pretraining), run through the real pretrain-mlm stage on a tiny local BERT under data/external/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from repo_params import tokenizer_params
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

from lmpipe.config.loader import ParamsError
from lmpipe.config.schema import load_params
from lmpipe.data.builtin import generate_corpus
from lmpipe.data.corpus import write_corpus_shards
from lmpipe.text.tokenizers import train_tokenizer

REPO = Path(__file__).resolve().parents[1]


def _params(path: Path, init_from: str | None) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tracking"]["enabled"] = False
    raw["pretrain"]["init_from"] = init_from
    raw["pretrain"]["train"].update(steps=6, batch_size=8, eval_every=3, checkpoint_every=0, log_every=1)
    raw["tokenizer"]["max_length"] = 32
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture()
def workdir(tmp_path) -> Path:
    corpus = generate_corpus(300, seed=1)
    write_corpus_shards(tmp_path / "data/raw/corpus", [corpus], shard_documents=128)  # as the download stage does
    tokenizer = train_tokenizer(corpus, tokenizer_params(vocab_size=300, max_length=32, min_frequency=1))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    base = tmp_path / "data/external/tiny-bert"
    BertForMaskedLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    return tmp_path


def test_init_from_continues_mlm_training_of_the_given_model(workdir):
    _params(workdir / "params.yaml", "data/external/tiny-bert")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "stages.pretrain_mlm"], cwd=workdir, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    out = workdir / "models/pretrained"
    trained = AutoModelForMaskedLM.from_pretrained(out)
    base = AutoModelForMaskedLM.from_pretrained(workdir / "data/external/tiny-bert")
    assert type(trained) is type(base) and trained.config.hidden_size == 32  # the given model, not `model:`
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(
        workdir / "data/external/tiny-bert").get_vocab()  # its own tokenizer travels with it
    moved = [n for n, p in trained.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert any(".encoder.layer." in n for n in moved)
    metrics = yaml.safe_load((workdir / "reports/pretrain/metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["heldout_perplexity"] > 1


def test_init_from_outside_data_external_or_missing_is_a_params_error(workdir, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "config.json").write_text("{}")
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    _params(workdir / "params.yaml", str(outside))
    run = subprocess.run([sys.executable, "-m", "stages.pretrain_mlm"], cwd=workdir, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != 0 and "pretrain.init_from" in run.stderr and "data/external" in run.stderr

    with pytest.raises(ParamsError, match=r"pretrain.init_from: .*not null, a model directory"):
        load_params(_params(workdir / "bad.yaml", "./no/such/dir"))
