"""The typed schema of params.yaml: load, coerce, validate, with the key's full path in every error.

Every knob of the pipeline is a dataclass field here, with its type and its constraints but no default value:
params.yaml sets every value, so `dvc params diff` and `dvc exp show` see all of them and no result depends on
a value hidden in code. `load_params()` reads the YAML, rejects unknown and missing keys, coerces what YAML or
DVC get subtly wrong (`dvc exp run -S lr=2e-5` writes `2e-05`, which PyYAML reads as a string), and checks
impossible values before any stage does expensive work.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lmpipe.config.loader import (
    PARAMS_FILE,
    ParamsError,
    _require,
    build_params,
    read_params,
    require_heads_divide,
    require_positive,
    require_probability,
)

SPLITS = ("train", "validation", "test")  # the labelled splits every source provides


# Upper bounds, so a typo (an extra zero or three) fails here in milliseconds instead of exhausting memory later.
MAX_VOCAB_SIZE = 1_000_000  # the embedding matrix (and the LM head) hold vocab_size x width weights


MAX_SEQUENCE_LENGTH = 32_768  # attention holds length^2 scores per head and example


MAX_FORWARD_BATCH = 65_536  # one forward pass holds micro_batch_size x length activations per layer


MAX_GENERATED_DOCUMENTS = 10_000_000  # the labelled splits are generated in memory; the corpus streams to shards


MAX_TRAINED_PARAMETERS = 10_000_000_000  # 16 bytes each to train (fp32 weights, gradients, two AdamW moments)


TRACKED_DATA_ROOT = Path("data/external")  # local data lives here, a DVC dependency of the stages that read it


@dataclass
class BuiltinData:
    corpus_documents: int
    train_size: int
    validation_size: int
    test_size: int
    label_noise: float

    def check(self, path: str) -> None:
        for name in ("corpus_documents", "train_size", "validation_size", "test_size"):
            _require(getattr(self, name) > 0, f"{path}.{name}", "must be > 0")
            _require(getattr(self, name) <= MAX_GENERATED_DOCUMENTS, f"{path}.{name}",
                     f"must be <= {MAX_GENERATED_DOCUMENTS:,} (a guard against an extra zero or three)")
        _require(0 <= self.label_noise < 0.5, f"{path}.label_noise", "must be in [0, 0.5)")


@dataclass
class FilesData:
    train: str | None
    test: str | None  # null: carved from train (data.test_fraction)
    validation: str | None  # null: carved from train (data.validation_fraction)
    text_column: str
    label_column: str
    # null: pretrain on the train split's texts; else a file, a glob, a directory of files (e.g. Parquet
    # shards), or a list of these, read in order (see corpus_files)
    corpus: str | list[str] | None
    corpus_text_column: str


@dataclass
class HubData:
    path: str
    name: str | None
    revision: str | None
    train_split: str
    test_split: str | None  # null: carved from train (data.test_fraction)
    validation_split: str | None
    text_column: str
    label_column: str
    corpus_path: str | None  # null: pretrain on the train split's texts
    corpus_name: str | None
    corpus_split: str
    corpus_text_column: str


@dataclass
class DataParams:
    source: Literal["builtin", "files", "hub"]
    validation_fraction: float
    test_fraction: float  # carved from train only where the source has no test split
    label_names: list[str] | None  # explicit id -> name order; null: inferred from the train split
    # true: refuse (not only warn about) train classes that differ only by case or spaces, or that have fewer
    # than a handful of examples
    strict_labels: bool
    max_corpus_documents: int | None
    shard_documents: int  # corpus documents per Parquet shard of data/raw/corpus (the unit of parallel encoding)
    clean_markup: bool  # HTML tags and entities (IMDB's <br />) replaced in every text (data/markup.py)
    corpus_add_train: bool  # the training split's texts are appended to the corpus (never validation or test)
    builtin: BuiltinData
    files: FilesData
    hub: HubData

    def check(self, path: str) -> None:
        _require(0 < self.validation_fraction < 1, f"{path}.validation_fraction", "must be in (0, 1)")
        _require(0 < self.test_fraction < 1, f"{path}.test_fraction", "must be in (0, 1)")
        _require(self.validation_fraction + self.test_fraction < 1, f"{path}.test_fraction",
                 f"plus validation_fraction ({self.validation_fraction:g}) must leave rows to train on (< 1)")
        if self.max_corpus_documents is not None:
            _require(self.max_corpus_documents > 0, f"{path}.max_corpus_documents", "must be > 0 or null")
        _require(self.shard_documents > 0, f"{path}.shard_documents", "must be > 0")
        if self.corpus_add_train:
            no_corpus = ((self.source == "files" and self.files.corpus is None)
                         or (self.source == "hub" and self.hub.corpus_path is None))
            _require(not no_corpus, f"{path}.corpus_add_train",
                     "the corpus already is the training split's texts (no corpus is set): set it to false, or "
                     f"name a corpus in {path}.{'files.corpus' if self.source == 'files' else 'hub.corpus_path'}")
        if self.label_names is not None:
            _require(len(self.label_names) >= 2, f"{path}.label_names", "needs at least 2 labels")
            _require(len(set(self.label_names)) == len(self.label_names), f"{path}.label_names", "must be unique")
        if self.source == "files":
            _require(self.files.train is not None, f"{path}.files.train", "is required when data.source is 'files'")
            for split in ("train", "test", "validation"):
                value = getattr(self.files, split)
                if value is not None:
                    _require(Path(value).is_file(), f"{path}.files.{split}", f"file not found: {value}")
                    _require_tracked_data(value, f"{path}.files.{split}")
            if self.files.corpus is not None:
                entries = [self.files.corpus] if isinstance(self.files.corpus, str) else self.files.corpus
                _require(len(entries) > 0, f"{path}.files.corpus", "an empty list; give files or null")
                for i, entry in enumerate(entries):
                    key = f"{path}.files.corpus" + (f"[{i}]" if isinstance(self.files.corpus, list) else "")
                    try:
                        files = corpus_files(entry)
                    except FileNotFoundError as error:
                        _require(False, key, str(error))
                    _require_tracked_data(entry, key)
                    for file in files:  # a symlink under data/external/ is followed by DVC too: not resolved
                        _require_tracked_data(str(file), key)
        if self.source == "hub":  # a local dataset directory (hub ids pass) must be tracked like a file
            for key in ("path", "corpus_path"):
                value = getattr(self.hub, key)
                if value is not None and (value.startswith((".", "/", "~")) or Path(value).exists()):
                    _require_tracked_data(value, f"{path}.hub.{key}")


CORPUS_FILE_TYPES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")


def corpus_files(entry: str) -> list[Path]:
    """The files one `data.files.corpus` entry names, in reading order: a file; a glob (`*`, `?`, `[...]`,
    `**` for subdirectories), sorted by path; or a directory: its files of a supported type (hidden ones
    skipped), sorted by name. FileNotFoundError when it names no file."""
    if glob.has_magic(entry):
        files = sorted(Path(match) for match in glob.glob(os.path.expanduser(entry), recursive=True)
                       if Path(match).is_file())
        if not files:
            raise FileNotFoundError(f"no file matches {entry}")
        return files
    path = Path(entry).expanduser()
    if path.is_dir():
        files = sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith(".")
                       and child.suffix.lower() in CORPUS_FILE_TYPES)
        if not files:
            raise FileNotFoundError(f"{entry} holds no {'/'.join(CORPUS_FILE_TYPES)} file")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {entry}")
    return [path]


def _require_tracked_data(value: str, path: str) -> None:
    """Local data must lie under data/external/ (a dependency of the stages that read it): elsewhere, DVC would
    not see it change and would serve stale results. The path is normalised, not resolved: a symlink placed
    under data/external/ is followed by DVC too."""
    root = Path(os.path.abspath(TRACKED_DATA_ROOT))
    location = Path(os.path.abspath(os.path.expanduser(value)))
    _require(location.is_relative_to(root) and location != root, path,
             f"{value} is outside {TRACKED_DATA_ROOT}/, so DVC would not rerun the pipeline when it changes; "
             f"copy (or symlink) it under {TRACKED_DATA_ROOT}/ and point this key there")


@dataclass
class SpecialTokens:
    unk: str
    pad: str
    cls: str
    sep: str
    mask: str


@dataclass
class TokenizerParams:
    vocab_size: int
    min_frequency: int
    lowercase: bool
    max_length: int  # MLM block length and classification truncation, in tokens
    heldout_fraction: float  # corpus documents held out for masked-LM evaluation
    special_tokens: SpecialTokens
    train_documents: int | None  # a seeded sample of the training documents trains the tokenizer; null: all
    workers: int  # processes encoding the corpus shards (the output is the same for any number)

    def check(self, path: str) -> None:
        check_tokenizer_streaming(self, path)
        _require(100 <= self.vocab_size <= MAX_VOCAB_SIZE, f"{path}.vocab_size",
                 f"must be in [100, {MAX_VOCAB_SIZE:,}] (the embeddings and the MLM head hold vocab_size x "
                 "model.hidden weights each)")
        _require(self.min_frequency >= 1, f"{path}.min_frequency", "must be >= 1")
        _require(8 <= self.max_length <= MAX_SEQUENCE_LENGTH, f"{path}.max_length",
                 f"must be in [8, {MAX_SEQUENCE_LENGTH:,}] (attention memory grows with its square)")
        _require(0 < self.heldout_fraction < 0.5, f"{path}.heldout_fraction", "must be in (0, 0.5)")
        tokens = dataclasses.asdict(self.special_tokens).values()
        _require(len(set(tokens)) == len(tokens), f"{path}.special_tokens", "must be distinct")


def check_tokenizer_streaming(cfg: Any, path: str) -> None:
    """The keys both pipelines' tokenizer sections share: the training sample and the encoding workers."""
    if cfg.train_documents is not None:
        _require(cfg.train_documents > 0, f"{path}.train_documents", "must be > 0 or null (every training document)")
    _require(1 <= cfg.workers <= 256, f"{path}.workers", "must be in [1, 256]")


