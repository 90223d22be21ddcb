"""Tokenizer training is byte-identical across fresh processes and thread counts (tokenizers#1794).

Each run trains the WordPiece tokenizer (main pipeline) and the byte-level BPE tokenizer (causal-LM pipeline) on
the builtin corpus and on real English prose (tests/fixtures/english.txt, written for this project and
dedicated to the public domain), in a new Python process, and prints the sha256 of every tokenizer.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from lmpipe.config.schema import load_params
from lmpipe.data.builtin import generate_corpus
from lmpipe.text.tokenizers import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
ENGLISH = Path(__file__).with_name("fixtures") / "english.txt"

TRAIN_ALL = """
import dataclasses, hashlib, json, sys, tempfile
from pathlib import Path
from lmpipe.text.tokenizers import train_bpe_tokenizer
from lmpipe.config.clm_schema import load_clm_params
from lmpipe.data.builtin import generate_corpus
from lmpipe.config.schema import load_params
from lmpipe.text.tokenizers import train_tokenizer

root, english = Path(sys.argv[1]), Path(sys.argv[2])
wordpiece = load_params(root / "params.yaml").tokenizer
bpe = load_clm_params(root / "clm" / "params.yaml").tokenizer
corpora = {"builtin": generate_corpus(3000, seed=7), "english": english.read_text(encoding="utf-8").splitlines()}
hashes = {}
for name, texts in corpora.items():
    # small vocabularies: many merges tie in count, which is where the order of ids decided the winner
    for kind, tok in [
            ("wordpiece", train_tokenizer(texts, dataclasses.replace(wordpiece, vocab_size=400, min_frequency=1))),
            ("bpe", train_bpe_tokenizer(texts, dataclasses.replace(bpe, vocab_size=600, min_frequency=1), 64))]:
        with tempfile.TemporaryDirectory() as tmp:
            tok.save_pretrained(tmp)
            hashes[f"{kind}/{name}"] = hashlib.sha256((Path(tmp) / "tokenizer.json").read_bytes()).hexdigest()
print(json.dumps(hashes))
"""


def _train_in_fresh_process(threads: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAYON_NUM_THREADS"}
    if threads is not None:
        env["RAYON_NUM_THREADS"] = threads
    env["PYTHONPATH"] = str(ROOT / "src")
    out = subprocess.run([sys.executable, "-c", TRAIN_ALL, str(ROOT), str(ENGLISH)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_tokenizers_are_byte_identical_in_fresh_processes_and_any_thread_count():
    runs = [_train_in_fresh_process(threads) for threads in (None, "1", None)]
    assert set(runs[0]) == {"wordpiece/builtin", "wordpiece/english", "bpe/builtin", "bpe/english"}
    for key in runs[0]:
        assert len({run[key] for run in runs}) == 1, f"{key}: {[run[key][:12] for run in runs]}"


def test_continuation_pieces_are_ordinary_vocabulary(tmp_path):
    """The continuation alphabet is reserved as special tokens during training only: afterwards `##x` is a
    plain WordPiece entry, so text containing it is not split out as a special token, decoding keeps it, and
    masked-LM masking may select it."""
    cfg = load_params(ROOT / "params.yaml").tokenizer
    texts = ENGLISH.read_text(encoding="utf-8").splitlines()
    trained = train_tokenizer(texts, dataclasses.replace(cfg, vocab_size=400, min_frequency=1))
    trained.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert sorted(tokenizer.all_special_tokens) == sorted(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    added = json.loads((tmp_path / "tokenizer.json").read_text())["added_tokens"]
    assert {t["content"] for t in added} == set(tokenizer.all_special_tokens)
    vocab = tokenizer.get_vocab()
    continuation = [t for t in vocab if t.startswith("##")]
    assert len(continuation) > 20
    # reserved first, in sorted order, right after the five special tokens
    assert sorted(vocab[t] for t in continuation)[:3] == [5, 6, 7]
    # "#" is not in this corpus's alphabet: as an added token, "##a" would have matched before the model ran
    assert tokenizer.tokenize("hall##a")[-3:] == ["[UNK]", "[UNK]", "a"]
    assert tokenizer.decode(tokenizer("the orchards")["input_ids"], skip_special_tokens=True) == "the orchards"


def test_same_corpus_same_tokenizer_in_one_process():
    cfg = load_params(ROOT / "params.yaml").tokenizer
    corpus = generate_corpus(500, seed=3)
    first, second = (train_tokenizer(corpus, cfg).backend_tokenizer.to_str() for _ in range(2))
    assert first == second
