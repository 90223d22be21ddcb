"""lmpipe-predict: labels and class probabilities from a text-classification model directory.

Works on any classifier the pipeline wrote (models/finetune, models/freeze-finetune, models/finetune-scratch)
and on any Hugging Face text-classification directory (config.json, weights, tokenizer files).

    lmpipe-predict models/finetune "a superb film" "not good at all"
    lmpipe-predict models/finetune --file reviews.csv --text-column review -o predictions.jsonl
    cat reviews.txt | lmpipe-predict models/finetune --format jsonl

Texts come from arguments, from --file (.txt: one text per non-empty line; .csv/.tsv/.jsonl/.json/.parquet:
the --text-column) or, with neither, from stdin (one UTF-8 text per non-empty line). Out come, per text in input
order, the label, its probability and every class's probability (`p_<label>`), as CSV or JSONL, on stdout or
in --output (a file, written atomically; never a directory, the input or a file in the model directory).
Batched; a progress bar on stderr when there is more than one batch. Options may come before or after the
texts; an error is one line (--debug: the traceback).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np

from lmpipe.io import OutputPathError, decode_text, resolve_output
from lmpipe.models.load import ModelDirError, check_model_dir

FORMATS = ("csv", "jsonl")


class PredictError(ValueError):
    """Bad input to lmpipe-predict: the message names the model directory, file or row."""


def read_texts(texts: Sequence[str], file: str | None, text_column: str, stdin: TextIO | None) -> list[str]:
    """The texts to classify, from exactly one of: arguments, a file, stdin (bytes, decoded as UTF-8 here so
    binary input is named, not passed to the tokenizer)."""
    if texts and file:
        raise PredictError("give texts as arguments or with --file, not both")
    if file and file != "-":
        from lmpipe.data.sources import DataError, read_table

        try:
            return read_table(file, text_column)["text"].tolist()
        except DataError as e:
            raise PredictError(str(e)) from None
    if texts:
        empty = [i for i, text in enumerate(texts, 1) if not text.strip()]
        if empty:
            raise PredictError(f"argument {empty[0]}: empty text")
        for i, text in enumerate(texts, 1):
            try:  # arguments that were not UTF-8 arrive with surrogate escapes
                decode_text(text.encode("utf-8", "surrogateescape"), f"argument {i}")
            except ValueError as e:
                raise PredictError(str(e)) from None
        return list(texts)
    if stdin is None or (file != "-" and stdin.isatty()):
        raise PredictError("no texts: give them as arguments, with --file, or on stdin")
    data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
    try:
        lines = decode_text(data, "stdin").split("\n")
    except ValueError as e:
        raise PredictError(str(e)) from None
    lines = [line.rstrip("\r") for line in lines]
    texts = [line for line in lines if line.strip()]  # as for .txt files: one text per non-empty line
    if not texts:
        raise PredictError("stdin: no non-empty lines")
    return texts


def predict(model_dir: str | Path, texts: Sequence[str], batch_size: int = 64, max_length: int | None = None,
            precision: str = "auto", device: str | None = None, progress: bool = False
            ) -> tuple[list[str], np.ndarray]:
    """(label names by id, probabilities N x num_labels) for `texts`, in their order."""
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lmpipe.evaluation.inference import predict_proba, require_finite_weights
    from lmpipe.text.encoding import encode_texts

    transformers.utils.logging.disable_progress_bar()  # ours is the one progress bar on stderr
    transformers.utils.logging.set_verbosity_error()
    try:
        config = check_model_dir(model_dir)
    except ModelDirError as e:
        raise PredictError(str(e)) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as e:  # noqa: BLE001
        raise PredictError(f"{model_dir}: no usable tokenizer ({type(e).__name__}: {e})") from None
    limits = [n for n in (max_length, getattr(config, "max_position_embeddings", None),
                          tokenizer.model_max_length) if n and n < 1_000_000]  # HF uses 1e30 for "no limit"
    ids = [np.asarray(x, dtype=np.int64) for x in encode_texts(tokenizer, texts, min(limits) if limits else None)]
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    except Exception as e:  # noqa: BLE001 - a truncated or foreign weights file: safetensors, OSError, ...
        reason = (str(e).strip().splitlines() or [""])[0]
        raise PredictError(f"{model_dir}: cannot load the weights ({type(e).__name__}: {reason})") from None
    try:
        require_finite_weights(model, str(model_dir))
    except ValueError as e:
        raise PredictError(str(e)) from None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked out by attention anyway
    probabilities = predict_proba(model, ids, pad, batch_size, precision=precision,
                                  device=torch.device(device) if device else None, progress=progress)
    names = [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)]
    return names, probabilities


def format_rows(texts: Sequence[str], names: list[str], probabilities: np.ndarray, fmt: str) -> str:
    """CSV (text, label, score, p_<label>...) or JSONL ({text, label, score, probabilities: {label: p}})."""
    predicted = probabilities.argmax(axis=1)
    out = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["text", "label", "score", *[f"p_{name}" for name in names]])
        for text, row, best in zip(texts, probabilities, predicted):
            writer.writerow([text, names[best], f"{row[best]:.6f}", *[f"{p:.6f}" for p in row]])
    else:
        for text, row, best in zip(texts, probabilities, predicted):
            out.write(json.dumps({"text": text, "label": names[best], "score": round(float(row[best]), 6),
                                  "probabilities": {n: round(float(p), 6) for n, p in zip(names, row)}},
                                 ensure_ascii=False) + "\n")
    return out.getvalue()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lmpipe-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a Hugging Face text-classification directory, e.g. models/finetune")
    parser.add_argument("texts", nargs="*", help="texts to classify (else --file, else stdin)")
    parser.add_argument("-f", "--file", help="a .txt/.csv/.tsv/.jsonl/.json/.parquet file of texts; '-' is stdin")
    parser.add_argument("--text-column", default="text", help="the column of texts in --file (default: text)")
    parser.add_argument("-o", "--output", help="write here (atomically) instead of stdout")
    parser.add_argument("--format", choices=FORMATS,
                        help="csv or jsonl (default: from --output's extension, else csv)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=None,
                        help="truncate to this many tokens (default: the model's maximum)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    args = parser.parse_intermixed_args(argv)  # options may follow or precede the texts
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if args.max_length is not None and args.max_length < 2:
        parser.error("--max-length must be >= 2")
    return args


def check_output(output: str, model_dir: str, file: str | None) -> None:
    """Refuse, before any work, an --output that would destroy something: a directory, the input file, a file of
    the model directory."""
    target = resolve_output(output)
    if file and file != "-" and Path(file).exists() and target.exists() and target.samefile(file):
        raise PredictError(f"--output {output}: is the input file (--file); choose another name")
    if target.exists() and target.is_relative_to(Path(model_dir).resolve()):
        raise PredictError(f"--output {output}: would overwrite a file of the model directory {model_dir}; "
                           "choose another name")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except Exception as e:  # noqa: BLE001 - one line for the user; --debug for the traceback
        if args.debug:
            raise
        known = isinstance(e, (PredictError, OutputPathError, OSError))
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"lmpipe-predict: error: {message if known else f'{type(e).__name__}: {message}'}"
              f"{'' if known else ' (--debug shows the traceback)'}", file=sys.stderr)
        return 2 if isinstance(e, (PredictError, OutputPathError)) else 1


def _run(args: argparse.Namespace) -> int:
    fmt = args.format or ("jsonl" if args.output and Path(args.output).suffix.lower() in (".jsonl", ".json")
                          else "csv")
    if args.output:
        check_output(args.output, args.model_dir, args.file)
    texts = read_texts(args.texts, args.file, args.text_column, sys.stdin)
    names, probabilities = predict(args.model_dir, texts, args.batch_size, args.max_length, args.precision,
                                   args.device, progress=not args.no_progress and len(texts) > args.batch_size)
    text = format_rows(texts, names, probabilities, fmt)
    if args.output:
        from lmpipe.io import write_text

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
