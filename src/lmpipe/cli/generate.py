"""Text generation from a causal-LM directory: the `lmpipe-generate` command and the function behind it.

    lmpipe-generate models/clm/model "The film was"                  # sampling: temperature 0.8, top-k 50, top-p 0.95
    lmpipe-generate models/clm/model "The film was" --greedy
    echo "The plot" | lmpipe-generate models/clm/model --seed 3 --max-new-tokens 80
    lmpipe-generate gpt2 --prompt-file prompt.txt --top-k 0 --top-p 0.9

Tokens are printed as they are generated (transformers' TextStreamer); `model.generate` keeps the KV cache,
so each new token costs one position, not the whole sequence. Generation stops at the end-of-text token
(the tokenizer's eos) or after --max-new-tokens. The same seed gives the same text. Prompts are UTF-8 text; an
error is one line (--debug: the traceback). A hub id works offline from the local cache: when the hub cannot be
reached, its offline mode is set at once instead of waiting for retries.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lmpipe.config.clm_schema import SamplingParams
from lmpipe.config.loader import ParamsError
from lmpipe.models.generation import _PrintStreamer, generate
from lmpipe.models.load import check_model_dir


def load(model_path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model and tokenizer from a directory (or hub id); a clear error before loading weights otherwise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path)
    if path.exists() or model_path.startswith((".", "/", "~")):
        check_model_dir(path, head=("LMHeadModel", "ForCausalLM"), tokenizer=True)  # a ValueError: one line
    else:
        from lmpipe.hub import use_hub_offline_if_unreachable

        use_hub_offline_if_unreachable()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, attn_implementation="sdpa")
    except OSError as error:  # not found, or offline and not cached: transformers says which
        raise ValueError(f"{model_path}: cannot load ({str(error).strip().splitlines()[0]})") from None
    return model, tokenizer


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    """The prompt from the argument, --prompt-file or stdin ('-' or none), checked to be UTF-8 text."""
    if prompt_file is not None:
        if not prompt_file.is_file():
            raise ValueError(f"--prompt-file {prompt_file}: file not found")
        data, source = prompt_file.read_bytes(), f"--prompt-file {prompt_file}"
    elif prompt in (None, "-"):
        data, source = (b"" if sys.stdin.isatty() else sys.stdin.buffer.read()), "stdin"
    else:
        data, source = prompt.encode("utf-8", "surrogateescape"), "the prompt argument"
    from lmpipe.io import decode_text

    # a file's or echo's trailing newline is not part of the text to continue
    return decode_text(data, source).rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmpipe-generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("model", help="a causal-LM directory (config.json, model.safetensors, tokenizer.json) or hub id")
    parser.add_argument("prompt", nargs="?", help="the prompt; '-' or left out: read stdin (unless --prompt-file)")
    parser.add_argument("--prompt-file", type=Path, help="read the prompt from this file")
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--greedy", action="store_true", help="argmax decoding (no sampling)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=50, help="sample among the k most likely tokens (0: off)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (1.0: off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stream", action="store_true", help="print the continuation once at the end")
    parser.add_argument("--json", action="store_true", help="print one JSON object (implies --no-stream)")
    parser.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    args = parser.parse_intermixed_args(argv)  # options may follow or precede the prompt

    if args.prompt_file is not None and args.prompt not in (None, "-"):
        parser.error("give the prompt as an argument or with --prompt-file, not both")
    try:
        return _run(args)
    except Exception as error:  # noqa: BLE001 - one line for the user; --debug for the traceback
        if args.debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if not isinstance(error, (ValueError, OSError)):
            message = f"{type(error).__name__}: {message} (--debug shows the traceback)"
        print(f"lmpipe-generate: error: {message}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1


def _run(args: argparse.Namespace) -> int:
    prompt = read_prompt(args.prompt, args.prompt_file)
    sampling = SamplingParams(greedy=args.greedy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens)
    try:
        sampling.check("")
    except ParamsError as e:  # "top_k: must be ..." -> "--top-k: must be ...", the flag the user typed
        key, _, reason = str(e).partition(":")
        raise ValueError(f"--{key.replace('_', '-')}:{reason}") from None
    model, tokenizer = load(args.model)
    stream = not (args.no_stream or args.json)
    if stream:
        sys.stdout.write(prompt)
        sys.stdout.flush()
    result = generate(model, tokenizer, prompt, sampling, args.seed, streamer=_PrintStreamer(tokenizer) if stream else None)
    if args.json:
        print(json.dumps({**asdict(result), "sampling": {**asdict(sampling), "seed": args.seed}}))
    elif not stream:
        print(prompt + result.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
