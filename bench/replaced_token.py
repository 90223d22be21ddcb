"""ELECTRA's replaced-token detection (Clark et al. 2020) as the pretraining objective, against pretrain-mlm's
masked LM on the same blocks, schedule and steps.

    dvc repro                                                       # the pipeline, on pretrain-mlm's encoder
    python -m bench.replaced_token --out data/external/rtd-encoder  # pretrain-mlm's blocks, model: and pretrain:
    dvc exp run -S finetune.base_model=data/external/rtd-encoder -S freeze_finetune.base_model=data/external/rtd-encoder

A generator (a masked LM of params.yaml's model with --generator-layers layers, its token embeddings tied to the
discriminator's) fills the masked positions (pretrain.mask_rate, all [MASK]) with tokens sampled from its own
predictions; the discriminator (params.yaml's model as a token classifier) labels every token original or replaced.
The loss per step is the generator's mean masked-LM loss plus --discriminator-weight times the discriminator's mean
per-token loss (ELECTRA's 50). Both train in lmpipe's engine with pretrain.train (steps, batch, schedule, precision)
at pretrain.lr, or --lr. The discriminator's encoder (and ModernBERT's prediction head, which the classifier reuses)
is saved as a masked-LM directory with the tokenizer, which a finetune section reads as its base_model; its decoder
is the tied embedding matrix, never trained. Writes each evaluation (the generator's held-out perplexity, the
discriminator's loss, accuracy and recall of replaced tokens) as JSON.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForTokenClassification,
    PretrainedConfig,
)

from lmpipe.engine.accel.sparse_mlm import final_hidden_at
from lmpipe.engine.objectives.base import IGNORE, row_uniforms
from lmpipe.engine.objectives.masked_lm import MaskedLM, mlm_logits


class GeneratorAndDiscriminator(nn.Module):
    """The two models ELECTRA trains together, as one module for the engine (one optimizer over both)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        # ELECTRA ties the token embeddings (input, and the generator's output projection) of the two models.
        generator.set_input_embeddings(discriminator.get_input_embeddings())
        generator.get_output_embeddings().weight = discriminator.get_input_embeddings().weight


