"""Text generation from a causal LM with the KV cache, seeded, streaming tokens as they come."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from lmpipe.config.clm_schema import SamplingParams


@dataclass
class Generated:
    prompt: str
    text: str  # the continuation only, without special tokens
    new_tokens: int  # generated tokens, the end-of-text token included when it was generated
    stopped_at_end_of_text: bool


def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, sampling: SamplingParams,
             seed: int, streamer: BaseStreamer | None = None) -> Generated:
    """Continue `prompt` as the start of a new document: after the end-of-text token, as every training document
    follows one (an empty prompt samples a document from scratch). The same seed gives the same text."""
    sampling.check("sampling")
    eot = tokenizer.eos_token_id
    if eot is None:
        raise ValueError("the tokenizer has no eos_token: generation could not stop at end of text")
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    ids = torch.cat([torch.tensor([[eot]]), ids], dim=1)
    limit = _positions(model)
    if sampling.max_new_tokens >= limit:
        raise ValueError(f"max_new_tokens {sampling.max_new_tokens} leaves no room for the prompt in the model's "
                         f"{limit} positions")
    ids = ids[:, -(limit - sampling.max_new_tokens):]  # keep the end of a long prompt: that is what continues
    options = dict(max_new_tokens=sampling.max_new_tokens, eos_token_id=eot, pad_token_id=eot, use_cache=True,
                   do_sample=not sampling.greedy)
    if not sampling.greedy:  # explicit values: unset ones would take transformers' defaults (top_k 50)
        options.update(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
    model.eval()
    device = next(model.parameters()).device
    # A private RNG stream: the same seed gives the same text, and the caller's RNG state is left alone.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        out = model.generate(ids.to(device), attention_mask=torch.ones_like(ids, device=device),
                             generation_config=GenerationConfig(**options), streamer=streamer)
    new = out[0, ids.shape[1]:].tolist()
    stopped = bool(new) and new[-1] == eot
    text = tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return Generated(prompt=prompt, text=text, new_tokens=len(new), stopped_at_end_of_text=stopped)


def _positions(model: PreTrainedModel) -> int:
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(model.config, name, None)
        if isinstance(value, int):
            return value
    return 2 ** 31


class _PrintStreamer(BaseStreamer):
    """Prints each new token's text as soon as it decodes to whole characters (TextStreamer waits for spaces)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer, self.tokens, self.printed, self.prompt_seen = tokenizer, [], 0, False

    def _print_new(self, text: str) -> None:
        sys.stdout.write(text[self.printed:])
        sys.stdout.flush()
        self.printed = len(text)

    def _text(self) -> str:
        return self.tokenizer.decode(self.tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first sends the prompt
            self.prompt_seen = True
            return
        self.tokens.extend(value.reshape(-1).tolist())
        text = self._text()
        if not text.endswith("\ufffd"):  # else an incomplete UTF-8 character: wait for its next byte
            self._print_new(text)

    def end(self) -> None:
        # what is still held back (generation stopped inside a character) is printed as the final text has it
        self._print_new(self._text() + "\n")
