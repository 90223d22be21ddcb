"""Tokenizer training, MLM block packing and labelled encoding, with the real `tokenizers` library."""

import numpy as np
import pandas as pd
import pytest
from repo_params import tokenizer_params
from transformers import AutoTokenizer

from lmpipe.data.builtin import generate_corpus
from lmpipe.io import write_table
from lmpipe.text.encoding import encode_labelled, read_labelled
from lmpipe.text.packing import pack_blocks, read_blocks, split_heldout, write_blocks
from lmpipe.text.tokenizers import train_tokenizer


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(300, seed=1)


@pytest.fixture(scope="module")
def tokenizer(corpus, tmp_path_factory):
    trained = train_tokenizer(corpus, tokenizer_params(vocab_size=500, max_length=32))
    path = tmp_path_factory.mktemp("tok")
    trained.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)  # what every later stage does


def test_saved_tokenizer_loads_with_autotokenizer(tokenizer):
    assert len(tokenizer) <= 500 and len(tokenizer) > 100
    assert [tokenizer.pad_token, tokenizer.unk_token, tokenizer.cls_token, tokenizer.sep_token,
            tokenizer.mask_token] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ids = tokenizer("The acting was NOT great.")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the acting was not great."  # lower-cased


def test_lowercase_off_keeps_case(corpus):
    tok = train_tokenizer(corpus, tokenizer_params(vocab_size=500, lowercase=False))
    assert tok.decode(tok("The Film")["input_ids"], skip_special_tokens=True) == "The Film"


def test_packed_blocks_have_fixed_length_and_no_padding(tokenizer, corpus, tmp_path):
    blocks = pack_blocks(tokenizer, corpus, 32)
    assert blocks.shape[1] == 32 and len(blocks) > 10
    assert (blocks[:, 0] == tokenizer.cls_token_id).all() and (blocks[:, -1] == tokenizer.sep_token_id).all()
    assert not (blocks == tokenizer.pad_token_id).any()
    # documents are joined by [SEP], so every token of the corpus (but the dropped tail) is in some block
    total = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in corpus)
    assert len(blocks) == total // 30
    write_blocks(tmp_path / "b.parquet", blocks)
    np.testing.assert_array_equal(read_blocks(tmp_path / "b.parquet"), blocks)


def test_pack_blocks_refuses_a_corpus_shorter_than_a_block(tokenizer):
    with pytest.raises(ValueError, match="fewer than one block"):
        pack_blocks(tokenizer, ["tiny"], 64)


def test_labelled_encoding_truncates_and_round_trips(tokenizer, tmp_path):
    frame = pd.DataFrame({"text": ["short one", " ".join(["word"] * 200)], "label": [0, 1]})
    table = encode_labelled(tokenizer, frame, max_length=32)
    write_table(tmp_path / "s.parquet", table)
    ids, labels = read_labelled(tmp_path / "s.parquet")
    assert len(ids[1]) == 32 and ids[1][-1] == tokenizer.sep_token_id
    assert 3 <= len(ids[0]) < 32 and ids[0][0] == tokenizer.cls_token_id
    assert labels.tolist() == [0, 1]


def test_heldout_split_is_deterministic_and_disjoint():
    texts = [f"doc {i}" for i in range(100)]
    train, heldout = split_heldout(texts, 0.1, seed=3)
    assert len(heldout) == 10 and not set(train) & set(heldout) and len(train) + len(heldout) == 100
    assert split_heldout(texts, 0.1, seed=3) == (train, heldout)
    assert split_heldout(texts, 0.1, seed=4)[1] != heldout