class ReplacedTokenDetection(MaskedLM):
    """The generator's masked-LM loss plus `discriminator_weight` x the discriminator's per-token loss.

    The generator's samples are drawn by inverse CDF from one uniform per position, keyed like the masks by
    (seed, step, example), so an evaluation scores the same replacements however it is batched."""

    name = "replaced_token_detection"

    def __init__(self, model: GeneratorAndDiscriminator, *args, discriminator_weight: float, **kwargs):
        super().__init__(model, *args, **kwargs)
        self.discriminator_weight = discriminator_weight

    def mask(self, input_ids: torch.Tensor, keys: np.ndarray) -> dict[str, torch.Tensor]:
        batch = super().mask(input_ids, keys)  # streams 0-2; stream 3 is independent of them
        batch["sample_uniforms"] = torch.from_numpy(row_uniforms(keys, input_ids.shape[1], streams=4)[3])
        return batch

    @torch.no_grad()
    def corrupt(self, batch: dict[str, torch.Tensor], logits: torch.Tensor,
                positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The discriminator's input: the original tokens, with a sample of the generator's `logits` at each
        masked position (flat indices `positions`); which tokens differ from the original; which are scored
        (not special tokens)."""
        cdf = logits.float().softmax(-1).cumsum(-1)
        uniforms = batch["sample_uniforms"].reshape(-1)[positions].to(cdf) * cdf[:, -1]
        sampled = torch.searchsorted(cdf, uniforms.unsqueeze(1)).squeeze(1).clamp_(max=cdf.shape[1] - 1)
        labels = batch["labels"]
        original = torch.where(labels != IGNORE, labels, batch["input_ids"])
        corrupted = original.clone().reshape(-1)
        corrupted[positions] = sampled
        corrupted = corrupted.reshape(original.shape)
        scored = ~torch.isin(original, self.special_ids.to(original.device))
        return corrupted, (corrupted != original).float(), scored

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        generator, discriminator = self.model.generator, self.model.discriminator
        logits = mlm_logits(generator, final_hidden_at(generator.base_model, batch)).float()
        targets = batch["targets"]  # padded with IGNORE to a bucketed count (MaskedLM.gather_targets)
        valid = targets != IGNORE
        generator_loss = F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum")
        corrupted, replaced, scored = self.corrupt(batch, logits[valid].detach(), batch["positions"][valid])
        scores = discriminator(input_ids=corrupted).logits.squeeze(-1).float()[scored]
        replaced = replaced[scored]
        discriminator_loss = F.binary_cross_entropy_with_logits(scores, replaced, reduction="sum")
        generated, scored_count = valid.sum(), scored.sum()
        predicted = (scores > 0).float()
        # Both means, as ELECTRA weights them, over this batch's generator targets (the engine's normaliser).
        weight = self.discriminator_weight * generated / scored_count.clamp(min=1)
        return {"loss_sum": generator_loss + weight * discriminator_loss, "targets": generated,
                "generator_loss_sum": generator_loss.detach(),
                "correct": ((logits.argmax(-1) == targets) & valid).sum(),
                "discriminator_loss_sum": discriminator_loss.detach(), "scored": scored_count,
                "discriminator_correct": (predicted == replaced).sum(), "replaced": replaced.sum(),
                "replaced_found": (predicted * replaced).sum()}

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        generator_loss = sums["generator_loss_sum"] / max(sums["targets"], 1)
        return {"loss": sums["loss_sum"] / max(sums["targets"], 1),
                "generator_perplexity": math.exp(min(generator_loss, 50.0)),
                "generator_accuracy": sums["correct"] / max(sums["targets"], 1),
                "discriminator_loss": sums["discriminator_loss_sum"] / max(sums["scored"], 1),
                "discriminator_accuracy": sums["discriminator_correct"] / max(sums["scored"], 1),
                "replaced_fraction": sums["replaced"] / max(sums["scored"], 1),
                "replaced_recall": sums["replaced_found"] / max(sums["replaced"], 1)}


def build_pair(config: PretrainedConfig, generator_layers: int) -> GeneratorAndDiscriminator:
    """A discriminator of `config` (a masked-LM config of lmpipe.models.build) and its shallower generator."""
    discriminator_config = copy.deepcopy(config)
    discriminator_config.num_labels = 1
    generator_config = copy.deepcopy(config)
    generator_config.num_hidden_layers = generator_layers
    return GeneratorAndDiscriminator(
        AutoModelForMaskedLM.from_config(generator_config, attn_implementation="sdpa"),
        AutoModelForTokenClassification.from_config(discriminator_config, attn_implementation="sdpa"))


def discriminator_as_masked_lm(pair: GeneratorAndDiscriminator, config: PretrainedConfig) -> nn.Module:
    """A masked-LM model of `config` holding the discriminator's weights (all but its token classifier), the form
    a finetune section's base_model reads."""
    model = AutoModelForMaskedLM.from_config(config, attn_implementation="sdpa")
    weights = {k: v for k, v in pair.discriminator.state_dict().items() if not k.startswith("classifier.")}
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f"discriminator weights with no place in the masked LM: {result.unexpected_keys}")
    model.tie_weights()
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the discriminator's directory, e.g. data/external/rtd-encoder")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--tokenizer", default="data/tokenizer")
    parser.add_argument("--blocks", default="data/tokenized", help="mlm_train.npy and mlm_heldout.npy")
    parser.add_argument("--generator-layers", type=int, default=2)
    parser.add_argument("--discriminator-weight", type=float, default=50.0)
    parser.add_argument("--lr", type=float, default=None, help="the peak rate; default pretrain.lr")
    parser.add_argument("--steps", type=int, default=None, help="default pretrain.train's budget")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():  # checked before training; a user's directory is never replaced
        raise SystemExit(f"--out {out}: already exists; name a new directory")

    from lmpipe.config.schema import load_params
    from lmpipe.engine import distributed
    from lmpipe.engine.accel.cpu_kernels import use_fast_cpu_kernels
    from lmpipe.engine.loop import train
    from lmpipe.models.build import encoder_config
    from lmpipe.models.save import save_model
    from lmpipe.text.packing import read_blocks
    from lmpipe.text.tokenizers import load_tokenizer

    params = load_params(args.params)
    cfg = params.pretrain
    train_cfg = cfg.train if args.steps is None else dataclasses.replace(
        cfg.train, steps=args.steps, epochs=None, tokens=None, minutes=None)
    lr = cfg.lr if args.lr is None else args.lr
    tokenizer = load_tokenizer(args.tokenizer)
    config = encoder_config(params.model, tokenizer)
    torch.manual_seed(params.seed)
    pair = build_pair(config, args.generator_layers)
    if train_cfg.fast_cpu_kernels:  # the engine swaps the attention of the model it is given, not of its parts
        for model in (pair.generator, pair.discriminator):
            use_fast_cpu_kernels(model)
    objective = ReplacedTokenDetection(
        pair, read_blocks(f"{args.blocks}/mlm_train.npy"), read_blocks(f"{args.blocks}/mlm_heldout.npy"),
        discriminator_weight=args.discriminator_weight, mask_rate=cfg.mask_rate, mask_token_fraction=1.0,
        random_token_fraction=0.0, mask_token_id=tokenizer.mask_token_id,
        special_token_ids=tokenizer.all_special_ids, vocab_size=len(tokenizer), eval_seed=params.seed)
    started = time.perf_counter()
    result = train(objective, train_cfg, lr=lr, seed=params.seed, dist_info=distributed.setup(),
                   desc="replaced-token-detection")
    seconds = time.perf_counter() - started
    save_model(discriminator_as_masked_lm(pair, config), tokenizer, out)  # the tokenizer reads model.max_position
    report = {"generator_layers": args.generator_layers, "discriminator_weight": args.discriminator_weight,
              "lr": lr, "steps": result.summary["steps"], "tokens": result.summary["tokens"],
              "precision": result.summary["precision"], "wall_seconds": round(seconds, 1),
              "tokens_per_s": result.telemetry["tokens_per_s"], "evaluations": result.evals}
    (out / "replaced_token_detection.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "evaluations"} | {"last": result.evals[-1]}))


if __name__ == "__main__":
    main()
