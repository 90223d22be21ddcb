"""evaluate-clm: held-out perplexity per token and per byte, and sampled continuations of fixed prompts."""

from __future__ import annotations

import argparse

import torch

from lmpipe.config.clm_schema import CLM_PARAMS_FILE, load_clm_params
from lmpipe.config.loader import to_dict
from lmpipe.engine.evaluate import evaluate
from lmpipe.engine.objectives.causal_lm import CausalLM, target_bytes, unigram_loss
from lmpipe.engine.precision import resolve_precision
from lmpipe.io import atomic_outputs, write_json, write_text
from lmpipe.models.generation import generate
from lmpipe.models.load import load_causal_lm
from lmpipe.stage import start
from lmpipe.text.packing import read_blocks
from lmpipe.text.tokenizers import load_tokenizer
from lmpipe.tracking import Tracker

MODEL, TOKENIZED, REPORTS = "models/clm/model", "data/clm/tokenized", "reports/clm/evaluate"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=CLM_PARAMS_FILE)
    args = parser.parse_args(argv)
    params = start("evaluate-clm", args.params, load_clm_params)
    cfg = params.evaluate
    with Tracker("evaluate-clm", {"seed": params.seed, "evaluate": to_dict(cfg)},
                 experiment=params.tracking.experiment, enabled=params.tracking.enabled) as tracker:
        tokenizer = load_tokenizer(MODEL)
        model = load_causal_lm(MODEL)
        train_blocks = read_blocks(f"{TOKENIZED}/train.parquet")
        heldout = read_blocks(f"{TOKENIZED}/heldout.parquet")
        objective = CausalLM(model, heldout[:1], heldout,
                             eval_bytes=target_bytes(tokenizer, heldout, tokenizer.eos_token_id))
        dtype = resolve_precision(cfg.precision, torch.device("cpu"))
        metrics = {f"heldout_{k}": v for k, v in evaluate(objective, cfg.batch_size, cfg.max_batches, dtype).items()}
        # The context-free reference: what the model gains over token frequencies alone.
        metrics["unigram_loss"] = unigram_loss(train_blocks, heldout, len(tokenizer))

        s = cfg.sampling
        samples = []
        for p, prompt in enumerate(cfg.prompts):
            for k in range(cfg.samples_per_prompt):
                seed = params.seed * 1000 + p * 100 + k
                result = generate(model, tokenizer, prompt, s, seed)
                samples.append({"prompt": prompt, "seed": seed, "continuation": result.text,
                                "new_tokens": result.new_tokens, "stopped_at_end_of_text": result.stopped_at_end_of_text})
        with atomic_outputs():  # the three reports replaced together, or not at all
            write_json(f"{REPORTS}/metrics.json", metrics)
            write_json(f"{REPORTS}/samples.json", {"sampling": to_dict(s), "samples": samples})
            write_text(f"{REPORTS}/samples.md", _markdown(metrics, samples, s))
        tracker.log_metrics(metrics)
        tracker.log_artifact(f"{REPORTS}/samples.md")


def _markdown(metrics: dict, samples: list[dict], sampling) -> str:
    lines = ["# Causal LM: held-out perplexity and samples", "",
             "| metric | value |", "|---|---:|", *[f"| {k} | {v:.4f} |" for k, v in metrics.items()], "",
             f"Sampling: {'greedy' if sampling.greedy else f'temperature {sampling.temperature}, top-k {sampling.top_k}, top-p {sampling.top_p}'}"
             f", at most {sampling.max_new_tokens} new tokens, stopping at end-of-text.", ""]
    for sample in samples:
        end = " ⏎ (end of text)" if sample["stopped_at_end_of_text"] else " …"
        prompt = f"**{sample['prompt']}**" if sample["prompt"] else "(empty prompt: a new document) "
        lines.append(f"- {prompt}{sample['continuation']}{end}  (seed {sample['seed']})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