@dataclass
class ModelParams:
    # modernbert: pre-LayerNorm, rotary positions, GeGLU, a mean-pooling classifier (measured: leaves the
    # unigram plateau where bert and roberta-prelayernorm stay on it at the default budget);
    # bert: BERT's post-LayerNorm encoder; roberta-prelayernorm: LayerNorm before each sublayer.
    # All save as plain Hugging Face directories (AutoModelForMaskedLM / ForSequenceClassification).
    architecture: Literal["modernbert", "bert", "roberta-prelayernorm"]
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_position: int
    dropout: float
    attention_dropout: float
    init_std: float  # std of the normal initialisation (BERT's initializer_range)

    def check(self, path: str) -> None:
        _require(0 < self.init_std < 1, f"{path}.init_std", "must be in (0, 1)")
        require_positive(self, path, "layers", "hidden", "heads", "intermediate", "max_position")
        _require(self.max_position <= MAX_SEQUENCE_LENGTH, f"{path}.max_position",
                 f"must be <= {MAX_SEQUENCE_LENGTH:,} (attention memory grows with the square of the length)")
        require_heads_divide(self, path, "hidden")
        require_probability(self, path, "dropout", "attention_dropout")


VARIANTS = ("finetune", "freeze-finetune", "finetune-scratch")  # the fine-tuning stages, in report order
FINETUNE_SECTIONS = tuple(variant.replace("-", "_") for variant in VARIANTS)  # their params sections
# What evaluate reports as "was it worth it?": (key, title, variant, variant it is compared against)
VARIANT_COMPARISONS = (("pretraining_gain", "pretraining gain", "finetune", "finetune-scratch"),
                       ("full_minus_frozen", "full − frozen encoder", "finetune", "freeze-finetune"))


