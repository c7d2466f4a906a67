"""Typed prior configuration (`prior: config: {...}` in ``configs/prior.yaml``), read by the project's loader.

Same rules as the tokenizer's config: every value is converted to its declared type, unknown keys fail
naming the closest valid one, and ``--set key=value`` overrides any key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from motion_vqvae.config_loader import ConfigLoader
from motion_vqvae.errors import InvalidValue
from motion_vqvae.training.rundir import RESUMABLE_KEYS
from motion_vqvae.typed_fields import config_field, typed_from_dict

SECTION = "prior"


@dataclass
class PriorConfig:
    """Every key the prior understands; each one changes what is trained or how it is sampled."""

    # --- data ---
    captions: str = config_field(
        "configs/captions.yaml", "clip-name patterns -> captions (text conditioning)"
    )
    mirror_augment: bool = config_field(
        True, "also train on the tokens of left-right mirrored training clips"
    )
    speed_augment: list[float] = config_field(
        [0.8, 0.9, 1.1, 1.25], "also train on the tokens of the training clips played at these speeds"
    )
    use_text: bool = config_field(True, "condition on sentence embeddings of the clip captions")
    # --- model (nanoGPT-sized for a CPU) ---
    n_layer: int = config_field(4, "transformer blocks", min=1, max=64)
    n_head: int = config_field(4, "attention heads per block", min=1, max=64)
    n_embd: int = config_field(128, "width of the residual stream", min=8, max=8192)
    block_size: int = config_field(
        64, "positions the model sees: the condition slot plus block_size-1 tokens", min=4, max=8192
    )
    dropout: float = config_field(0.3, "dropout in attention, MLP and embeddings", min=0.0, max=0.9)
    cond_drop: float = config_field(
        0.15,
        "probability of training a window without its caption (classifier-free guidance)",
        min=0.0,
        max=1.0,
    )
    # --- optimisation ---
    batch_size: int = config_field(16, "windows per step", min=1, max=65536)
    total_iter: int = config_field(3000, "optimizer steps", min=1, max=1_000_000_000)
    warmup_iter: int = config_field(
        100, "linear learning-rate warmup steps (at most a quarter of total_iter)", min=0, max=1_000_000_000
    )
    lr: float = config_field(3e-4, "peak learning rate (AdamW)", min=0.0, max=10.0)
    lr_scheduler: str = config_field("cosine", "after warmup", choices=("cosine", "multistep", "constant"))
    lr_milestones: list[int] = config_field([], "multistep: steps at which the rate is multiplied by gamma")
    gamma: float = config_field(
        0.1, "multistep: factor per milestone; cosine: final rate / peak rate", min=0.0, max=10.0
    )
    weight_decay: float = config_field(0.1, "AdamW weight decay on matrices", min=0.0, max=10.0)
    gradient_clip: float = config_field(1.0, "max gradient norm; 0 disables clipping", min=0.0, max=1e6)
    # --- sampling defaults ---
    temperature: float = config_field(0.5, "softmax temperature when sampling", min=1e-3, max=100.0)
    top_p: float = config_field(
        0.5, "nucleus sampling: smallest token set holding this probability", min=0.0, max=1.0
    )
    guidance_scale: float = config_field(
        2.5, "classifier-free guidance scale with a prompt (1 = none)", min=0.0, max=100.0
    )
    # --- logging and checkpoints ---
    eval_every: int = config_field(
        50, "held-out NLL (and maybe best.pt) every N steps", min=1, max=1_000_000_000
    )
    save_every: int = config_field(500, "write last.pt every N steps", min=1, max=1_000_000_000)
    print_iter: int = config_field(
        50, "append to metrics.jsonl and refresh the progress bar every N steps", min=1, max=1_000_000_000
    )
    use_wandb: bool = config_field(False, "log to Weights & Biases (honours WANDB_MODE=offline/disabled)")
    wandb_project: str = config_field("motion-vqvae-prior", "wandb project name")
    seed: int = config_field(0, "seed for torch and the window sampler", min=0, max=2**32 - 1)
    device: str = config_field("cpu", "torch device: cpu, cuda, auto")
    amp: str = config_field(
        "none", "forward pass precision: none | bf16 (autocast)", choices=("none", "bf16")
    )
    num_threads: int = config_field(0, "torch CPU threads; 0 = torch's default", min=0, max=1024)

    def __post_init__(self) -> None:
        if any(not 0.25 <= s <= 4.0 for s in self.speed_augment):
            raise InvalidValue(f"speed_augment factors must lie in [0.25, 4], got {self.speed_augment}")
        if self.n_embd % self.n_head:
            raise InvalidValue(
                f"n_embd={self.n_embd} must be a multiple of n_head={self.n_head}; "
                f"try n_embd={self.n_embd // self.n_head * self.n_head or self.n_head}"
            )

    @property
    def compile(self) -> bool:
        """Never: ``torch.compile`` applies to the tokenizer's convolutions; the prior is a small
        transformer whose sampling path (KV cache) is data dependent. A fact, not a key."""
        return False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> PriorConfig:
        """A copy with some keys changed, validated like a fresh load (a time budget changes total_iter)."""
        return typed_from_dict(PriorConfig, {**self.to_dict(), **overrides}, source="prior config")


PRIOR_RESUMABLE_KEYS = frozenset(
    f.name
    for f in dataclasses.fields(PriorConfig)
    if f.name in RESUMABLE_KEYS or f.name in ("temperature", "top_p", "guidance_scale")
)
"""Keys ``train_prior.py --resume --set`` may change: the schedule, logging and device keys the tokenizer's
resume allows, and the sampling defaults (read after training). Any other key changes the model or data."""


def default_prior_config_path() -> Path:
    """The shipped ``prior.yaml``: package data, so a wheel install finds it as a source checkout does."""
    return Path(str(resources.files("motion_vqvae") / "configs" / "prior.yaml"))


def load_prior_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PriorConfig:
    """``configs/prior.yaml`` (or ``path``) with ``--set key=value`` overrides, typed and validated."""
    return ConfigLoader(
        path or default_prior_config_path(), overrides, section=SECTION, schema=PriorConfig
    ).config
