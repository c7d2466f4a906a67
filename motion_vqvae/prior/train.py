"""Training the prior: the run state (one object the loop owns and the checkpoint saves) and the loop.

Like the tokenizer's loop: tqdm progress, ``metrics.jsonl`` (train and held-out rows), atomic
``weights_only`` checkpoints ``{last,best}.pt`` (best by held-out bits per token), Ctrl-C or a time budget
saving ``last.pt``, and ``resume`` continuing exactly (model, optimizer, schedule, window sampler, RNG).
The same non-finite guard (:mod:`motion_vqvae.training.nonfinite`) skips a step with a NaN/inf loss or
gradient, counts it (``nonfinite_skipped``) and stops the run after a few in a row.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from motion_vqvae.prior.config import PriorConfig
from motion_vqvae.prior.data import (
    Captions,
    TokenClip,
    TokenWindows,
    build_corpus,
    resolve_repo_path,
)
from motion_vqvae.prior.model import TokenGPT
from motion_vqvae.prior.scoring import ngram_counts, prior_bits
from motion_vqvae.prior.text import TEXT_DIM, embed_texts
from motion_vqvae.tokenizer import Tokenizer
from motion_vqvae.training.checkpoint import capture_rng_states, restore_rng_states, save_checkpoint
from motion_vqvae.training.nonfinite import NonFiniteGuard, gradient_norm
from motion_vqvae.training.schedule import build_optimizer

log = logging.getLogger(__name__)


PRIOR_RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints", "tokens.pt")
"""What a prior's training writes into its run folder; ``train_prior.py --overwrite`` removes these only."""


