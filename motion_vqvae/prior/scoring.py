"""Bits per token of token streams under the prior and under add-one smoothed unigram/bigram baselines.

Bits are per time step, summed over the streams (one stream: per token); the ``*_stream_bits`` functions
keep one column per stream, and :func:`bits_per_level` sums those over body parts, level by level, because a
multi-level tokenizer's coarse level carries the motion and its fine levels the residual detail: a prior can
win on the total while losing where it matters, so the coarse level is scored on its own. The baselines are
fitted on the prior's training tokens and stored in its checkpoint, so every evaluation compares against the
same ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from motion_vqvae.prior.model import TokenGPT
from sim2real.token_spec import TokenSpec

LOG2E = 1.0 / np.log(2.0)


def ngram_counts(sequences: list[np.ndarray], nb_code: int) -> tuple[np.ndarray, np.ndarray]:
    """Unigram ``(S, V)`` and bigram ``(S, V, V)`` counts (bigram ``[s, prev, next]``) of ``[T, S]``
    sequences."""
    streams = sequences[0].shape[1]
    uni = np.zeros((streams, nb_code))
    bi = np.zeros((streams, nb_code, nb_code))
    for seq in sequences:
        for s in range(streams):
            np.add.at(uni[s], seq[:, s], 1)
            np.add.at(bi[s], (seq[:-1, s], seq[1:, s]), 1)
    return uni, bi


def unigram_stream_bits(tokens: np.ndarray, uni: np.ndarray) -> np.ndarray:
    """``(T, S)`` bits of each step and stream under the add-one smoothed unigram model."""
    probs = unigram_probs(uni)
    streams = np.arange(tokens.shape[1])
    return -np.log2(probs[streams, tokens])


def unigram_probs(uni: np.ndarray) -> np.ndarray:
    """Add-one smoothed ``p(token)`` ``(S, V)``."""
    return (uni + 1.0) / (uni.sum(axis=1, keepdims=True) + uni.shape[1])


def unigram_bits(tokens: np.ndarray, uni: np.ndarray) -> np.ndarray:
    """``(T,)`` bits of each step under the add-one smoothed unigram model."""
    return unigram_stream_bits(tokens, uni).sum(axis=1)


def bigram_probs(bi: np.ndarray) -> np.ndarray:
    """Add-one smoothed ``p(next | prev)`` ``(S, V, V)``."""
    return (bi + 1.0) / (bi.sum(axis=2, keepdims=True) + bi.shape[2])


def bigram_stream_bits(tokens: np.ndarray, uni: np.ndarray, bi: np.ndarray) -> np.ndarray:
    """``(T, S)`` bits under the add-one smoothed bigram model (the first step by the unigram model)."""
    probs = bigram_probs(bi)
    streams = np.arange(tokens.shape[1])
    rest = -np.log2(probs[streams, tokens[:-1], tokens[1:]])
    return np.concatenate([unigram_stream_bits(tokens[:1], uni), rest])


def base_log_probs(uni: np.ndarray, bi: np.ndarray) -> np.ndarray:
    """``(S, V + 1, V)`` log-probabilities of the smoothed bigram (row ``V``: the unigram, for the first
    step): the base a :class:`TokenGPT` corrects (:meth:`TokenGPT.set_base`)."""
    return np.log(np.concatenate([bigram_probs(bi), unigram_probs(uni)[:, None]], axis=1))


def bigram_bits(tokens: np.ndarray, uni: np.ndarray, bi: np.ndarray) -> np.ndarray:
    """``(T,)`` bits under the add-one smoothed bigram model (the first step by the unigram model)."""
    return bigram_stream_bits(tokens, uni, bi).sum(axis=1)


def bits_per_level(stream_bits: np.ndarray, spec: TokenSpec) -> list[float]:
    """Mean bits per step of each quantizer level, summed over body parts: ``[coarse, ..., finest]``.

    ``stream_bits`` is ``(T, S)`` with the streams part-major, as :class:`TokenSpec` orders them.
    """
    per_stream = stream_bits.reshape(len(stream_bits), len(spec.parts), spec.num_levels).mean(axis=0)
    return [float(v) for v in per_stream.sum(axis=0)]


def prior_bits(model: TokenGPT, tokens: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
    """``(T,)`` bits of each step of one ``[T, S]`` sequence under the prior (``text``: a caption)."""
    return prior_stream_bits(model, tokens, text).sum(axis=1)


@torch.no_grad()
def prior_stream_bits(model: TokenGPT, tokens: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
    """``(T, S)`` bits of each step and stream of one ``[T, S]`` sequence under the prior.

    Sequences longer than the model's context are scored in windows overlapping by half: every step after
    the first window is predicted from at least half a context of preceding tokens.
    """
    was_training = model.training
    model.eval()
    window = model.block_size - 1
    stride = max(1, window // 2)
    t = len(tokens)
    starts = [0] + list(range(stride, max(1, t - window + stride), stride))
    starts = [a for a in starts if a == 0 or a + window - stride < t]
    batch = torch.zeros(len(starts), min(window, t), tokens.shape[1], dtype=torch.long)
    for row, a in enumerate(starts):
        piece = torch.as_tensor(tokens[a : a + window])
        batch[row, : len(piece)] = piece
    cond, has = None, None
    if text is not None:
        cond = torch.as_tensor(np.broadcast_to(text, (len(starts), len(text))).copy(), dtype=torch.float32)
        has = torch.ones(len(starts))
    logp = F.log_softmax(model(batch, cond, has).float(), dim=-1)  # (N, W, S, V)
    picked = logp.gather(-1, batch[..., None])[..., 0].numpy()  # (N, W, S)
    bits = np.zeros((t, tokens.shape[1]))
    for row, a in enumerate(starts):
        first = 0 if a == 0 else window - stride
        last = min(window, t - a)
        bits[a + first : a + last] = -picked[row, first:last] * LOG2E
    model.train(was_training)
    return bits
