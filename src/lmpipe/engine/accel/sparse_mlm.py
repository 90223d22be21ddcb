"""Masked-LM needs the encoder's output only at the selected positions (~15% of the tokens), so the last layer
runs only there.

Every layer but the last must run at every position: its outputs are the next layer's keys and values. The
last layer's keys and values also come from every position, but its queries, its attention output projection,
its MLP and the final norm only matter where the loss looks. Here they run only there: the same loss and the
same gradients as the full forward, up to float rounding (tests/test_sparse_mlm.py), for most of one layer's
matmuls and elementwise passes less per step (bench/flops.py counts them; the Hugging Face *ForMaskedLM classes,
and so the Trainer, run every layer and even the vocabulary projection at every position).

Queries are grouped per sequence: a sequence's selected positions attend to its own keys, as a [batch,
max_selected] query block, so attention stays a batched matmul; the rows past a sequence's count are padding
that no output reads. The index tensors come from `query_index`, built with the batch on the host.

Implemented for ModernBERT (the default architecture) and the BERT family (BERT, RoBERTa, RoBERTa-PreLN
encoders) with the eager, SDPA and our CPU attention functions; other models and attention functions run the
full forward and select the positions after it.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.engine.accel.transformers_compat import patches_supported

QUERY_BUCKET = 8  # max_selected is rounded up to this: fewer distinct matmul shapes for oneDNN and compile


_SPARSE_ATTENTION = {"eager", "sdpa"}


def query_index(positions: torch.Tensor, count: int, seq_len: int, batch_size: int) -> dict[str, torch.Tensor]:
    """Index tensors of the sparse last layer for the first `count` of the sorted flat `positions`
    (position = row * seq_len + column; entries past `count` are padding):

    - query_columns [batch, max_selected]: the columns of each row's selected positions, in order, then 0s;
    - query_slots [len(positions)]: where each position's output lies in the flattened [batch * max_selected]
      query block (padding entries read slot 0, and their targets are ignored)."""
    flat = positions[:count].numpy()
    rows, columns = np.divmod(flat, seq_len)
    counts = np.bincount(rows, minlength=batch_size)
    width = -(-max(int(counts.max(initial=0)), 1) // QUERY_BUCKET) * QUERY_BUCKET
    rank = np.arange(count) - (np.cumsum(counts) - counts)[rows]  # each position's place within its row
    query_columns = np.zeros((batch_size, width), dtype=np.int64)
    query_columns[rows, rank] = columns
    query_slots = np.zeros(len(positions), dtype=np.int64)
    query_slots[:count] = rows * width + rank
    return {"query_columns": torch.from_numpy(query_columns), "query_slots": torch.from_numpy(query_slots)}


@functools.cache
def _bert_family() -> tuple[type, ...]:
    from transformers import BertModel, RobertaModel, RobertaPreLayerNormModel

    return BertModel, RobertaModel, RobertaPreLayerNormModel


def supports_sparse_last_layer(encoder: nn.Module) -> bool:
    """Whether `final_hidden_at` runs `encoder`'s last layer at the selected positions only."""
    from transformers.models.modernbert.modeling_modernbert import ModernBertModel

    from lmpipe.engine.accel.cpu_kernels import ATTENTION_NAME

    config = encoder.config
    return (patches_supported() and config._attn_implementation in _SPARSE_ATTENTION | {ATTENTION_NAME}
            and (isinstance(encoder, ModernBertModel)
                 or (isinstance(encoder, _bert_family()) and not config.is_decoder)))


def final_hidden_at(encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The encoder's final hidden states at batch["positions"] (flat indices into [batch, seq]), [M, hidden]."""
    if "query_columns" in batch and supports_sparse_last_layer(encoder):
        if isinstance(encoder, _bert_family()):
            return _bert_final_hidden_at(encoder, batch)
        return _modernbert_final_hidden_at(encoder, batch)
    hidden = encoder(input_ids=batch["input_ids"]).last_hidden_state
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["positions"])


def _bert_final_hidden_at(encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """BertModel.forward (and RoBERTa's, RoBERTa-PreLN's; transformers 5) for unpadded input_ids of an
    encoder, with the last layer at the positions."""
    from transformers.masking_utils import create_bidirectional_mask

    hidden = encoder.embeddings(input_ids=batch["input_ids"])
    mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=None)
    *layers, last = encoder.encoder.layer
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask)
    attention = last.attention
    # RoBERTa-PreLN normalises before attention (the residual is the un-normalised input); BERT after
    normed = attention.LayerNorm(hidden) if hasattr(attention, "LayerNorm") else hidden
    attended = _bert_attention_at(attention.self, normed, mask, batch["query_columns"], batch["query_slots"])
    selected = attention.output(attended, hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["positions"]))
    selected = last.output(last.intermediate(selected), selected)
    final_norm = getattr(encoder, "LayerNorm", None)  # RoBERTa-PreLN's, after the last layer
    return selected if final_norm is None else final_norm(selected)


