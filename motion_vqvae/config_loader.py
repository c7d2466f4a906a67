"""Typed agent configuration loaded from YAML (`agent: config: {...}`), the original tool's layout.

Plain PyYAML reads ``lr: 2e-4`` as a string; here every value is converted to its declared type, unknown
keys fail naming the closest valid one, and cross-field rules are checked before anything is trained.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from motion_vqvae.errors import InvalidValue, MissingPath, UnknownKey
from motion_vqvae.typed_fields import config_field, typed_from_dict

_QUANTIZERS = ("orig", "ema", "reset", "ema_reset", "rvq", "fsq")
MAX_CODES = 65536  # codes per stream (nb_code, FSQ's product of levels): a token must fit in 16 bits


_opt = config_field


@dataclass
class AgentConfig:
    """Every key the agent understands; each one changes what is trained or how."""

    # --- data ---
    motion_file: str | None = _opt(None, "motion file, directory or glob; null trains on the bundled sample")
    robot: str = _opt("g1_29dof", "robot description: a name in sim2real/robots or a YAML path")
    mjcf: str | None = _opt(None, "MJCF used for kinematic metrics; null = the robot's, else the bundled G1")
    fps: float | None = _opt(
        None, "source fps for files without a time column (CSV); null = meta.json", min=1, max=1000
    )
    quat_order: str | None = _opt(None, "root quaternion order in the files", choices=("xyzw", "wxyz", None))
    target_fps: float | None = _opt(30.0, "resample every clip to this fps before training", min=1, max=1000)
    keep_transitions: bool = _opt(False, "keep NPY transition (blend) frames as part of the clips")
    repair_jumps: bool = _opt(True, "repair single-frame joint glitches by interpolation")
    mirror_augment: bool = _opt(True, "also train on left-right mirrored copies of the training clips")
    speed_augment: list[float] = _opt(
        [], "also train on copies of the training clips played at these speeds (e.g. [0.8, 1.25])"
    )
    val_fraction: float = _opt(0.1, "fraction of clips held out for validation", min=0.0, max=0.9)
    val_clips: list[str] | None = _opt(None, "explicit clip names held out (overrides val_fraction)")
    test_fraction: float = _opt(
        0.1, "fraction of clips held out as the test split (never used in training)", min=0.0, max=0.9
    )
    test_clips: list[str] | None = _opt(None, "explicit test clip names (overrides test_fraction)")
    max_val_frames: int | None = _opt(
        200_000,
        "validate on at most this many held-out frames per run (clips chosen by seed); null = all",
        min=1,
        max=1_000_000_000,
    )
    # --- optimisation ---
    batch_size: int = _opt(64, "windows per step", min=1, max=65536)
    window_size: int = _opt(
        32, "frames per training window; a multiple of stride_t**down_t", min=2, max=100_000
    )
    burn_in: int = _opt(
        0,
        "frames of real context before each training window, encoded and decoded but excluded from the "
        "loss (the causal decoder sees real history as when streaming); a multiple of stride_t**down_t",
        min=0,
        max=100_000,
    )
    total_iter: int = _opt(15000, "optimizer steps", min=1, max=1_000_000_000)
    warmup_iter: int = _opt(
        300,
        "linear learning-rate warmup steps (at most a quarter of total_iter is used)",
        min=0,
        max=1_000_000_000,
    )
    lr: float = _opt(2e-3, "peak learning rate (AdamW)", min=0.0, max=10.0)
    lr_scheduler: str = _opt("cosine", "after warmup", choices=("cosine", "multistep", "constant"))
    lr_milestones: list[int] = _opt([], "multistep: steps at which the rate is multiplied by gamma")
    gamma: float = _opt(
        0.05, "multistep: factor per milestone; cosine: final rate / peak rate", min=0.0, max=10.0
    )
    weight_decay: float = _opt(0.0, "AdamW weight decay", min=0.0, max=10.0)
    gradient_clip: float = _opt(1.0, "max gradient norm; 0 disables clipping", min=0.0, max=1e6)
    commit: float = _opt(0.02, "commitment loss weight", min=0.0, max=1e3)
    loss_vel: float = _opt(0.5, "weight of the loss on feature differences along time", min=0.0, max=1e3)
    loss_accel: float = _opt(
        3.0, "weight of the loss on second differences along time (smoothness)", min=0.0, max=1e3
    )
    loss_body_accel: float = _opt(
        0.02,
        "weight of the world body acceleration error (mm/frame^2, through forward kinematics)",
        min=0.0,
        max=1e3,
    )
    loss_body_pos: float = _opt(
        0.001,
        "weight of the root-relative body position error (mm, through forward kinematics)",
        min=0.0,
        max=1e3,
    )
    loss_foot_skate: float = _opt(
        0.0,
        "weight of the decoded soles' horizontal speed (mm/frame) where the reference foot is in contact",
        min=0.0,
        max=1e3,
    )
    loss_foot_ground: float = _opt(
        0.0,
        "weight of the decoded soles' height error (mm) where the reference foot is in contact, plus "
        "penetration below the floor beyond the reference's",
        min=0.0,
        max=1e3,
    )
    loss_com: float = _opt(
        0.0,
        "weight of the horizontal centre-of-mass offset from the soles' middle (mm), decoded vs reference",
        min=0.0,
        max=1e3,
    )
    physics_loss_warmup: float = _opt(
        0.0,
        "share of total_iter over which the physics loss weights (loss_foot_skate, loss_foot_ground, "
        "loss_com) rise linearly from 0, so the decoder learns poses first",
        min=0.0,
        max=1.0,
    )
    recons_loss: str = _opt("smooth_l1", "reconstruction loss", choices=("smooth_l1", "l1", "l2"))
    root_loss_weight: float = _opt(
        1.0, "loss weight of root features relative to joint angles", min=0.0, max=1e3
    )
    joint_weights_by_std: bool = _opt(
        True, "weight each joint angle's loss by its std, so the loss counts radians as the metrics do"
    )
    dof_vel_loss_weight: float = _opt(
        0.2, "loss weight of joint-velocity features (redundant with angles)", min=0.0, max=1e3
    )
    # --- model ---
    code_dim: int = _opt(64, "dimension of each codebook vector", min=1, max=4096)
    nb_code: int = _opt(
        512, "codes per codebook (per level): the vocabulary of a VQ/RVQ stream", min=2, max=MAX_CODES
    )
    mu: float = _opt(0.99, "EMA decay of the codebook", min=0.0, max=1.0)
    down_t: int = _opt(2, "number of temporal downsampling stages", min=0, max=8)
    stride_t: int = _opt(2, "stride of each downsampling stage", min=1, max=8)
    width: int = _opt(128, "channels of the conv encoder/decoder", min=1, max=4096)
    depth: int = _opt(2, "residual blocks per stage", min=1, max=64)
    dilation_growth_rate: int = _opt(3, "dilation multiplier between residual blocks", min=1, max=16)
    output_emb_width: int = _opt(
        64, "encoder output channels; the codes quantize them, so = code_dim", min=1, max=4096
    )
    vq_act: str = _opt("relu", "activation", choices=("relu", "gelu", "silu"))
    vq_norm: str = _opt("none", "normalization in residual blocks", choices=("none", "layer", "group"))
    quantizer: str = _opt(
        "rvq",
        "one-level VQ (orig|ema|reset|ema_reset), residual VQ (rvq) or FSQ (fsq)",
        choices=_QUANTIZERS,
    )
    num_quantizers: int = _opt(
        6, "rvq: levels, each its own EMA/reset codebook of nb_code codes", min=1, max=64
    )
    quantize_dropout: float = _opt(
        0.2, "rvq: probability a window trains on only its first k levels (k uniform)", min=0.0, max=1.0
    )
    fsq_levels: list[int] = _opt([8, 5, 5, 5], "fsq: values per digit; a token is their mixed-radix index")
    body_parts: str | None = _opt(
        "upper_lower",
        "null (one token stream set) or a partition of the robot YAML's body_parts (upper_lower)",
    )
    reset_threshold: float = _opt(
        0.75,
        "reset/ema_reset/rvq: re-seed a code whose EMA hits fall below this fraction of the average "
        "(batch latents / nb_code)",
        min=0.0,
        max=100.0,
    )
    l2_normalize_codes: bool = _opt(False, "match codes and encodings by direction (cosine distance)")
    causal: bool = _opt(True, "left-padded convs only, so tokens decode as a stream")
    prefer_expmap: bool = _opt(True, "root tilt as exp-map (3) instead of 6D rotation (6)")
    bound_joint_range: bool = _opt(
        True,
        "decoder output bounds joint angles to the robot YAML's ranges (mid + half-range * tanh); "
        "false only for a motion whose joints the robot YAML lacks",
    )
    # --- sim-to-real joint map ---
    apply_sim_to_real_map: bool = _opt(False, "export joint targets in the real robot's joint order")
    real_dof: int | None = _opt(
        None, "number of real robot joints; null = from the robot YAML", min=1, max=1000
    )
    sim_to_real_idx: list[int] | None = _opt(None, "explicit sim->real index list; overrides the robot YAML")
    # --- logging and checkpoints ---
    use_wandb: bool = _opt(False, "log to Weights & Biases (honours WANDB_MODE=offline/disabled)")
    wandb_project: str = _opt("motion-vqvae", "wandb project name")
    save_every: int = _opt(1000, "write last.pt every N steps", min=1, max=1_000_000_000)
    eval_every: int = _opt(500, "validate (and maybe write best.pt) every N steps", min=1, max=1_000_000_000)
    print_iter: int = _opt(
        50, "append to metrics.jsonl and refresh the progress bar every N steps", min=1, max=1_000_000_000
    )
    seed: int = _opt(42, "seed for torch, numpy and the window sampler", min=0, max=2**32 - 1)
    device: str = _opt("auto", "torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:1, ...")
    amp: str = _opt("none", "forward pass precision: none | bf16 (autocast)", choices=("none", "bf16"))
    compile: bool = _opt(False, "torch.compile the encoder and decoder (first steps pay the compile time)")
    num_threads: int = _opt(0, "torch CPU threads; 0 = torch's default", min=0, max=1024)

    def __post_init__(self) -> None:
        fpt = self.stride_t**self.down_t
        if self.window_size % fpt:
            raise InvalidValue(
                f"window_size={self.window_size} must be a multiple of stride_t**down_t={fpt} "
                f"(frames per token); try window_size={max(fpt, self.window_size // fpt * fpt)}"
            )
        if self.output_emb_width != self.code_dim:
            raise InvalidValue(
                f"output_emb_width={self.output_emb_width} must equal code_dim={self.code_dim}: "
                "the quantizer works directly on the encoder's output channels; set both to the same value"
            )
        if self.sim_to_real_idx is not None:
            if len(set(self.sim_to_real_idx)) != len(self.sim_to_real_idx):
                raise InvalidValue(f"sim_to_real_idx has duplicate indices: {self.sim_to_real_idx}")
            if self.real_dof is not None and any(not 0 <= i < self.real_dof for i in self.sim_to_real_idx):
                raise InvalidValue(
                    f"sim_to_real_idx entries must be in [0, real_dof={self.real_dof}), "
                    f"got {self.sim_to_real_idx}"
                )
        if self.burn_in % fpt:
            raise InvalidValue(
                f"burn_in={self.burn_in} must be a multiple of stride_t**down_t={fpt} (frames per token)"
            )
        if self.quantizer == "fsq" and (not self.fsq_levels or min(self.fsq_levels) < 2):
            raise InvalidValue(f"fsq_levels must be a non-empty list of ints >= 2, got {self.fsq_levels}")
        if self.quantizer == "fsq" and math.prod(self.fsq_levels) > MAX_CODES:
            raise InvalidValue(
                f"fsq_levels {self.fsq_levels} make {math.prod(self.fsq_levels)} codes per stream; at most "
                f"{MAX_CODES} are allowed (as for nb_code): use fewer or smaller levels"
            )
        if self.quantizer in ("rvq", "fsq") and self.l2_normalize_codes:
            raise InvalidValue(
                f"l2_normalize_codes applies to one-level VQ only, not quantizer: {self.quantizer}"
            )
        if any(not 0.25 <= s <= 4.0 for s in self.speed_augment):
            raise InvalidValue(f"speed_augment factors must lie in [0.25, 4], got {self.speed_augment}")

    @property
    def frames_per_token(self) -> int:
        return self.stride_t**self.down_t

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> AgentConfig:
        """Typed construction: converts each value to its field's type, rejecting unknown keys."""
        return typed_from_dict(cls, values, source)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> AgentConfig:
        """A copy with some keys changed, validated like a fresh load."""
        return AgentConfig.from_dict({**self.to_dict(), **overrides})