BUDGET_KEYS = ("steps", "epochs", "tokens", "minutes")


@dataclass
class TrainParams:
    """How one training stage trains: batch, budget, optimiser, schedule, precision, evaluation, checkpoints."""

    batch_size: int  # examples (or blocks) per optimizer step, over all processes
    micro_batch_size: int | None  # per forward pass; null: batch_size / world size (no accumulation)
    # The budget: exactly one of these is set; the learning-rate schedule follows it.
    steps: int | None
    epochs: float | None
    tokens: int | None
    minutes: float | None
    optimizer: Literal["adamw", "adam", "sgd", "rmsprop"]
    momentum: float  # sgd and rmsprop
    betas: list[float]
    weight_decay: float
    warmup: float  # fraction of the budget
    schedule: Literal["linear", "cosine", "constant"]
    min_lr_ratio: float  # the schedule decays to lr * min_lr_ratio
    max_grad_norm: float | None
    precision: Literal["auto", "fp32", "bf16"]
    compile: bool
    parallel: Literal["ddp", "fsdp"]  # under torchrun: DDP replicas, or FSDP2 shards (params, grads, optimizer)
    fast_cpu_kernels: bool  # on CPU: cheap dropout masks and bf16 matmul attention (engine/accel/cpu_kernels.py)
    group_by_length: bool  # batch variable-length examples of similar length (less padding)
    eval_every: int  # optimizer steps; fine-tuning also evaluates at every epoch end
    eval_batches: int | None  # cap on evaluation batches; null: the whole evaluation set
    checkpoint_every: int  # optimizer steps; 0 disables resumable checkpoints
    log_every: int
    early_stopping_patience: int | None  # evaluations without improvement before stopping

    def check(self, path: str) -> None:
        budgets = {k: getattr(self, k) for k in BUDGET_KEYS}
        chosen = [k for k, v in budgets.items() if v is not None]
        _require(len(chosen) == 1, path, f"set exactly one budget of steps, epochs, tokens, minutes, the others to "
                                         f"null (got {chosen or 'none'})")
        _require(budgets[chosen[0]] > 0, f"{path}.{chosen[0]}", "must be > 0")
        _require(self.batch_size > 0, f"{path}.batch_size", "must be > 0")
        forward_key = "micro_batch_size" if self.micro_batch_size else "batch_size"
        _require(getattr(self, forward_key) <= MAX_FORWARD_BATCH, f"{path}.{forward_key}",
                 f"must be <= {MAX_FORWARD_BATCH:,} examples per forward pass (activations grow with it); "
                 "set micro_batch_size to accumulate a larger batch")
        if self.micro_batch_size is not None:
            _require(self.micro_batch_size > 0, f"{path}.micro_batch_size", "must be > 0")
            _require(self.batch_size % self.micro_batch_size == 0, f"{path}.micro_batch_size",
                     f"must divide batch_size ({self.batch_size})")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"{path}.betas",
                 "must be two numbers in [0, 1)")
        _require(self.weight_decay >= 0, f"{path}.weight_decay", "must be >= 0")
        _require(0 <= self.momentum < 1, f"{path}.momentum", "must be in [0, 1)")
        _require(0 <= self.warmup < 1, f"{path}.warmup", "must be in [0, 1)")
        _require(0 <= self.min_lr_ratio <= 1, f"{path}.min_lr_ratio", "must be in [0, 1]")
        if self.max_grad_norm is not None:
            _require(self.max_grad_norm > 0, f"{path}.max_grad_norm", "must be > 0 or null")
        _require(self.eval_every > 0, f"{path}.eval_every", "must be > 0")
        _require(self.checkpoint_every >= 0, f"{path}.checkpoint_every", "must be >= 0")
        _require(self.log_every > 0, f"{path}.log_every", "must be > 0")
        if self.eval_batches is not None:
            _require(self.eval_batches > 0, f"{path}.eval_batches", "must be > 0 or null")
        if self.early_stopping_patience is not None:
            _require(self.early_stopping_patience > 0, f"{path}.early_stopping_patience", "must be > 0 or null")


