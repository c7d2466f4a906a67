"""``TokenGPT``: a causal transformer over a tokenizer's token streams, with an optional text condition.

Sequence layout (positions 0..T): position 0 is the *condition slot* (a projected sentence embedding, or a
learned "no text" vector: the unconditional branch of classifier-free guidance); position t >= 1 holds the
token of time step t, the sum of one embedding per stream. The hidden state at position t predicts the
token of step t + 1.

Several streams (RVQ levels, body parts: ``TokenSpec.num_streams`` = S) are modelled as T2M-GPT/MoMask do
for their finer levels: the transformer runs once per time step over whole token tuples, and a per-step
head predicts the streams of the next step in order, stream s conditioned on the hidden state, the
embeddings of the already chosen streams 0..s-1 of that step, and stream s's own token at the step before
(an embedding and a learned "same token again" gain). That last input is why the model beats a bigram on
a 12-stream tokenizer: the transformer sees a step as the sum of S embeddings, from which one stream's
previous token is hard to read back, and a stream's previous token is its best single predictor (RVQ
tokens often repeat). The hidden state therefore carries the previous step's tokens beside the
transformer's state (``[..., n_embd + S]``, ids as floats, -1 before the first step), so ``head`` needs
nothing else. With one stream this is a GPT whose head also sees the last token.

The same module runs whole windows (training, scoring) and streams one step at a time with a KV cache
(``start`` / ``step`` / ``head``: sampling, guided RL and the ONNX export). Positions are absolute and
learned, so a stream longer than ``block_size`` is re-primed on its most recent tokens (see sampling).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

Cache = tuple[torch.Tensor, torch.Tensor]  # keys, values: (L, B, H, P, hd) each


class _Block(nn.Module):
    """Pre-LayerNorm attention + MLP block whose attention can extend a KV cache."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, past_k: torch.Tensor | None, past_v: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, d = x.shape  # (B, T, D): the new positions
        hd = d // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hd)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)  # (B, H, P + T, hd)
            v = torch.cat([past_v, v], dim=2)
        # New query i sits at absolute index P + i and may see keys 0..P + i.
        total = k.shape[2]
        rows = torch.arange(t, device=x.device)[:, None] + (total - t)
        allowed = torch.arange(total, device=x.device)[None, :] <= rows  # (T, P + T)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B, H, T, P + T)
        att = self.drop(att.masked_fill(~allowed, float("-inf")).softmax(dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.proj(y))
        x = x + self.mlp(self.ln2(x))
        return x, k, v


class TokenGPT(nn.Module):
    """Causal transformer over ``[B, T, S]`` token tuples (vocabulary ``nb_code`` per stream)."""

    def __init__(
        self,
        *,
        nb_code: int,
        num_streams: int,
        n_layer: int,
        n_head: int,
        n_embd: int,
        block_size: int,
        dropout: float,
        text_dim: int,
    ) -> None:
        super().__init__()
        self._hparams = {
            "nb_code": nb_code,
            "num_streams": num_streams,
            "n_layer": n_layer,
            "n_head": n_head,
            "n_embd": n_embd,
            "block_size": block_size,
            "dropout": dropout,
            "text_dim": text_dim,
        }
        self.nb_code, self.num_streams, self.block_size = nb_code, num_streams, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        # One table for all streams: stream s's token k is row s * nb_code + k.
        self.tok_emb = nn.Embedding(num_streams * nb_code, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.text_proj = nn.Linear(text_dim, n_embd) if text_dim else None
        self.null_cond = nn.Parameter(torch.zeros(n_embd))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        # Per-step stream head: embeddings of the already chosen streams of the next step, a residual MLP.
        self.next_emb = nn.Embedding(num_streams * nb_code, n_embd)
        self.stream_emb = nn.Embedding(num_streams, n_embd)
        self.head_mlp = nn.Sequential(
            nn.LayerNorm(n_embd), nn.Linear(n_embd, 2 * n_embd), nn.GELU(), nn.Linear(2 * n_embd, n_embd)
        )
        self.head_ln = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, nb_code, bias=False)
        # Each stream's own previous token (id nb_code: none, before the first step), and a per-stream gain
        # on repeating it.
        self.last_emb = nn.Embedding(num_streams * (nb_code + 1), n_embd)
        self.repeat_gain = nn.Parameter(torch.zeros(num_streams))
        self.register_buffer("offsets", torch.arange(num_streams) * nb_code, persistent=False)
        self.register_buffer("last_offsets", torch.arange(num_streams) * (nb_code + 1), persistent=False)
        self.register_buffer("ids", torch.arange(nb_code), persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def hparams(self) -> dict[str, Any]:
        return dict(self._hparams)

    @property
    def hidden_size(self) -> int:
        """Width of a hidden state: the transformer's ``n_embd`` plus the previous step's S token ids."""
        return self.n_embd + self.num_streams

    def _with_last(self, state: torch.Tensor, last_tokens: torch.Tensor) -> torch.Tensor:
        """Hidden state ``(..., n_embd + S)``: the transformer's ``state`` and the step's previous tokens."""
        return torch.cat([state, last_tokens.to(state.dtype)], dim=-1)

    # ------------------------------------------------------------------ pieces
    def condition(self, text: torch.Tensor | None, has_text: torch.Tensor | None, batch: int) -> torch.Tensor:
        """``(B, 1, D)`` condition slot: the projected text where ``has_text`` (B,) is 1, else the null
        vector."""
        null = self.null_cond.expand(batch, 1, -1)
        if text is None or self.text_proj is None:
            return null
        keep = has_text.to(null.dtype).view(batch, 1, 1)
        return keep * self.text_proj(text)[:, None, :] + (1 - keep) * null

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T, S)`` token ids -> ``(B, T, D)``: the sum of the streams' embeddings."""
        return self.tok_emb(tokens + self.offsets).sum(dim=2)

    def _run(
        self, x: torch.Tensor, positions: torch.Tensor, cache: Cache | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Blocks over new positions ``x`` (B, T, D) after ``cache``; returns (hidden, keys, values)."""
        x = self.drop(x + self.pos_emb(positions)[None])
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, None if cache is None else cache[0][i], None if cache is None else cache[1][i])
            keys.append(k)
            values.append(v)
        return self.ln_f(x), torch.stack(keys), torch.stack(values)

    def head(self, hidden: torch.Tensor, next_tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(..., S, V)`` of the next step's streams from ``hidden`` (..., n_embd + S).

        Stream s's logits depend only on ``next_tokens[..., :s]`` (the coarser streams of that step), so
        sampling fills the streams in order and training uses the true next tokens (teacher forcing).
        """
        state = hidden[..., : self.n_embd]
        last = hidden[..., self.n_embd :].round().long()  # (..., S): -1 before the first step
        last = torch.where(last < 0, torch.full_like(last, self.nb_code), last)
        chosen = self.next_emb(next_tokens + self.offsets)  # (..., S, D)
        before = chosen.cumsum(dim=-2) - chosen  # exclusive prefix sums: stream s sees streams < s
        z = state.unsqueeze(-2) + before + self.stream_emb.weight + self.last_emb(last + self.last_offsets)
        z = z + self.head_mlp(z)
        repeat = (self.ids == last.unsqueeze(-1)).to(z.dtype)  # (..., S, V): stream s's last token
        return self.lm_head(self.head_ln(z)) + self.repeat_gain.unsqueeze(-1) * repeat

    # ------------------------------------------------------------------ whole windows
    def forward(
        self, tokens: torch.Tensor, text: torch.Tensor | None = None, has_text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(B, T, S, V)`` of ``tokens`` (B, T, S), each step predicted from the condition and the
        steps before it (teacher forcing)."""
        b, t, _ = tokens.shape
        if t + 1 > self.block_size:
            raise ValueError(f"TokenGPT sees at most {self.block_size - 1} tokens at once, got {t}")
        x = torch.cat([self.condition(text, has_text, b), self.embed(tokens[:, :-1])], dim=1)  # (B, T, D)
        state, _, _ = self._run(x, torch.arange(t, device=tokens.device), None)
        last = torch.cat([torch.full_like(tokens[:, :1], -1), tokens[:, :-1]], dim=1)
        return self.head(self._with_last(state, last), tokens)

    # ------------------------------------------------------------------ streaming with a KV cache
    def start(
        self, text: torch.Tensor | None, has_text: torch.Tensor | None, batch: int
    ) -> tuple[torch.Tensor, Cache]:
        """Hidden state ``(B, n_embd + S)`` that predicts the first token, and the cache holding the
        condition slot."""
        device = self.null_cond.device
        state, k, v = self._run(
            self.condition(text, has_text, batch), torch.zeros(1, dtype=torch.long, device=device), None
        )
        none = torch.full((batch, self.num_streams), -1, dtype=torch.long, device=device)
        return self._with_last(state[:, -1], none), (k, v)

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, Cache]:
        """Append ``tokens`` (B, T, S) at ``positions`` (T,) to ``cache``; hidden states
        ``(B, T, n_embd + S)`` (each predicts the step after its tokens, which it carries)."""
        state, k, v = self._run(self.embed(tokens), positions, cache)
        return self._with_last(state, tokens), (k, v)
