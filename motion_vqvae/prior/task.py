"""The prior's :class:`~motion_vqvae.training.trainer.TrainTask`: its clips, tokens, model and validation.

The loop, checkpoints, signals, time budget, non-finite guard and ``metrics.jsonl`` are the shared
:class:`~motion_vqvae.training.trainer.Trainer`'s; this module supplies what is the prior's own: the
tokenizer's token streams of the clips (split as the tokenizer split them, :mod:`motion_vqvae.prior.data`),
random windows of them with their captions, the next-token cross-entropy of :class:`TokenGPT`, and held-out
bits per token, which select ``best.pt``.

A task is built in two stages so that a refused ``--resume`` writes nothing: the constructor reads the
tokenizer and the clips and builds the model (what :meth:`identity` compares with a checkpoint), and
:meth:`load_corpus` then encodes the clips or reads them from the token cache, which may write it.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from motion_vqvae.data.fingerprint import dataset_fingerprint
from motion_vqvae.devices import resolve_device
from motion_vqvae.errors import InvalidValue
from motion_vqvae.prior.config import PriorConfig
from motion_vqvae.prior.data import (
    Captions,
    TokenClip,
    TokenWindows,
    build_corpus,
    clip_motions,
    resolve_repo_path,
)
from motion_vqvae.prior.model import TokenGPT
from motion_vqvae.prior.scoring import ngram_counts, prior_bits
from motion_vqvae.prior.text import TEXT_DIM, embed_texts
from motion_vqvae.tokenizer import Tokenizer
from motion_vqvae.training import precision
from motion_vqvae.training.checkpoint import check_model_shapes
from motion_vqvae.training.trainer import StepOutput

log = logging.getLogger(__name__)

PRIOR_RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints", "wandb")
"""What a prior's training writes into its run folder; ``train_prior.py --overwrite`` removes these only.

