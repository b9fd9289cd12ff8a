"""Action-aware gSASRec: a causal Transformer over (item, action) interactions.

The embedding of position t is ``item_emb[i_t] + action_emb[a_t] + pos_emb[t]``; with a
single action the action embedding is a constant shift and the model is plain
gSASRec/SASRec. Sequences are left-padded (see ``negrec.batching``); padded positions
are never attended to and their output states are zero.

Pure PyTorch on purpose: no Ray, no MLflow, so it is testable in milliseconds.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from negrec.config import ModelConfig
from negrec.model.dropout import FastDropout


class DecoderBlock(nn.Module):
    """Pre-LayerNorm causal self-attention + position-wise feed-forward (SASRec style)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, dim)
        self.ffn_out = nn.Linear(dim, dim)
        self.dropout = FastDropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=attn_mask)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        x = x + self.dropout(self.attn_out(attended))
        hidden = self.dropout(F.relu(self.ffn_in(self.ffn_norm(x))))
        return x + self.dropout(self.ffn_out(hidden))


class ActionAwareGSASRec(nn.Module):
    """gSASRec whose input marks each interaction with an action id."""

    def __init__(self, num_items: int, config: ModelConfig) -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        self.num_items = num_items
        self.config = config
        self.item_embedding = nn.Embedding(num_items + 1, config.dim, padding_idx=0)
        self.action_embedding = nn.Embedding(config.num_actions, config.dim)
        self.position_embedding = nn.Embedding(config.max_len, config.dim)
        self.embedding_dropout = FastDropout(config.dropout)
        self.blocks = nn.ModuleList(
            DecoderBlock(config.dim, config.heads, config.dropout) for _ in range(config.blocks)
        )
        self.final_norm = nn.LayerNorm(config.dim)
        self.output_embedding = (
            None
            if config.shared_output_embedding
            else nn.Embedding(num_items + 1, config.dim, padding_idx=0)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        linear_std = self.config.linear_init_std
        for module in self.modules():
            if isinstance(module, nn.Linear) and linear_std is not None:
                nn.init.normal_(module.weight, std=linear_std)
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
                if module.padding_idx is not None:
                    with torch.no_grad():
                        module.weight[module.padding_idx].zero_()

    @property
    def output_weights(self) -> torch.Tensor:
        """(num_items + 1, dim) table used to score items; row 0 is padding."""
        table = self.output_embedding or self.item_embedding
        return table.weight

    def check_inputs(self, items: torch.Tensor, actions: torch.Tensor) -> None:
        """Reject inputs that would otherwise give silently wrong numbers."""
        if items.dim() != 2 or items.shape != actions.shape:
            raise ValueError(
                f"items and actions must both be (batch, length); got {tuple(items.shape)} "
                f"and {tuple(actions.shape)}"
            )
        if items.dtype != torch.int64 or actions.dtype != torch.int64:
            raise TypeError(
                f"items and actions must be int64 ids, got {items.dtype} and {actions.dtype}"
            )
        if items.shape[0] == 0:
            raise ValueError("empty batch: no sequences to encode")
        if items.shape[1] > self.config.max_len:
            raise ValueError(
                f"sequence length {items.shape[1]} exceeds model.max_len={self.config.max_len}; "
                "truncate to the most recent max_len interactions"
            )
        low, high = int(items.min()), int(items.max())
        if low < 0 or high > self.num_items:
            raise ValueError(
                f"item ids must lie in 0..{self.num_items} (0 = padding); got {low}..{high}"
            )
        a_low, a_high = int(actions.min()), int(actions.max())
        if a_low < 0 or a_high >= self.config.num_actions:
            raise ValueError(
                f"action ids must lie in 0..{self.config.num_actions - 1}; got {a_low}..{a_high}"
            )

    def forward(self, items: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Encode (batch, length) items and actions into (batch, length, dim) states."""
        self.check_inputs(items, actions)
        length = items.shape[1]
        # Left padding: the last input position always uses the last position embedding.
        positions = torch.arange(
            self.config.max_len - length, self.config.max_len, device=items.device
        )
        keep = (items != 0).unsqueeze(-1)
        x = self.item_embedding(items)
        if self.config.scale_item_embedding:
            x = x * self.config.dim**0.5
        x = x + self.action_embedding(actions)
        x = self.embedding_dropout(x + self.position_embedding(positions))
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        # Padding keys are masked; a padded query then sees only padding, so let every
        # query attend to itself to keep softmax finite (its output is zeroed anyway).
        attn_mask = (causal & keep.transpose(1, 2)) | torch.eye(
            length, dtype=torch.bool, device=items.device
        )
        attn_mask = attn_mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, attn_mask)
        # Padded positions never act as keys, so they cannot leak into real positions;
        # zero them once at the end so their (unused) states are clearly empty.
        return self.final_norm(x) * keep