@dataclass
class PretrainParams:
    # null: a new encoder from `model:` with this project's tokenizer. A Hugging Face masked-LM directory (under
    # data/external/) or hub id: continue its MLM training on the corpus, encoded with its own tokenizer, before
    # fine-tuning (Sun et al. 2019, within-task pretraining); `model:` and `tokenizer:` sizes then do not apply.
    init_from: str | None
    init_revision: str | None  # hub ids: the commit/tag to pin
    lr: float  # peak learning rate of the schedule
    mask_rate: float
    mask_token_fraction: float  # of the selected tokens: replaced by [MASK]
    random_token_fraction: float  # replaced by a random token; the rest are kept unchanged
    train: TrainParams

    def check(self, path: str) -> None:
        if self.init_from is not None:
            _check_base_model(self.init_from, f"{path}.init_from", "null")
        elif self.init_revision is not None:
            _require(False, f"{path}.init_revision", "applies only to a hub id in init_from; set it to null")
        _require(0 < self.mask_rate < 1, f"{path}.mask_rate", "must be in (0, 1)")
        _require(0 <= self.mask_token_fraction <= 1, f"{path}.mask_token_fraction", "must be in [0, 1]")
        _require(0 <= self.random_token_fraction <= 1 - self.mask_token_fraction, f"{path}.random_token_fraction",
                 "must be in [0, 1 - mask_token_fraction]")
        _require(self.lr > 0, f"{path}.lr", "must be > 0")


