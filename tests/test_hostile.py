"""The hostile-but-fair user: one row per thing a user might type or hand over, what must come back, and a check
that nothing on disk changed (or only the output asked for). Grows with every bug found: add a row.

Each case runs through a public entry point exactly as a user reaches it (the lmpipe-predict / lmpipe-generate
`main`, a stage's `main` in a project directory, the params loader, the data loader, the tracker) inside a
sandbox directory, and asserts
  - the outcome: an error of one line that names the file, key, row or input (`error=`), or success (`ok=True`),
    or a warning in the log (`warns=`);
  - the tree: every file under the sandbox byte-identical afterwards (except the paths in `creates`).

Issue 14's classes: 1 output paths, 2 half-written outputs, 3 divergence, 4 labels, 5 data outside data/external,
6 small corpora, 7 params, 8 tracking and hub stalls, 9 CLI input. Cases 2 (kill -9, full disk) live in test_io.py;
the unknown key through `dvc exp run` in test_pipeline_e2e.py.
"""

from __future__ import annotations

import copy
import importlib
import io
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the stages package, as `python -m stages.x` finds it
    sys.path.insert(0, str(ROOT))

TEXTS = ["a superb film", "not good at all, the plot was dull", "great", "awful acting", "a fine story"]
TINY = {
    "data": {"builtin": {"corpus_documents": 300, "train_size": 60, "validation_size": 20, "test_size": 20}},
    "tokenizer": {"vocab_size": 300, "max_length": 32},
    "model": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "max_position": 32},
    "pretrain": {"train": {"batch_size": 8, "steps": 4, "eval_every": 2, "checkpoint_every": 0, "log_every": 1}},
    "finetune": {"train": {"batch_size": 8, "epochs": 1, "checkpoint_every": 0}},
    "tracking": {"enabled": False},
}

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str  # item-number and what the user does
    run: str  # predict | generate | params | data | stage | tracker
    args: list[str] = field(default_factory=list)  # CLI arguments; "{model}" and "{sandbox}" are filled in
    files: dict[str, bytes | str] = field(default_factory=dict)  # written into the sandbox first
    stdin: bytes | None = None
    params: dict = field(default_factory=dict)  # merged into the project's params.yaml (stage, data, params)
    params_text: str | None = None  # params.yaml exactly as given (params)
    edit: tuple[str, str] | None = None  # (old, new) text replaced in the written params.yaml (params)
    stage: str = ""  # stages.<stage> for run == stage; "download+tokenize" runs both
    error: str | None = None  # the one-line error must contain this
    ok: bool = False  # success expected
    warns: str | None = None  # a warning in the log must contain this
    creates: tuple[str, ...] = ()  # the only paths allowed to change
    stdout: str | None = None  # success: stdout must contain this


def csv_rows(labels: list[str], header: str = "text,label") -> str:
    return header + "\n" + "".join(f"review number {i} is here,{label}\n" for i, label in enumerate(labels))


NAMES = ["negative", "positive"] * 10
MIXED = NAMES[:6] + ["1"] + NAMES[7:]  # row 7 holds a 1 among names
CASED = NAMES[:6] + ["Positive"] + NAMES[7:]  # row 7: another spelling of a class
FILES = {"source": "files", "files": {"train": "data/external/train.csv", "test": "data/external/test.csv"}}
GOOD_TEST = csv_rows(NAMES)