class PriorRun:
    """Config, data, model and optimisation state of one prior training run."""

    def __init__(
        self,
        cfg: PriorConfig,
        tokenizer: str | Path,
        motion_file: str | Path,
        fps: float | None,
        out: Path,
        *,
        quat_order: str | None = None,
    ):
        self.cfg, self.out = cfg, Path(out)
        self.motion_file, self.fps, self.quat_order = str(motion_file), fps, quat_order
        torch.manual_seed(cfg.seed)
        self.tok = Tokenizer.load(tokenizer)
        self.tokenizer_sha256 = self.tok.sha256
        captions = Captions.load(resolve_repo_path(cfg.captions))
        self.train_clips, self.val_clips = build_corpus(
            self.tok,
            motion_file,
            fps,
            quat_order,
            captions,
            cfg.mirror_augment,
            cfg.speed_augment,
            self.out / "tokens.pt",
        )
        texts = (
            sorted({c.caption for c in self.train_clips + self.val_clips if c.caption})
            if cfg.use_text
            else []
        )
        self.caption_table = dict(zip(texts, torch.as_tensor(embed_texts(texts)), strict=True))
        spec = self.tok.spec
        self.model = TokenGPT(
            nb_code=spec.nb_code,
            num_streams=spec.num_streams,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
            block_size=cfg.block_size,
            dropout=cfg.dropout,
            text_dim=TEXT_DIM if cfg.use_text else 0,
        )
        self.optimizer, self.scheduler = build_optimizer(self.model, cfg)
        self.guard = NonFiniteGuard(self.model, dataclasses.asdict(cfg))
        self.windows = TokenWindows(self.train_clips, cfg.block_size - 1, cfg.seed)
        self.cond_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.unigram, self.bigram = ngram_counts([c.tokens for c in self.train_clips], spec.nb_code)
        self.iteration, self.best_metric = 0, math.inf
        log.info(
            "%d training sequences (%d tokens), %d held-out clips: %s; %.2fM parameters",
            len(self.train_clips),
            sum(len(c.tokens) for c in self.train_clips),
            len(self.val_clips),
            ", ".join(c.name for c in self.val_clips),
            sum(p.numel() for p in self.model.parameters()) / 1e6,
        )

    # ------------------------------------------------------------------ one step, validation
    def text_batch(
        self, captions: list[str | None], drop: float
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Caption embeddings (B, E) and a keep flag (B,), captions dropped with probability ``drop``."""
        if not self.caption_table:
            return None, None
        emb = torch.zeros(len(captions), TEXT_DIM)
        has = torch.zeros(len(captions))
        keep = torch.rand(len(captions), generator=self.cond_gen) >= drop
        for i, caption in enumerate(captions):
            if caption is not None and caption in self.caption_table and keep[i]:
                emb[i], has[i] = self.caption_table[caption], 1.0
        return emb, has

    def step(self) -> dict[str, float]:
        tokens, mask, captions = self.windows.sample(self.cfg.batch_size)  # (B, W, S), (B, W)
        self.guard.before_forward(self.iteration + 1)
        text, has = self.text_batch(captions, self.cfg.cond_drop)
        logits = self.model(tokens, text, has)  # (B, W, S, V)
        loss_all = F.cross_entropy(logits.flatten(0, 2), tokens.flatten(), reduction="none").view(
            tokens.shape
        )
        loss = (loss_all.sum(dim=2) * mask).sum() / mask.sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = gradient_norm(self.model.parameters(), self.cfg.gradient_clip)
        self.guard.apply(self.optimizer, self.iteration + 1, {"cross_entropy": loss, "total": loss}, norm)
        self.scheduler.step()  # also after a skipped step: the schedule follows the iteration
        self.guard.poll()  # this step reads its loss anyway: check every step
        return {
            "loss": float(loss.detach()),
            "bits_per_token": float(loss.detach()) / math.log(2),
            "nonfinite_skipped": self.guard.skipped,
        }

    def heldout_bits(self, clips: list[TokenClip] | None = None) -> float:
        """Mean unconditional bits per token over the held-out clips (all tokens weighted equally)."""
        clips = self.val_clips if clips is None else clips
        bits = np.concatenate([prior_bits(self.model, c.tokens) for c in clips])
        return float(bits.mean())

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "model_hparams": self.model.hparams(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "windows": self.windows.state_dict(),
            "cond_generator": self.cond_gen.get_state(),
            "rng": capture_rng_states(next(self.model.parameters()).device),
            "iteration": self.iteration,
            "best_metric": self.best_metric,
            "config": dataclasses.asdict(self.cfg),
            "token_spec": self.tok.spec.to_dict(),
            "tokenizer": str(self.tok.path.resolve()),
            "tokenizer_sha256": self.tokenizer_sha256,
            "motion_file": self.motion_file,
            "fps": self.fps,
            "quat_order": self.quat_order,
            "val_clips": [c.name for c in self.val_clips],
            "captions": {c: e for c, e in self.caption_table.items()},
            "unigram": torch.as_tensor(self.unigram),
            "bigram": torch.as_tensor(self.bigram),
        }

    def save(self, path: Path) -> None:
        save_checkpoint(self.state_dict(), path)

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.windows.load_state_dict(state["windows"])
        self.cond_gen.set_state(state["cond_generator"])
        restore_rng_states(state["rng"], next(self.model.parameters()).device)
        self.iteration, self.best_metric = int(state["iteration"]), float(state["best_metric"])


def train(run: PriorRun, time_budget_s: float | None = None) -> dict[str, Any]:
    """Steps from ``run.iteration`` to ``total_iter`` (or the budget); returns the last held-out row."""
    cfg = run.cfg
    ckpt = run.out / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    metrics = run.out / "metrics.jsonl"
    deadline = time.monotonic() + time_budget_s if time_budget_s else math.inf
    row: dict[str, Any] = {}
    run.model.train()
    bar = tqdm(total=cfg.total_iter, initial=run.iteration, desc="prior", unit="it", dynamic_ncols=True)
    stopped_by = "total_iter"
    try:
        while run.iteration < cfg.total_iter:
            if time.monotonic() >= deadline:
                stopped_by = "time budget"
                break
            stats = run.step()
            run.iteration += 1
            bar.update(1)
            it = run.iteration
            if it % cfg.print_iter == 0:
                bar.set_postfix(bits=f"{stats['bits_per_token']:.2f}")
                _append(
                    metrics,
                    {"iteration": it, "split": "train", "lr": run.optimizer.param_groups[0]["lr"], **stats},
                )
            if run.val_clips and it % cfg.eval_every == 0:
                row = _validate(run, metrics, ckpt)
            if it % cfg.save_every == 0:
                run.save(ckpt / "last.pt")
    except KeyboardInterrupt:
        stopped_by = "Ctrl-C"
    finally:
        bar.close()
    run.save(ckpt / "last.pt")  # at a step boundary; an error inside a step keeps the last checkpoint
    if stopped_by != "Ctrl-C" and run.val_clips and (not row or run.iteration % cfg.eval_every):
        row = _validate(run, metrics, ckpt)
    if not (ckpt / "best.pt").exists():
        run.save(ckpt / "best.pt")
    log.info("stopped by %s at iteration %d; checkpoints in %s", stopped_by, run.iteration, ckpt)
    if stopped_by == "Ctrl-C":
        raise KeyboardInterrupt
    return row


def _validate(run: PriorRun, metrics: Path, ckpt: Path) -> dict[str, Any]:
    bits = run.heldout_bits()
    run.model.train()
    row = {"iteration": run.iteration, "split": "val", "nll_bits_per_token": bits}
    _append(metrics, row)
    if bits < run.best_metric:
        run.best_metric = bits
        run.save(ckpt / "best.pt")
    log.info("iteration %d: held-out %.3f bits/token (best %.3f)", run.iteration, bits, run.best_metric)
    return row


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