@dataclass
class LoraParams:
    """LoRA through peft (strategy `lora`): low-rank adapters on `target_modules`; the head trains in full."""

    rank: int
    alpha: float  # the adapter's output is scaled by alpha / rank
    dropout: float
    target_modules: list[str] | None  # null: the attention projections (BERT/RoBERTa query+value)
    save_adapter: bool  # also write the adapter (with the head) to models/<stage>/adapter

    def check(self, path: str) -> None:
        _require(self.rank > 0, f"{path}.rank", "must be > 0")
        _require(self.alpha > 0, f"{path}.alpha", "must be > 0")
        _require(0 <= self.dropout < 1, f"{path}.dropout", "must be in [0, 1)")
        if self.target_modules is not None:
            _require(len(self.target_modules) > 0, f"{path}.target_modules", "must name at least one module or be null")


@dataclass
class ProbeParams:
    """strategy linear_probe: features from the frozen encoder, once, then a logistic regression fitted with L-BFGS,
    its C chosen by k-fold cross-validation on the training features (see finetune/probe.py)."""

    # mean: over the real tokens (ModernBERT); first: the first ([CLS]) token (every architecture). The probe
    # reads what the saved classifier's head computes, so only poolings a stock head computes are offered.
    pooling: Literal["mean", "first"]
    c_values: list[float]  # inverse L2 strengths tried by cross-validation (on standardised features)
    cv_folds: int  # stratified folds of the train split that pick C
    max_iter: int  # L-BFGS iterations per fit; a fit that stops here is reported as not converged
    tol: float  # L-BFGS gradient tolerance
    batch_size: int  # sequences per forward pass of the feature extraction

    def check(self, path: str) -> None:
        _require(len(self.c_values) > 0, f"{path}.c_values", "must list at least one value")
        _require(all(c > 0 for c in self.c_values), f"{path}.c_values", "values must be > 0")
        _require(len(set(self.c_values)) == len(self.c_values), f"{path}.c_values", "must not repeat a value")
        _require(2 <= self.cv_folds <= 100, f"{path}.cv_folds", "must be in [2, 100]")
        _require(self.max_iter > 0, f"{path}.max_iter", "must be > 0")
        _require(0 < self.tol < 1, f"{path}.tol", "must be in (0, 1)")
        _require(0 < self.batch_size <= MAX_FORWARD_BATCH, f"{path}.batch_size",
                 f"must be in [1, {MAX_FORWARD_BATCH:,}] (sequences per forward pass)")


BASE_MODEL_KEYWORDS = ("pretrained", "scratch")