CASES = [
    # 1: output paths can never destroy anything (-o / runs as an unprivileged user: test_output_root_...)
    Case("1-output-dot", "predict", ["{model}", "a film", "-o", "."], error=".: is a directory"),
    Case("1-output-dot-slash", "predict", ["{model}", "a film", "-o", "./"], error="./: is a directory"),
    Case("1-output-dotdot", "predict", ["{model}", "a film", "-o", ".."], error="..: is a directory"),
    Case("1-output-existing-dir", "predict", ["{model}", "a film", "-o", "reports"], error="reports: is a directory",
         files={"reports/keep.csv": "mine\n"}),
    Case("1-output-existing-dir-slash", "predict", ["{model}", "a film", "-o", "reports/"],
         error="reports/: is a directory", files={"reports/keep.csv": "mine\n"}),
    Case("1-output-missing-dir", "predict", ["{model}", "a film", "-o", "new/x.csv"], ok=True,
         creates=("new", "new/x.csv")),
    Case("1-output-file-slash", "predict", ["{model}", "a film", "-o", "notes.txt/"], error="notes.txt/: ends with '/'",
         files={"notes.txt": "mine\n"}),
    Case("1-output-under-a-file", "predict", ["{model}", "a film", "-o", "notes.txt/x.csv"],
         error="notes.txt is not a directory", files={"notes.txt": "mine\n"}),
    Case("1-output-is-the-input", "predict", ["{model}", "--file", "in.txt", "-o", "in.txt"],
         error="is the input file", files={"in.txt": "a film\n"}),
    Case("1-output-in-the-model", "predict", ["{model}", "a film", "-o", "{model}/config.json"],
         error="would overwrite a file of the model directory"),
    Case("1-output-existing-file-replaced", "predict", ["{model}", "a film", "-o", "old.csv"], ok=True,
         files={"old.csv": "old predictions\n"}, creates=("old.csv",)),
    # 3: divergence
    Case("3-params-lr-inf", "params", params={"lr": float("inf")}, error="lr: must be a finite number"),
    Case("3-params-lr-nan", "params", params={"lr": float("nan")}, error="lr: must be a finite number"),
    Case("3-params-pretrain-lr-inf", "params", params={"pretrain": {"lr": float("inf")}},
         error="pretrain.lr: must be a finite number"),
    Case("3-params-epochs-inf", "params", params={"finetune": {"train": {"epochs": float("inf")}}},
         error="finetune.train.epochs: must be a finite number"),
    Case("3-params-steps-inf", "params", params={"pretrain": {"train": {"steps": float("inf")}}},
         error="pretrain.train.steps: must be a finite whole number"),
    Case("3-pretrain-lr-10000", "stage", stage="pretrain_mlm", params={"pretrain": {"lr": 10000.0}},
         error="pretrain-mlm: training diverged at step"),
    Case("3-finetune-lr-10000", "stage", stage="finetune", params={"lr": 10000.0},
         error="finetune: training diverged at step"),
    Case("3-predict-nan-weights", "predict", ["{nan_model}", "a film"], error="holds NaN or infinite values"),
    # 4: labels
    Case("4-mixed-label-types", "data", params=FILES,
         files={"data/external/train.csv": csv_rows(MIXED), "data/external/test.csv": GOOD_TEST},
         error="data/external/train.csv: row 7: label '1' in column 'label' is a number, but the other labels are names "
               "(negative, positive)"),
    Case("4-case-variant-warns", "data", params=FILES,
         files={"data/external/train.csv": csv_rows(CASED), "data/external/test.csv": GOOD_TEST},
         warns="classes 'positive' (rows 2, 4, 6, 8, 10 and 5 more) and 'Positive' (row 7) differ only in case"),
    Case("4-case-variant-strict", "data", params={**FILES, "strict_labels": True},
         files={"data/external/train.csv": csv_rows(CASED), "data/external/test.csv": GOOD_TEST},
         error="train.csv: column 'label': classes 'positive' (rows 2, 4, 6, 8, 10 and 5 more) and 'Positive' (row 7)"),
    Case("4-space-variant-strict", "data", params={**FILES, "strict_labels": True},
         files={"data/external/train.csv": csv_rows(NAMES[:6] + ['"very  positive"'] * 7 + ["very positive"] * 7),
                "data/external/test.csv": GOOD_TEST},
         error="differ only in case or spaces"),
    Case("4-rare-class-warns", "data", params=FILES,
         files={"data/external/train.csv": csv_rows(NAMES + ["neutral", "neutral"]),
                "data/external/test.csv": GOOD_TEST},
         warns="class 'neutral' has 2 example(s) (rows 21, 22), fewer than 5"),
    Case("4-duplicate-header", "data", params=FILES,
         files={"data/external/train.csv": csv_rows(NAMES, header="text,label,label").replace(
             ",negative\n", ",negative,x\n").replace(",positive\n", ",positive,x\n"), "data/external/test.csv": GOOD_TEST},
         error="train.csv: line 1 (the header): column 'label' appears twice"),
    Case("4-jsonl-duplicate-key", "data",
         params={"source": "files", "files": {"train": "data/external/train.jsonl", "test": "data/external/test.csv"}},
         files={"data/external/train.jsonl": '{"text": "a", "label": "negative", "label": "positive"}\n',
                "data/external/test.csv": GOOD_TEST},
         error="train.jsonl: line 1: invalid JSON: key 'label' appears twice"),
    Case("4-repeated-header-rows", "data", params=FILES,
         files={"data/external/train.csv": csv_rows(NAMES) + "text,label\n" + csv_rows(NAMES).split("\n", 1)[1],
                "data/external/test.csv": GOOD_TEST},
         warns="class 'label' has 1 example(s) (row 21), fewer than 5"),
    # 5: data outside data/external
    Case("5-files-absolute-outside", "data",
         params={"source": "files", "files": {"train": "{sandbox}/elsewhere/train.csv",
                                              "test": "data/external/test.csv"}},
         files={"elsewhere/train.csv": GOOD_TEST, "data/external/test.csv": GOOD_TEST},
         error="data.files.train: {sandbox}/elsewhere/train.csv is outside data/external/"),
    Case("5-files-dotdot", "data",
         params={"source": "files", "files": {"train": "data/external/../../elsewhere/train.csv",
                                              "test": "data/external/test.csv"}},
         files={"elsewhere/train.csv": GOOD_TEST, "data/external/test.csv": GOOD_TEST},
         error="data.files.train: data/external/../../elsewhere/train.csv is outside data/external/"),
    Case("5-corpus-outside", "data",
         params={**FILES, "files": {**FILES["files"], "corpus": "corpus.txt"}},
         files={"corpus.txt": "one document\n", "data/external/train.csv": GOOD_TEST,
                "data/external/test.csv": GOOD_TEST},
         error="data.files.corpus: corpus.txt is outside data/external/"),
    Case("5-hub-local-dir-outside", "data", params={"source": "hub", "hub": {"path": "./my_dataset"}},
         files={"my_dataset/train.csv": GOOD_TEST}, error="data.hub.path: ./my_dataset is outside data/external/"),
    Case("5-files-inside-ok", "data", params=FILES,
         files={"data/external/train.csv": GOOD_TEST, "data/external/test.csv": GOOD_TEST}, ok=True),
    # 6: small or odd corpora (the previous tokenizer and blocks must survive)
    Case("6-one-document-corpus", "stage", stage="download+tokenize",
         params={"data": {"builtin": {"corpus_documents": 1}}},
         error="data/raw/corpus: 1 document(s); tokenizer.heldout_fraction=0.02 holds out 1, leaving none",
         creates=("data/raw", "data/raw/corpus", "data/raw/corpus/shard-00000.parquet", "data/raw/train.parquet", "data/raw/validation.parquet",
                  "data/raw/test.parquet", "data/raw/labels.json", "reports", "reports/data.json")),
    Case("6-36-document-corpus", "stage", stage="download+tokenize",
         params={"data": {**FILES, "files": {**FILES["files"], "corpus": "data/external/corpus.txt"}}},
         files={"data/external/train.csv": GOOD_TEST, "data/external/test.csv": GOOD_TEST,
                "data/external/corpus.txt": "".join(f"short document number {i}\n" for i in range(36))},
         error="data/raw/corpus: the 1 held-out documents (tokenizer.heldout_fraction=0.02) hold 6 tokens, "
               "fewer than one block of 32",
         creates=("data/raw", "data/raw/corpus", "data/raw/corpus/shard-00000.parquet", "data/raw/train.parquet", "data/raw/validation.parquet",
                  "data/raw/test.parquet", "data/raw/labels.json", "reports", "reports/data.json")),
    Case("6-fewer-blocks-than-a-batch", "stage", stage="pretrain_mlm",
         params={"pretrain": {"train": {"batch_size": 4096}}},
         error="data/tokenized/mlm_train.npy: 1188 training blocks, fewer than one batch "
               "(pretrain.train.batch_size=4096)"),
    # 7: params, wherever they are read
    Case("7-duplicate-key", "params", edit=("seed: 42\n", "seed: 42\nseed: 7\n"),
         error="params.yaml: line 2: duplicate key 'seed' (first on line 1)"),
    Case("7-duplicate-nested-key", "params", edit=("  vocab_size: 300\n", "  vocab_size: 300\n  vocab_size: 200\n"),
         error="duplicate key 'vocab_size'"),
    Case("7-empty-file", "params", params_text="", error="params.yaml: is empty"),
    Case("7-comments-only", "params", params_text="# nothing yet\n", error="params.yaml: is empty"),
    Case("7-vocab-size-huge", "params", params={"tokenizer": {"vocab_size": 10 ** 9}},
         error="tokenizer.vocab_size: must be in [100, 1,000,000] (the embeddings"),
    Case("7-max-length-huge", "params", params={"tokenizer": {"max_length": 10 ** 6}, "model": {"max_position": 10 ** 6}},
         error="tokenizer.max_length: must be in [8, 32,768] (attention memory"),
    Case("7-batch-size-huge", "params", params={"finetune": {"train": {"batch_size": 10 ** 7}}},
         error="finetune.train.batch_size: must be <= 65,536 examples per forward pass"),
    Case("7-model-too-large", "params", params={"model": {"hidden": 65536, "heads": 1, "intermediate": 262144}},
         error="model: about 5.16e+10 parameters, more than 1e+10: training needs 16 bytes each"),
    Case("7-builtin-corpus-huge", "params", params={"data": {"builtin": {"corpus_documents": 10 ** 10}}},
         error="data.builtin.corpus_documents: must be <= 10,000,000"),
    Case("7-unknown-key-any-stage", "stage", stage="check_params", params={"finetune": {"lr_scael": 2.0}},
         error="finetune.lr_scael: unknown key"),
    # 8: tracking and hub stalls (the sqlite store: test_tracking_store_that_cannot_be_created_...)
    Case("8-generate-offline-hub-id", "generate", ["gpt2", "hello"], error="gpt2: cannot load"),
    Case("8-finetune-offline-hub-base-model", "stage", stage="finetune",
         params={"finetune": {"base_model": "bert-base-uncased"}},
         error="finetune.base_model: bert-base-uncased: cannot load (the hub is unreachable: offline mode"),
    Case("8-pretrain-offline-hub-init-from", "stage", stage="pretrain_mlm",
         params={"pretrain": {"init_from": "bert-base-uncased"}},
         error="pretrain.init_from: bert-base-uncased: cannot load (the hub is unreachable: offline mode"),
    # 9: what people type
    Case("9-predict-binary-stdin", "predict", ["{model}"], stdin=b"\xff\xfe\x00b\x00a\x00d\x00\n",
         error="stdin: line 1: not valid UTF-8 (byte offset 0"),
    Case("9-predict-nul-stdin", "predict", ["{model}"], stdin=b"good text\n\x00\x01\x02\n",
         error="stdin: line 2: a NUL byte"),
    Case("9-predict-binary-file", "predict", ["{model}", "--file", "in.txt"], files={"in.txt": b"ok\n\x89PNG\x00\n"},
         error="in.txt: line 2: not valid UTF-8"),
    Case("9-predict-options-before-texts", "predict", ["{model}", "--no-progress", "a film", "awful"], ok=True,
         stdout="a film"),
    Case("9-predict-options-between-texts", "predict", ["{model}", "a film", "--format", "jsonl", "awful"], ok=True,
         stdout='"text": "awful"'),
    Case("9-predict-corrupt-weights-one-line", "predict", ["{broken_model}", "a film"],
         error="{broken_model}: cannot load the weights"),
    Case("9-generate-binary-prompt-file", "generate", ["{clm}", "--prompt-file", "p.bin"],
         files={"p.bin": b"\x00\x01\xff\xfe"}, error="--prompt-file p.bin: line 1: not valid UTF-8"),
    Case("9-generate-binary-stdin", "generate", ["{clm}"], stdin=b"The \xc3\x28 film",
         error="stdin: line 1: not valid UTF-8 (byte offset 4"),
    Case("9-generate-options-before-prompt", "generate", ["{clm}", "--max-new-tokens", "3", "--greedy", "The film"],
         ok=True, stdout="The film"),
    # behaved well before, kept so they stay that way
    Case("ok-predict-missing-model", "predict", ["missing-model", "a film"], error="missing-model: model directory not found"),
    Case("ok-predict-empty-argument", "predict", ["{model}", " "], error="argument 1: empty text"),
    Case("ok-predict-missing-column", "predict", ["{model}", "--file", "in.csv"], files={"in.csv": "review\nfine\n"},
         error="in.csv: column 'text' not found"),
    Case("ok-params-lr-word", "params", params={"lr": "fast"}, error="lr: expected float, got 'fast'"),
    Case("ok-params-dvc-exponent", "params", edit=("\nlr: 0.0003\n", "\nlr: 2e-05\n"), ok=True),
    Case("ok-data-label-outside-set", "data", params=FILES,
         files={"data/external/train.csv": GOOD_TEST, "data/external/test.csv": csv_rows(NAMES + ["maybe"])},
         error="test.csv: row 21: label 'maybe' is not one of the allowed labels"),
]


