"""A trained prior loaded from its checkpoint, and sampling with it in torch (KV cache or not).

The sampling loop itself is :func:`sim2real.prior.sample_stream`, shared with the robot's onnxruntime
sampler; here it drives :class:`TorchPriorBackend`.
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
from sim2real.prior import SamplingOptions, sample_stream
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