_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class FinetuneParams:
    # pretrained: this project's encoder (models/pretrained); scratch: the same architecture, random weights;
    # anything else: a Hugging Face model directory (under data/external/, so DVC tracks it) or hub id, whose
    # own tokenizer then encodes the labelled data.
    base_model: str
    base_revision: str | None  # hub ids: the commit/tag to pin (reproducibility); null: the default branch
    # linear_probe: no gradient training; a logistic regression on frozen features becomes the final layer
    strategy: Literal["full", "frozen_encoder", "freeze_embeddings", "freeze_bottom", "gradual_unfreezing",
                      "lora", "linear_probe"]
    freeze_layers: int  # freeze_bottom: how many encoder layers from the bottom stay frozen
    unfreeze_every: float  # gradual_unfreezing: one more layer group (from the top) every this many units
    unfreeze_unit: Literal["steps", "epochs"]
    layer_lr_decay: float  # layer-wise lr decay: layer i of L gets decay**(L - i), embeddings decay**(L+1)
    lora: LoraParams
    probe: ProbeParams
    # null: plain cross-entropy; balanced: n / (classes * count[c]) from the train split; or one weight per class
    class_weights: Literal["balanced"] | list[float] | None
    max_length: int | None  # tokens per example; null: tokenizer.max_length
    truncation: Literal["head", "head_tail"]  # head_tail: first and last tokens (Sun et al. 2019)
    head_fraction: float  # head_tail: the share of max_length taken from the start of the document
    lr_scale: float  # this stage's learning rate is the top-level `lr` times this
    # this stage's random head (scratch: every weight), dropout and batch order; null: the top-level seed, which
    # also carves the data, so only this lets a user repeat one variant over seeds on the same splits
    seed: int | None
    metric: Literal["accuracy", "f1_macro", "loss"]  # the validation metric that picks the best checkpoint
    classifier_dropout: float
    train: TrainParams

    def check(self, path: str) -> None:
        _require(self.lr_scale > 0, f"{path}.lr_scale", "must be > 0")
        _require(self.seed is None or self.seed >= 0, f"{path}.seed", "must be >= 0 or null")
        _require(self.freeze_layers >= 0, f"{path}.freeze_layers", "must be >= 0")
        _require(0 <= self.classifier_dropout < 1, f"{path}.classifier_dropout", "must be in [0, 1)")
        _require(self.unfreeze_every > 0, f"{path}.unfreeze_every", "must be > 0")
        _require(0 < self.layer_lr_decay <= 1, f"{path}.layer_lr_decay", "must be in (0, 1] (1: no decay)")
        _require(0 < self.head_fraction < 1, f"{path}.head_fraction", "must be in (0, 1)")
        if self.max_length is not None:
            _require(self.max_length >= 8, f"{path}.max_length", "must be >= 8 or null")
        if isinstance(self.class_weights, list):
            _require(all(w > 0 for w in self.class_weights), f"{path}.class_weights", "weights must be > 0")
        if self.base_model not in BASE_MODEL_KEYWORDS:
            _check_base_model(self.base_model, f"{path}.base_model")
        elif self.base_revision is not None:
            _require(False, f"{path}.base_revision", "applies only to a hub id in base_model; set it to null")


def _check_base_model(value: str, path: str, keywords: str = "'pretrained', 'scratch'") -> None:
    """A local directory must hold a Hugging Face config; anything else must look like a hub id."""
    local = Path(value).expanduser()
    if local.is_dir():
        _require((local / "config.json").is_file(), path, f"{value} has no config.json (not a Hugging Face model directory)")
        return
    looks_like_path = value.startswith((".", "/", "~")) or value.count("/") > 1 or local.exists()
    _require(not looks_like_path and bool(_HUB_ID_RE.match(value)), path,
             f"{value!r} is not {keywords}, a model directory (not found) or a hub id (owner/name)")


@dataclass
class EvaluateParams:
    split: Literal["test", "validation"]
    batch_size: int
    ece_bins: int  # equal-width confidence bins of the expected calibration error
    best_metric: Literal["accuracy", "f1_macro"]  # picks the best classifier (summary, MLflow model)
    # Opt-in: log the best fine-tuned classifier as an MLflow model and register it under this name + alias.
    log_model: bool
    registered_model_name: str
    model_alias: str

    def check(self, path: str) -> None:
        _require(0 < self.batch_size <= MAX_FORWARD_BATCH, f"{path}.batch_size",
                 f"must be in [1, {MAX_FORWARD_BATCH:,}] (examples per forward pass)")
        _require(self.ece_bins > 0, f"{path}.ece_bins", "must be > 0")
        _require(bool(self.registered_model_name.strip()), f"{path}.registered_model_name", "must not be empty")
        # MLflow's alias rule, checked here so a bad alias fails before evaluation, not after it
        _require(re.fullmatch(r"[A-Za-z0-9_-]{1,255}", self.model_alias) is not None
                 and self.model_alias.lower() != "latest" and not re.fullmatch(r"[vV]\d+", self.model_alias),
                 f"{path}.model_alias", "must be letters, digits, '_' or '-', and not 'latest' or v<number>")