class ConfigLoader:
    """Reads `SECTION: config: {...}` YAML files (`agent:` by default, as the original tool's README showed).

    ``schema`` is the typed dataclass the section is loaded into (``AgentConfig``; the prior passes its own).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        overrides: list[str] | None = None,
        values: dict[str, Any] | None = None,
        *,
        section: str = "agent",
        schema: type = AgentConfig,
    ) -> None:
        """``overrides`` are ``key=value`` texts (``--set``); ``values`` are taken as they are (paths)."""
        self.path = Path(path) if path is not None else default_config_path()
        if not self.path.is_file():
            raise MissingPath(f"config file {self.path} does not exist; see configs/{section}.yaml")
        try:
            doc = yaml.safe_load(self.path.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or err
            raise InvalidValue(f"{self.path}: YAML syntax error{where}: {problem}; fix the file") from None
        try:
            raw = doc[section]["config"]
        except (KeyError, TypeError):
            raise UnknownKey(
                f"{self.path}: expected the layout '{section}: config: {{...}}' (as configs/{section}.yaml)"
            ) from None
        self.raw: dict[str, Any] = dict(raw or {})
        self.raw.update(parse_overrides(overrides or [], schema))
        self.raw.update(values or {})
        self.config = typed_from_dict(schema, self.raw, source=str(self.path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)


def parse_overrides(items: list[str], schema: type = AgentConfig) -> dict[str, Any]:
    """``key=value`` texts as config values: text keys (paths, names) verbatim, others read as YAML.

    A path or glob such as ``motion_file=data/*.csv`` is never YAML-parsed (``*`` would be an alias), and a
    value that is not valid YAML is passed on as text for the typed conversion to judge.
    """
    hints = typing.get_type_hints(schema)
    text_keys = {f.name for f in dataclasses.fields(schema) if hints[f.name] in _TEXT}
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidValue(f"--set expects key=value, got {item!r}")
        if not value.strip():
            parsed[key] = None
        elif key in text_keys:
            parsed[key] = value
        else:
            try:
                parsed[key] = yaml.safe_load(value)
            except yaml.YAMLError:
                parsed[key] = value
    return parsed


_TEXT = (str, str | None)


def default_config_path() -> Path:
    """The shipped ``agent.yaml``: package data, so a wheel install finds it as a source checkout does."""
    return Path(str(resources.files("motion_vqvae") / "configs" / "agent.yaml"))


def save_config(config: Any, path: str | Path, section: str = "agent") -> None:
    """Write the resolved config beside a run, in the same layout it is read from."""
    Path(path).write_text(yaml.safe_dump({section: {"config": dataclasses.asdict(config)}}, sort_keys=False))