# --------------------------------------------------------------------------------------------- fixtures


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def _merge(tree: dict, override: dict) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = copy.deepcopy(value)


def _params(override: dict) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    _merge(params, TINY)
    _merge(params, override)
    return params


def _write_params(directory: Path, override: dict) -> None:
    (directory / "params.yaml").write_text(yaml.safe_dump(_params(override), sort_keys=False))


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch, tmp_path):
    """No MLflow writes, no real hub: a closed local port as the endpoint, an empty cache."""
    monkeypatch.setenv("LMPIPE_TRACKING", "0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # a case may switch it on
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed}")


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(TEXTS * 3, trainers.WordPieceTrainer(
        vocab_size=80, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny classifier, the same with a NaN weight, one with a truncated weights file, and a tiny causal LM."""
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    from lmpipe.config.clm_schema import ClmTokenizerParams
    from lmpipe.text.tokenizers import train_bpe_tokenizer

    root = tmp_path_factory.mktemp("models")
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    model = BertForSequenceClassification(config)
    paths = {"model": root / "classifier", "nan_model": root / "diverged", "broken_model": root / "broken"}
    for name in paths.values():
        model.save_pretrained(name)
        tokenizer.save_pretrained(name)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    model.save_pretrained(paths["nan_model"])
    weights = paths["broken_model"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a download cut short
    clm_tokenizer = train_bpe_tokenizer(TEXTS * 4, ClmTokenizerParams(
        vocab_size=300, min_frequency=1, end_of_text="<|endoftext|>", heldout_fraction=0.1, train_documents=None,
        workers=1), 32)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(clm_tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                     bos_token_id=clm_tokenizer.eos_token_id, eos_token_id=clm_tokenizer.eos_token_id))
    paths["clm"] = root / "clm"
    gpt.save_pretrained(paths["clm"])
    clm_tokenizer.save_pretrained(paths["clm"])
    return paths


def _run_stage(name: str, argv: list[str] | None = None) -> None:
    module = importlib.import_module(f"stages.{name}")
    old_argv = sys.argv
    sys.argv = [name, *(argv or [])]
    try:
        result = module.main()
    finally:
        sys.argv = old_argv
    if isinstance(result, int) and result != 0:
        raise SystemExit(result)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project directory after download, tokenize and pretrain-mlm with tiny params: what a user has already."""
    root = tmp_path_factory.mktemp("project")
    _write_params(root, {})
    (root / "data/external").mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("LMPIPE_TRACKING", "0")
        try:
            for stage in ("download", "tokenize_data", "pretrain_mlm"):
                _run_stage(stage)
        finally:
            torch.set_num_threads(threads)
    return root


# --------------------------------------------------------------------------------------------- running a case


def _fill(value: str, sandbox: Path, models: dict[str, Path] | None) -> str:
    value = value.replace("{sandbox}", str(sandbox))
    for name, path in (models or {}).items():
        value = value.replace("{" + name + "}", str(path))
    return value


def _fill_tree(tree, sandbox: Path):
    if isinstance(tree, dict):
        return {k: _fill_tree(v, sandbox) for k, v in tree.items()}
    return _fill(tree, sandbox, None) if isinstance(tree, str) else tree


class _Stdin(io.TextIOWrapper):
    """sys.stdin with these bytes behind it (and .buffer, as a real one has)."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data), encoding="utf-8")

    def isatty(self) -> bool:
        return False


def _one_line_error(stderr: str, program: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith(f"{program}: error:")]
    assert "Traceback" not in stderr, stderr
    assert len(errors) == 1, stderr
    return errors[0]


def run_case(case: Case, sandbox: Path, models: dict[str, Path] | None, capsys, caplog, monkeypatch) -> None:
    for name, content in case.files.items():
        path = sandbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.run in ("data", "params") and case.params_text is None:
        _write_params(sandbox, {"data": _fill_tree(case.params, sandbox)} if case.run == "data" else case.params)
    if case.params_text is not None:
        (sandbox / "params.yaml").write_text(case.params_text)
    elif case.run == "stage":
        _write_params(sandbox, case.params)
    if case.edit is not None:
        text = (sandbox / "params.yaml").read_text()
        assert case.edit[0] in text, text
        (sandbox / "params.yaml").write_text(text.replace(case.edit[0], case.edit[1], 1))
    monkeypatch.chdir(sandbox)
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", _Stdin(case.stdin))
    expected = case.error and _fill(case.error, sandbox, models)
    before = snapshot(sandbox)
    capsys.readouterr()
    caplog.clear()

    if case.run in ("predict", "generate"):
        module = importlib.import_module(f"lmpipe.cli.{case.run}")
        argv = [_fill(a, sandbox, models) for a in case.args]
        try:
            code = module.main(argv)
        except SystemExit as exit_:  # argparse, or a CLI that exits instead of returning
            code = exit_.code
        captured = capsys.readouterr()
        if case.ok:
            assert code == 0, captured.err
            if case.stdout:
                assert case.stdout in captured.out
        else:
            assert code not in (0, None), captured.out
            assert expected in _one_line_error(captured.err, f"lmpipe-{case.run}")
    else:
        from lmpipe.config.schema import load_params

        error = None
        try:
            if case.run == "params":
                load_params("params.yaml")
            elif case.run == "data":
                from lmpipe.data.loading import load_data

                params = load_params("params.yaml")
                with caplog.at_level(logging.WARNING):
                    load_data(params.data, params.seed)
            elif case.stage == "download+tokenize":
                _run_stage("download")
                _run_stage("tokenize_data")
            elif case.stage == "finetune":
                _run_stage("finetune", ["finetune"])
            else:
                _run_stage(case.stage)
        except SystemExit as exit_:
            error = exit_
        except Exception as exc:  # noqa: BLE001 - the case says what must come back
            error = exc
        if case.ok or case.warns:
            assert error is None, f"{type(error).__name__}: {error}"
        else:
            assert error is not None, "no error"
            message = capsys.readouterr().err.strip() if isinstance(error, SystemExit) else str(error)
            assert "\n" not in message.strip(), message
            assert expected in message, message
        if case.warns:
            assert any(case.warns in record.getMessage() for record in caplog.records), caplog.text

    after = snapshot(sandbox)
    changed = {path for path in before.keys() | after.keys() if before.get(path, 0) != after.get(path, 0)}
    assert changed <= set(case.creates), f"changed on disk: {sorted(changed)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case, request, tmp_path, capsys, caplog, monkeypatch):
    sandbox = tmp_path / "sandbox"
    if case.run == "stage":  # a copy of the project, with what download, tokenize and pretrain wrote
        shutil.copytree(request.getfixturevalue("project"), sandbox, symlinks=True)
    else:
        (sandbox / "work").mkdir(parents=True)
        sandbox = sandbox / "work"  # `..` stays inside the test's directory
    models = request.getfixturevalue("models") if case.run in ("predict", "generate") else None
    run_case(case, sandbox, models, capsys, caplog, monkeypatch)


# --------------------------------------------------------------------------------------------- in a sandbox


def test_output_root_is_refused_in_a_guarded_sandbox(models, tmp_path, monkeypatch, capsys):
    """1: `-o /`. The old cleanup here was rmtree('/'), so the case runs with every call that could create, rename
    or remove something at the top of the file system replaced by a failing guard (a regression fails the test, it
    cannot touch the system), from a working directory in tmp_path."""
    from lmpipe.cli.predict import main

    def at_root(path) -> bool:
        path = Path(os.path.abspath(os.fspath(path)))
        return path == Path("/") or path.parent == Path("/")

    def guard(function, *positions):
        def guarded(*args, **kwargs):
            if any(at_root(args[i]) for i in positions if i < len(args)):
                raise AssertionError(f"{function.__name__}{args} at the file system's root")
            return function(*args, **kwargs)
        return guarded

    for module, name, positions in [(shutil, "rmtree", (0,)), (os, "rmdir", (0,)), (os, "remove", (0,)),
                                    (os, "unlink", (0,)), (os, "rename", (0, 1)), (os, "replace", (0, 1)),
                                    (os, "mkdir", (0,)), (os, "makedirs", (0,))]:
        monkeypatch.setattr(module, name, guard(getattr(module, name), *positions))
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kwargs):
        if dir is not None and Path(os.path.abspath(dir)) == Path("/"):
            raise AssertionError("mkdtemp at the file system's root")
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir("/"))
    assert main([str(models["model"]), "a film", "-o", "/"]) == 2
    assert _one_line_error(capsys.readouterr().err, "lmpipe-predict").endswith(
        "/: is the root directory; give a file name")
    assert sorted(os.listdir("/")) == before


def test_tracking_store_that_cannot_be_created_warns_at_once(tmp_path):
    """8: an MLflow sqlite path that is a directory: one warning naming it, and MLflow (whose retries cost ~100 s)
    is never even imported."""
    store = tmp_path / "mlflow.db"
    store.mkdir()
    (store / "keep").write_text("mine")
    script = ("import sys, warnings\n"
              "from lmpipe.tracking import Tracker\n"
              "with warnings.catch_warnings(record=True) as caught:\n"
              "    warnings.simplefilter('always')\n"
              "    with Tracker('download') as tracker:\n"
              "        tracker.log_metrics({'a': 1.0})\n"
              "print(len(caught), caught[0].message if caught else '')\n"
              "print('mlflow' in sys.modules)\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "PYTHONPATH": str(ROOT / "src")}
    env.pop("LMPIPE_TRACKING", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    count_and_message, imported = result.stdout.strip().splitlines()
    assert count_and_message.startswith("1 ") and f"sqlite store {store}: is a directory" in count_and_message
    assert imported == "False"
    assert (store / "keep").read_text() == "mine" and os.listdir(store) == ["keep"]


def test_debug_shows_the_traceback(models, capsys):
    """9: an unexpected error is one line too (its type named); --debug raises it, traceback and all."""
    from lmpipe.cli.predict import main

    with pytest.raises(RuntimeError):
        main([str(models["model"]), "a film", "--device", "no-such-device", "--debug"])
    assert main([str(models["model"]), "a film", "--device", "no-such-device"]) == 1
    line = _one_line_error(capsys.readouterr().err, "lmpipe-predict")
    assert line.startswith("lmpipe-predict: error: RuntimeError: ") and line.endswith("(--debug shows the traceback)")


@pytest.mark.parametrize("output", [".", "..", "./", "/"])
def test_bench_output_that_is_a_directory_is_refused_before_benchmarking(output, tmp_path, monkeypatch, capsys):
    """1: bench.run --output is checked before its minutes of work (it failed at the end, on with_suffix)."""
    from bench import run as bench_run

    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        bench_run.main(["--quick", "--output", output, "--wait-quiet", "0"])
    assert exit_.value.code == 2
    assert f": error: --output {output}: is " in capsys.readouterr().err.strip().splitlines()[-1]
    assert snapshot(tmp_path) == before
