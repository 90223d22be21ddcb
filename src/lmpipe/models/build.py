"""Models built from params: the encoder (BERT or ModernBERT) for masked-LM pretraining, GPT-2 for the causal LM."""

from __future__ import annotations

import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    ModernBertConfig,
    ModernBertForMaskedLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaPreLayerNormConfig,
    RobertaPreLayerNormForMaskedLM,
)

from lmpipe.config.clm_schema import GPTParams
from lmpipe.config.schema import ModelParams


def build_gpt2(cfg: GPTParams, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 with the sizes from params (MLP 4 x width, tied input/output embeddings)."""
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.context_length, n_embd=cfg.width,
                        n_layer=cfg.layers, n_head=cfg.heads, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                        attn_pdrop=cfg.dropout, initializer_range=cfg.init_std,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")


MASKED_LM_CLASSES = {"bert": (BertConfig, BertForMaskedLM),
                     "roberta-prelayernorm": (RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM),
                     "modernbert": (ModernBertConfig, ModernBertForMaskedLM)}


def encoder_config(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """The Hugging Face config of `cfg.architecture` with the sizes from params."""
    config_class, _ = MASKED_LM_CLASSES[cfg.architecture]
    if cfg.architecture == "modernbert":
        return _modernbert_config(cfg, tokenizer)
    max_positions = cfg.max_position
    if cfg.architecture != "bert":  # RoBERTa numbers positions from pad_token_id + 1
        max_positions += tokenizer.pad_token_id + 1
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.attention_dropout,
        initializer_range=cfg.init_std,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        type_vocab_size=2 if cfg.architecture == "bert" else 1,
    )


def _modernbert_config(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> ModernBertConfig:
    """ModernBERT (pre-LayerNorm, GeGLU, rotary positions) with global attention in every layer and a
    classifier that mean-pools the token states: an MLM-only encoder has no trained [CLS] summary, so
    pooling over tokens gives frozen and fully fine-tuned classifiers a usable sentence vector."""
    return ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.intermediate,
        max_position_embeddings=cfg.max_position,
        layer_types=["full_attention"] * cfg.layers,
        local_attention=cfg.max_position,
        embedding_dropout=cfg.dropout,
        mlp_dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        initializer_range=cfg.init_std,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        cls_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,
        classifier_pooling="mean",
    )


def build_masked_lm(cfg: ModelParams, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A randomly initialised encoder with its masked-LM head, using scaled-dot-product attention."""
    _, model_class = MASKED_LM_CLASSES[cfg.architecture]
    return model_class._from_config(encoder_config(cfg, tokenizer), attn_implementation="sdpa")


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; for a peft model the total counts the head once (peft keeps a
    frozen copy of every module it trains in full) and includes the adapters."""
    trainable = total = 0
    for name, param in model.named_parameters():
        if ".original_module." in name:
            continue
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total