The token cache ``tokens.pt`` is not among them: it is keyed by its inputs' content, so a replaced run
reuses it when the tokenizer, the clips and the augmentations are the same, and re-encodes otherwise."""

TOKEN_CACHE = "tokens.pt"
BEST_METRIC = "nll_bits_per_token"


@dataclass(frozen=True)
class PriorInputs:
    """What a prior is trained on: a tokenizer checkpoint and the motion files it encodes."""

    tokenizer: Path
    motion_file: str
    fps: float | None = None  # for files that do not say (as --fps)
    quat_order: str | None = None  # for files that do not say (as --quat-order)


class PriorTask:
    """:class:`TokenGPT` on a tokenizer's token streams: the prior's
    :class:`~motion_vqvae.training.trainer.TrainTask`."""

    selection_metric = BEST_METRIC

    def __init__(self, cfg: PriorConfig, inputs: PriorInputs) -> None:
        """Read the tokenizer and the clips (nothing is written) and build the model from ``cfg``."""
        self.cfg = cfg
        self.inputs = inputs
        self.device = resolve_device(cfg.device)
        self.tok = Tokenizer.load(inputs.tokenizer)
        self.train_motions, self.val_motions = clip_motions(
            self.tok, inputs.motion_file, inputs.fps, inputs.quat_order
        )
        if not self.train_motions:
            raise InvalidValue(
                f"{inputs.motion_file}: every clip is a validation or test clip of the tokenizer "
                f"{inputs.tokenizer}; nothing to train the prior on"
            )
        self.dataset = dataset_fingerprint(self.train_motions + self.val_motions)
        torch.manual_seed(cfg.seed)
        spec = self.tok.spec
        self.model: TokenGPT = self._build(
            {
                "nb_code": spec.nb_code,
                "num_streams": spec.num_streams,
                "n_layer": cfg.n_layer,
                "n_head": cfg.n_head,
                "n_embd": cfg.n_embd,
                "block_size": cfg.block_size,
                "dropout": cfg.dropout,
                "text_dim": TEXT_DIM if cfg.use_text else 0,
            }
        )
        self.train_clips: list[TokenClip] = []
        self.val_clips: list[TokenClip] = []
        self.windows: TokenWindows | None = None
        self.caption_table: dict[str, torch.Tensor] = {}
        self.cond_gen = torch.Generator().manual_seed(cfg.seed + 1)  # caption dropout
        self.unigram = self.bigram = np.zeros(0)

    def _build(self, hparams: dict[str, Any]) -> TokenGPT:
        self.model = TokenGPT(**hparams).to(self.device)
        return self.model

    def load_corpus(self, cache: Path) -> None:
        """Token clips from ``cache`` when it holds these inputs' tokens, else encoded (and cached); then
        the window sampler, the caption embeddings and the n-gram baselines stored with the prior."""
        cfg = self.cfg
        captions = Captions.load(resolve_repo_path(cfg.captions))
        self.train_clips, self.val_clips = build_corpus(
            self.tok,
            self.train_motions,
            self.val_motions,
            self.dataset,
            captions,
            cfg.mirror_augment,
            cfg.speed_augment,
            cache,
        )
        clips = self.train_clips + self.val_clips
        texts = sorted({c.caption for c in clips if c.caption}) if cfg.use_text else []
        self.caption_table = dict(zip(texts, torch.as_tensor(embed_texts(texts)), strict=True))
        self.windows = TokenWindows(self.train_clips, cfg.block_size - 1, cfg.seed)
        self.unigram, self.bigram = ngram_counts([c.tokens for c in self.train_clips], self.tok.spec.nb_code)
        log.info(
            "%d training sequences (%d tokens), %d held-out clips: %s; %.2fM parameters",
            len(self.train_clips),
            sum(len(c.tokens) for c in self.train_clips),
            len(self.val_clips),
            ", ".join(c.name for c in self.val_clips) or "none",
            sum(p.numel() for p in self.model.parameters()) / 1e6,
        )

    # ------------------------------------------------------------------------------------------ TrainTask
    def draw(self, batch_size: int, rows: slice) -> tuple[tuple[Any, ...], torch.Tensor]:
        """This rank's ``rows`` of a global batch of windows: (tokens, mask, text, has_text) on the device,
        and the window picks. Every rank draws the whole batch, so the generators advance alike."""
        assert self.windows is not None, "load_corpus() first"
        picks = self.windows.draw(batch_size)
        tokens, mask, captions = self.windows.gather(picks)
        text, has = self._text_batch(captions, self.cfg.cond_drop)
        batch = tuple(None if t is None else t[rows].to(self.device) for t in (tokens, mask, text, has))
        return batch, picks[rows]

    def _text_batch(
        self, captions: list[str | None], drop: float
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Caption embeddings (B, E) and a keep flag (B,), captions dropped with probability ``drop``
        (the unconditional branch of classifier-free guidance)."""
        if not self.caption_table:
            return None, None
        emb = torch.zeros(len(captions), TEXT_DIM)
        has = torch.zeros(len(captions))
        keep = torch.rand(len(captions), generator=self.cond_gen) >= drop
        for i, caption in enumerate(captions):
            if caption is not None and caption in self.caption_table and keep[i]:
                emb[i], has[i] = self.caption_table[caption], 1.0
        return emb, has

    def loss(self, net: nn.Module, batch: tuple[Any, ...], iteration: int) -> StepOutput:
        """Mean next-token cross-entropy per time step (summed over the streams) of the unpadded steps."""
        tokens, mask, text, has = batch  # (B, W, S), (B, W), (B, E) | None, (B,) | None
        with precision.autocast(self.cfg.amp, self.device):
            logits = net(tokens, text, has)  # (B, W, S, V)
        per_token = F.cross_entropy(logits.float().flatten(0, 2), tokens.flatten(), reduction="none").view(
            tokens.shape
        )
        loss = (per_token.sum(dim=2) * mask).sum() / mask.sum()
        detached = loss.detach()
        return StepOutput(
            loss, {"cross_entropy": loss}, {"loss": detached, "bits_per_token": detached / math.log(2)}
        )

    def term_weights(self) -> dict[str, float]:
        return {}

    def describe_batch(self, picks: torch.Tensor) -> tuple[bool, str]:
        """Token ids are finite by construction: a batch is never the suspect; name its clips."""
        assert self.windows is not None
        names = sorted(set(self.windows.names(picks)))
        return False, f"windows of {', '.join(names[:8])}" + (" ..." if len(names) > 8 else "")

    def host_record(self, stats: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {key: float(value) for key, value in stats.items()}

    @property
    def has_validation(self) -> bool:
        return bool(self.val_clips)

    def validate(self) -> dict[str, Any]:
        """Mean unconditional bits per token (per time step, summed over the streams) over the held-out
        clips, every token weighted equally: what ``evaluate_prior.py`` reports as nll_bits_per_token."""
        scorer = self.model if self.device.type == "cpu" else copy.deepcopy(self.model).cpu()  # scores on CPU
        bits = np.concatenate([prior_bits(scorer, c.tokens) for c in self.val_clips])
        return {BEST_METRIC: float(bits.mean())}

    def identity(self) -> dict[str, Any]:
        """A resumed run must read the same clips (content) and tokens (the tokenizer's bytes)."""
        return {"dataset": self.dataset, "tokenizer_sha256": self.tok.sha256}

    def state_dict(self) -> dict[str, Any]:
        """The prior's part of a checkpoint: what :class:`~motion_vqvae.prior.sampling.LoadedPrior`,
        evaluation and export read, and the sampler state a resume needs."""
        assert self.windows is not None
        inputs = self.inputs
        return {
            "model": self.model.state_dict(),
            "model_hparams": self.model.hparams(),
            "config": self.cfg.to_dict(),
            "token_spec": self.tok.spec.to_dict(),
            "tokenizer": str(Path(inputs.tokenizer).resolve()),
            "tokenizer_sha256": self.tok.sha256,
            "dataset": self.dataset,
            "motion_file": inputs.motion_file,
            "fps": inputs.fps,
            "quat_order": inputs.quat_order,
            "val_clips": [c.name for c in self.val_clips],
            "captions": dict(self.caption_table),
            "unigram": torch.as_tensor(self.unigram),
            "bigram": torch.as_tensor(self.bigram),
            "windows": self.windows.state_dict(),
            "cond_generator": self.cond_gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any], resume: bool, source: str | Path = "checkpoint") -> None:
        """Rebuild the model from ``state`` (shapes checked before anything is allocated) and load it; with
        ``resume`` the window sampler and the caption-dropout generator too."""
        check_model_shapes(TokenGPT, state["model_hparams"], state["model"], source)
        self._build(dict(state["model_hparams"])).load_state_dict(state["model"])
        if resume:
            assert self.windows is not None, "load_corpus() before resuming"
            self.windows.load_state_dict(state["windows"])
            self.cond_gen.set_state(state["cond_generator"])
