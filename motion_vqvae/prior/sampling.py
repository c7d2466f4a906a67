"""A trained prior loaded from its checkpoint, sampling with it in torch (KV cache or not), and completing a
partly chosen step.

The sampling loop itself is :func:`sim2real.prior.sample_stream`, shared with the robot's onnxruntime
sampler; here it drives :class:`TorchPriorBackend`. :func:`complete_step` fills the streams of a step that a
caller did not choose (a policy picks the coarse level of each body part, the prior the finer levels), and
:class:`StepContext` follows one stream of steps (an RL episode) with a KV cache to complete, score and mask
each next step. Both run on any :class:`~sim2real.prior.PriorBackend` (numpy in, numpy out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motion_vqvae.errors import InvalidValue
from motion_vqvae.prior.config import PriorConfig
from motion_vqvae.prior.model import TokenGPT
from motion_vqvae.prior.text import embed_texts
from motion_vqvae.training.checkpoint import check_model_shapes, load_checkpoint
from motion_vqvae.typed_fields import typed_from_dict
from sim2real.prior import PriorBackend, SamplingOptions, prime_context, sample_stream, top_p_mask
from sim2real.token_spec import TokenSpec

log = logging.getLogger(__name__)


class TorchPriorBackend:
    """:class:`sim2real.prior.PriorBackend` over a :class:`TokenGPT` (numpy in, numpy out)."""

    def __init__(self, model: TokenGPT) -> None:
        self.model = model.eval()
        self.block_size = model.block_size
        self.text_dim = model.hparams()["text_dim"]

    @torch.no_grad()
    def start(self, text: np.ndarray, has_text: np.ndarray) -> tuple[np.ndarray, Any]:
        t = torch.as_tensor(text) if self.text_dim else None
        hidden, cache = self.model.start(t, torch.as_tensor(has_text), len(text))
        return hidden.numpy(), cache

    @torch.no_grad()
    def step(self, tokens: np.ndarray, positions: np.ndarray, cache: Any) -> tuple[np.ndarray, Any]:
        hidden, cache = self.model.step(torch.as_tensor(tokens), torch.as_tensor(positions), cache)
        return hidden.numpy(), cache

    @torch.no_grad()
    def head(self, hidden: np.ndarray, next_tokens: np.ndarray) -> np.ndarray:
        return self.model.head(torch.as_tensor(hidden), torch.as_tensor(next_tokens)).numpy()


@dataclass
class LoadedPrior:
    """A prior checkpoint ready for scoring and sampling."""

    path: Path
    model: TokenGPT
    spec: TokenSpec
    cfg: PriorConfig
    state: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> LoadedPrior:
        state = load_checkpoint(path)
        if "token_spec" not in state or "model_hparams" not in state or "unigram" not in state:
            raise InvalidValue(f"{path} is not a prior checkpoint (scripts/train_prior.py writes them)")
        cfg = typed_from_dict(PriorConfig, state["config"], source=f"{path}: config")
        check_model_shapes(TokenGPT, state["model_hparams"], state["model"], path)
        model = TokenGPT(**state["model_hparams"])
        model.load_state_dict(state["model"])
        model.eval()
        spec = TokenSpec.from_dict(state["token_spec"], source=f"{path}: token_spec")
        return cls(Path(path), model, spec, cfg, state)

    @property
    def tokenizer_path(self) -> Path:
        return Path(self.state["tokenizer"])

    @property
    def captions(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.state["captions"].items()}

    def prompt_embedding(self, prompt: str | None) -> np.ndarray | None:
        """A caption's stored embedding, else the text model's (an unseen prompt); None without a prompt."""
        if prompt is None:
            return None
        if not self.model.hparams()["text_dim"]:
            raise InvalidValue(
                f"{self.path} was trained without text (use_text=false); sample without --prompt"
            )
        captions = self.captions
        if prompt in captions:
            return captions[prompt]
        embedding = embed_texts([prompt])[0]
        if captions:
            nearest = max(captions, key=lambda c: float(captions[c] @ embedding))
            log.info("prompt %r is new; its nearest training caption is %r", prompt, nearest)
        return embedding

    def options(self, **overrides: Any) -> SamplingOptions:
        """The config's sampling defaults with ``overrides`` (None values ignored)."""
        base = {
            "temperature": self.cfg.temperature,
            "top_p": self.cfg.top_p,
            "guidance_scale": self.cfg.guidance_scale,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return SamplingOptions(**base)

    def sample(
        self,
        steps: int,
        *,
        seed: int | None = None,
        text: np.ndarray | None = None,
        prefix: np.ndarray | None = None,
        options: SamplingOptions | None = None,
    ) -> np.ndarray:
        """``[steps, S]`` tokens continuing ``prefix`` ``[P, S]``."""
        return sample_stream(
            TorchPriorBackend(self.model),
            steps,
            streams=self.spec.num_streams,
            rng=np.random.default_rng(seed),
            text=text,
            prefix=prefix,
            options=options or self.options(),
        )


def complete_step(
    backend: PriorBackend,
    hidden: np.ndarray,
    forced: np.ndarray,
    chosen: np.ndarray,
    upto: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The next step's whole token tuple from some of its streams, and every stream's logits.

    ``forced`` ``[S]`` holds the ids of the streams where ``chosen`` ``[S]`` (bool) is True; every other
    stream takes the prior's most likely id given ``hidden`` ``[1, D]`` (the steps so far) and the tuple's
    earlier streams, in stream order, as the per-step head factorizes a step. Greedy, not sampled: the fill
    is a deterministic function of the chosen ids and the history, so a policy choosing the coarse streams
    sees the same consequence of the same choice. Returns ``(tuple [S], logits [S, V])``, the logits of
    stream s given the returned tuple's streams before s (score the tuple or mask a stream with them).
    ``upto``: only streams ``< upto`` are needed (the later ones stay unfilled, their logits 0), which saves
    the head runs after them. One head run per stream filled, plus one when chosen streams follow the last
    of them.
    """
    chosen = np.asarray(chosen, bool)
    streams = len(chosen) if upto is None else upto
    token = np.where(chosen, np.asarray(forced, np.int64), 0)
    logits: np.ndarray | None = None
    done = 0  # streams < done have their final logits
    while done < streams:
        out = backend.head(hidden, token[None])[0]  # stream s is final once streams < s are
        if logits is None:
            logits = np.zeros_like(out)
        free = np.flatnonzero(~chosen[done:streams])
        last = done + int(free[0]) if len(free) else streams - 1  # the next stream to fill, or the end
        logits[done : last + 1] = out[done : last + 1]
        if not chosen[last]:
            token[last] = int(np.argmax(out[last]))
        done = last + 1
    return token, logits


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class StepContext:
    """A prior following one unconditioned stream of ``[S]`` token tuples (an RL episode) with a KV cache.

    ``fill`` completes a partly chosen next step, ``log_prob`` scores a whole one, ``allowed`` gives the
    top-p sets of some streams, and ``advance`` appends the step taken. When the positions run out, the
    cache restarts on the most recent half context, as :func:`sim2real.prior.sample_stream` does.
    """

    def __init__(self, backend: PriorBackend, streams: int) -> None:
        self.backend, self.streams = backend, streams
        self.reset()

    def reset(self) -> None:
        """An empty history: the next step is the stream's first."""
        self._scored_token: np.ndarray | None = None  # the step ``fill`` completed last, and its logits
        self._scored = np.zeros(0)
        self._prime(np.zeros((0, self.streams), np.int64))

    def _prime(self, context: np.ndarray) -> None:
        text = np.zeros((1, max(self.backend.text_dim, 1)), np.float32)
        self.hidden, self._cache, self._position = prime_context(
            self.backend, text, np.zeros(1, np.float32), context
        )
        self.history = context

    def fill(self, partial: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """``[S]`` ids: ``partial`` where ``chosen``, the prior's most likely ids elsewhere."""
        token, self._scored = complete_step(self.backend, self.hidden, partial, chosen)
        self._scored_token = token
        return token

    def log_prob(self, token: np.ndarray) -> float:
        """``log p(token | history)`` in nats, summed over the streams (the logits of the step just filled
        when it is that token)."""
        token = np.asarray(token, np.int64).reshape(self.streams)
        if self._scored_token is not None and np.array_equal(token, self._scored_token):
            logits = self._scored
        else:
            logits = complete_step(self.backend, self.hidden, token, np.ones(self.streams, bool))[1]
        return float(_log_softmax(logits)[np.arange(self.streams), token].sum())

    def allowed(self, streams: np.ndarray, top_p: float) -> np.ndarray:
        """``[len(streams), V]``: the top-p set of each of ``streams`` for the next step, each given the
        prior's most likely ids of the streams before it (the others are not chosen yet)."""
        streams = np.asarray(streams)
        logits = complete_step(
            self.backend,
            self.hidden,
            np.zeros(self.streams, np.int64),
            np.zeros(self.streams, bool),
            upto=int(streams.max()) + 1,
        )[1]
        return top_p_mask(logits[streams], top_p)

    def advance(self, token: np.ndarray) -> None:
        """Append the step taken (``[S]`` ids) to the history."""
        self._scored_token = None  # its logits were for the step now taken
        token = np.asarray(token, np.int64).reshape(1, self.streams)
        history = np.concatenate([self.history, token])
        if self._position >= self.backend.block_size:
            self._prime(history[-max(1, self.backend.block_size // 2) :])
            return
        hidden, self._cache = self.backend.step(token[None], np.array([self._position]), self._cache)
        self.hidden, self.history, self._position = hidden[:, -1], history, self._position + 1