def _bert_attention_at(attn: nn.Module, normed: torch.Tensor, mask: torch.Tensor | None,
                       query_columns: torch.Tensor, query_slots: torch.Tensor) -> torch.Tensor:
    """BertSelfAttention.forward with queries only at query_columns; returns [len(query_slots), hidden]
    (before the attention output projection, which is position-wise)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    batch, seq, _ = normed.shape
    heads, head_dim = attn.num_attention_heads, attn.attention_head_size
    query = attn.query(_rows(normed, query_columns)).view(batch, -1, heads, head_dim).transpose(1, 2)
    key = attn.key(normed).view(batch, seq, heads, head_dim).transpose(1, 2)
    value = attn.value(normed).view(batch, seq, heads, head_dim).transpose(1, 2)
    attention = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
    return _attend(attention, attn, query, key, value, mask, query_columns, query_slots,
                   dropout=attn.dropout.p if attn.training else 0.0, scaling=attn.scaling)


def _rows(x: torch.Tensor, query_columns: torch.Tensor) -> torch.Tensor:
    """x [batch or 1, seq, features] at each row's selected columns: [batch, max_selected, features]."""
    batch, selected = query_columns.shape
    x = x.expand(batch, -1, -1)
    return x.gather(1, query_columns[:, :, None].expand(batch, selected, x.shape[-1]))


def _attend(attention, module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
            mask: torch.Tensor | None, query_columns: torch.Tensor, query_slots: torch.Tensor,
            **kwargs) -> torch.Tensor:
    """A transformers attention function for the [batch, heads, max_selected, head_dim] query block against
    every key, with the mask's rows of the selected queries; the outputs of the selected positions, in the order
    of `positions`: [len(query_slots), heads * head_dim]."""
    batch, selected = query_columns.shape
    if mask is not None:  # [batch or 1, heads or 1, seq, seq] -> the selected query rows
        mask = mask.expand(batch, -1, -1, -1)
        mask = mask.gather(2, query_columns[:, None, :, None].expand(batch, mask.shape[1], selected, mask.shape[3]))
    attended, _ = attention(module, query, key, value, mask, **kwargs)
    return attended.reshape(batch * selected, -1).index_select(0, query_slots)


def _modernbert_final_hidden_at(encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """ModernBertModel.forward (transformers 5) for unpadded input_ids, with the last layer at the positions."""
    from transformers.masking_utils import create_bidirectional_mask, create_bidirectional_sliding_window_mask

    input_ids = batch["input_ids"]
    hidden = encoder.embeddings(input_ids=input_ids)
    mask_kwargs = {"config": encoder.config, "inputs_embeds": hidden, "attention_mask": None}
    masks = {"full_attention": create_bidirectional_mask(**mask_kwargs),
             "sliding_attention": create_bidirectional_sliding_window_mask(**mask_kwargs)}
    position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    rotary = {kind: encoder.rotary_emb(hidden, position_ids, kind) for kind in set(encoder.config.layer_types)}
    *layers, last = encoder.layers
    for layer in layers:
        hidden = layer(hidden, attention_mask=masks[layer.attention_type],
                       position_embeddings=rotary[layer.attention_type])
    flat = hidden.reshape(-1, hidden.shape[-1])
    attended = _modernbert_attention_at(last.attn, last.attn_norm(hidden), rotary[last.attention_type],
                             masks[last.attention_type], batch["query_columns"], batch["query_slots"])
    selected = flat.index_select(0, batch["positions"]) + attended
    selected = selected + last.mlp(last.mlp_norm(selected))
    return encoder.final_norm(selected)


def _modernbert_attention_at(attn: nn.Module, normed: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor],
                             mask: torch.Tensor | None, query_columns: torch.Tensor,
                             query_slots: torch.Tensor) -> torch.Tensor:
    """ModernBertAttention.forward with queries only at query_columns; returns [len(query_slots), hidden].
    The fused Wqkv is applied in two parts: its query rows to the selected rows only, its key and value rows to
    every position."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.modernbert.modeling_modernbert import eager_attention_forward, rotate_half

    from lmpipe.engine.accel.cpu_kernels import ATTENTION_NAME, _RotaryHeads, matmul_attention

    batch, seq, width = normed.shape
    heads, head_dim = attn.config.num_attention_heads, attn.head_dim
    selected = query_columns.shape[1]
    weight, bias = attn.Wqkv.weight, attn.Wqkv.bias
    query = F.linear(_rows(normed, query_columns), weight[:width], None if bias is None else bias[:width])
    key_value = F.linear(normed, weight[width:], None if bias is None else bias[width:])
    cos, sin = rotary  # [batch or 1, seq, head_dim]
    cos_rows, sin_rows = _rows(cos, query_columns), _rows(sin, query_columns)
    implementation = attn.config._attn_implementation
    if implementation == ATTENTION_NAME:
        (query,) = _RotaryHeads.apply(query, cos_rows, sin_rows, heads, (head_dim ** -0.5,))
        key, value = _RotaryHeads.apply(key_value, cos, sin, heads, (1.0, None))
        attention, scaling = matmul_attention, 1.0
    else:
        def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:  # as transformers does
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
            return (x.float() * cos + rotate_half(x.float()) * sin).to(x.dtype)

        query = rotate(query.view(batch, selected, heads, head_dim).transpose(1, 2), cos_rows, sin_rows)
        key, value = key_value.view(batch, seq, 2, heads, head_dim).transpose(1, 3).unbind(dim=2)
        key = rotate(key, cos, sin)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        scaling = head_dim ** -0.5
    attended = _attend(attention, attn, query, key, value, mask, query_columns, query_slots,
                       dropout=attn.attention_dropout if attn.training else 0.0, scaling=scaling,
                       sliding_window=attn.sliding_window)
    return attn.out_drop(attn.Wo(attended))