@dataclass
class TrackingParams:
    enabled: bool
    experiment: str


@dataclass
class Params:
    seed: int
    lr: float  # the learning rate of the fine-tuning stages (times each section's lr_scale)
    data: DataParams
    tokenizer: TokenizerParams
    model: ModelParams
    pretrain: PretrainParams
    finetune: FinetuneParams
    freeze_finetune: FinetuneParams
    # The control: the same architecture from random weights, so every report shows what pretraining buys.
    finetune_scratch: FinetuneParams
    evaluate: EvaluateParams
    tracking: TrackingParams

    def check(self, path: str = "") -> None:
        _require(self.lr > 0, "lr", "must be > 0")
        _require(self.seed >= 0, "seed", "must be >= 0")
        _require(self.model.max_position >= self.tokenizer.max_length, "model.max_position",
                 f"must be >= tokenizer.max_length ({self.tokenizer.max_length})")
        m = self.model
        estimate = (self.tokenizer.vocab_size + m.max_position) * m.hidden + m.layers * (
            4 * m.hidden * m.hidden + 2 * m.hidden * m.intermediate)
        _require_trainable_size(estimate, "model",
                                "model.layers, model.hidden, model.intermediate or tokenizer.vocab_size")
        for section in FINETUNE_SECTIONS:
            ft: FinetuneParams = getattr(self, section)
            # model.layers describes this project's encoder only; another base model (also one pretrained from
            # pretrain.init_from) is checked on load.
            own_encoder = ft.base_model == "scratch" or (ft.base_model == "pretrained" and self.pretrain.init_from is None)
            if own_encoder and ft.max_length is not None:
                _require(ft.max_length <= self.model.max_position, f"{section}.max_length",
                         f"must be <= model.max_position ({self.model.max_position}), the encoder's longest input")
            if ft.strategy == "freeze_bottom" and own_encoder:
                _require(1 <= ft.freeze_layers <= self.model.layers, f"{section}.freeze_layers",
                         f"must be in [1, model.layers={self.model.layers}] for strategy freeze_bottom")
            elif ft.strategy == "freeze_bottom":
                _require(ft.freeze_layers >= 1, f"{section}.freeze_layers", "must be >= 1 for strategy freeze_bottom")
            if isinstance(ft.class_weights, list) and self.data.label_names is not None:
                _require(len(ft.class_weights) == len(self.data.label_names), f"{section}.class_weights",
                         f"needs one weight per label ({len(self.data.label_names)} in data.label_names)")

    def finetune_section(self, name: str) -> FinetuneParams:
        """`finetune`, `freeze_finetune` or `finetune_scratch` (dashes allowed, as in the stage names)."""
        key = name.replace("-", "_")
        if key not in FINETUNE_SECTIONS:
            raise ParamsError(f"{name}: not a fine-tuning section ({', '.join(FINETUNE_SECTIONS)})")
        return getattr(self, key)


def _require_trainable_size(parameters: int, path: str, keys: str) -> None:
    _require(parameters <= MAX_TRAINED_PARAMETERS, path,
             f"about {parameters:.3g} parameters, more than {MAX_TRAINED_PARAMETERS:.0e}: training needs 16 bytes each "
             f"(weights, gradients, AdamW moments), {16 * parameters / 1e9:,.0f} GB; lower {keys}")


def load_params(path: str | Path = PARAMS_FILE, overrides: dict[str, Any] | None = None) -> Params:
    """Read, coerce and validate the main pipeline's params file; `overrides` maps dotted keys to values."""
    return read_params(path, Params, overrides)


def params_from_dict(raw: dict[str, Any]) -> Params:
    return build_params(raw, Params)
