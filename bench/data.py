"""What every row trains on: one snapshot of the config and the packed blocks built from it, as the pipeline's
tokenize stages build them, saved in a folder the row subprocesses read."""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np

from bench import REPO_ROOT


def load_config(path: str | None = None, rev: str | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> tuple[object, dict, str]:
    """The pretraining config, read once: params.yaml of the working tree (default), another file, or params.yaml
    at a git revision (`--params-rev HEAD`: the committed default, whatever is being edited in the workspace),
    with `KEY=VALUE` overrides (YAML values) applied and the result validated like params.yaml.
    Returns (params, the raw dict the workers rebuild it from, a description)."""
    import yaml

    from lmpipe.config.loader import set_dotted
    from lmpipe.config.schema import params_from_dict

    if rev:
        text = subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=REPO_ROOT, check=True, capture_output=True,
                              text=True).stdout
        commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
        raw, source = yaml.safe_load(text) or {}, f"params.yaml at git {rev} ({commit})"
    else:
        file = Path(path) if path else REPO_ROOT / "params.yaml"
        raw = yaml.safe_load(file.read_text()) or {}  # no fallback: the bench measures the params file's config
        source = str(file.relative_to(REPO_ROOT) if file.is_relative_to(REPO_ROOT) else file)
    for item in overrides:
        key, _, value = item.partition("=")
        set_dotted(raw, key, yaml.safe_load(value))
    if overrides:
        source += " with " + " ".join(overrides)
    return params_from_dict(raw), raw, source


def config_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """`--architecture` and `--set` as KEY=VALUE overrides of params.yaml (a malformed one is a usage error)."""
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
    return ([f"model.architecture={args.architecture}"] if args.architecture else []) + list(args.set)


def build_data(params, out_dir: Path) -> dict:
    """Builtin corpus -> WordPiece tokenizer -> packed blocks, as the `tokenize` stage does; saved under out_dir."""
    from lmpipe.data.builtin import generate_corpus
    from lmpipe.text.packing import pack_blocks, split_heldout
    from lmpipe.text.tokenizers import train_tokenizer

    start = time.perf_counter()
    n, corpus_seed = params.data.builtin.corpus_documents, params.seed * 10 + 4  # the sub-seed data.loading uses
    corpus = generate_corpus(n, seed=corpus_seed)
    cfg = params.tokenizer
    train_docs, heldout_docs = split_heldout(corpus, cfg.heldout_fraction, params.seed)
    tokenizer = train_tokenizer(train_docs, cfg)
    blocks = pack_blocks(tokenizer, train_docs, cfg.max_length)
    heldout = pack_blocks(tokenizer, heldout_docs, cfg.max_length)
    save_blocks(out_dir, tokenizer, blocks, heldout)
    special = np.isin(blocks, np.asarray(tokenizer.all_special_ids))
    return {"source": f"builtin generate_corpus({n}, seed={corpus_seed})", "documents": len(corpus),
            "blocks": len(blocks), "block_length": int(blocks.shape[1]), "heldout_blocks": len(heldout),
            "vocab": len(tokenizer), "vocab_size_param": cfg.vocab_size,
            "non_special_fraction": float(1.0 - special.mean()), "seconds": time.perf_counter() - start}


def build_clm_data(params, out_dir: Path) -> dict:
    """Corpus -> byte-level BPE tokenizer -> packed documents, as the `tokenize-clm` stage does; saved under
    out_dir."""
    from lmpipe.data.loading import load_data
    from lmpipe.text.packing import pack_documents, split_heldout
    from lmpipe.text.tokenizers import train_bpe_tokenizer

    start = time.perf_counter()
    corpus = load_data(params.data, params.seed).corpus
    train_docs, heldout_docs = split_heldout(corpus, params.tokenizer.heldout_fraction, params.seed)
    tokenizer = train_bpe_tokenizer(train_docs, params.tokenizer, params.model.context_length)
    blocks = pack_documents(tokenizer, train_docs, params.model.context_length)
    heldout = pack_documents(tokenizer, heldout_docs, params.model.context_length)
    save_blocks(out_dir, tokenizer, blocks, heldout)
    return {"documents": len(corpus), "blocks": len(blocks), "vocab": len(tokenizer),
            "seconds": time.perf_counter() - start}


def save_blocks(out_dir: Path, tokenizer, blocks: np.ndarray, heldout: np.ndarray) -> None:
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    np.save(out_dir / "blocks.npy", blocks)
    np.save(out_dir / "heldout.npy", heldout)


def load_blocks(data_dir: Path) -> tuple[object, np.ndarray, np.ndarray]:
    """(tokenizer, training blocks, held-out blocks) as `save_blocks` left them, the blocks as int64."""
    from lmpipe.text.tokenizers import load_tokenizer

    return (load_tokenizer(data_dir / "tokenizer"), np.load(data_dir / "blocks.npy").astype(np.int64),
            np.load(data_dir / "heldout.npy").astype(np.int64))
