"""The three-way clip split: ``train`` (windows), ``val`` (selection) and ``test`` (reported, never used).

``val`` clips select: ``best.pt``, probes and loss weights are chosen on them. The ``test`` clips are scored
by ``evaluate.py --split test`` and nothing in training reads them, so a figure reported on them is not
flattered by a choice made on the same clips. Clips are split whole (a clip's frames never straddle two
splits), by name (``val_clips``, ``test_clips``) or by seeded fractions (``val_fraction``,
``test_fraction``), and the split is written to the run directory as ``split.json`` at the start of a run.

Seeded fractions shuffle the clip names once with ``seed``: ``val`` takes the first share (the clips it
always took, so earlier runs' validation is unchanged), ``test`` the next. Training keeps at least one
clip; ``val`` is filled before ``test``; a dataset too small for all three says so in the log.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion
from motion_vqvae.errors import InvalidValue, MissingPath

log = logging.getLogger(__name__)

SPLIT_FILE = "split.json"
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Clip names of each split (disjoint)."""

    train: list[str]
    val: list[str]
    test: list[str]

    def to_dict(self) -> dict[str, list[str]]:
        return asdict(self)

    def names(self, split: str) -> list[str]:
        """The clip names of ``split`` (train, val or test)."""
        if split not in SPLIT_NAMES:
            raise InvalidValue(f"split must be one of {list(SPLIT_NAMES)}, got {split!r}")
        return list(getattr(self, split))

    def write(self, run_dir: str | Path) -> Path:
        """``run_dir/split.json``: ``{"train": [...], "val": [...], "test": [...]}``."""
        path = Path(run_dir) / SPLIT_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def read(cls, path: str | Path) -> Split:
        """A ``split.json``; a missing or malformed file is refused naming it."""
        path = Path(path)
        if not path.is_file():
            raise MissingPath(f"{path} does not exist: the run predates split.json or is not a run directory")
        try:
            data: Any = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidValue(f"{path} is not JSON ({exc}); it is damaged") from None
        if not isinstance(data, dict) or set(data) != set(SPLIT_NAMES):
            raise InvalidValue(
                f"{path} must hold exactly the lists {list(SPLIT_NAMES)}; it holds {data!r:.200}"
            )
        for key in SPLIT_NAMES:
            if not isinstance(data[key], list) or not all(isinstance(n, str) for n in data[key]):
                raise InvalidValue(f"{path}: {key!r} must be a list of clip names, got {data[key]!r:.200}")
        return cls(**{k: list(data[k]) for k in SPLIT_NAMES})


def split_names(names: list[str], cfg: AgentConfig) -> Split:
    """The split of ``names`` the config asks for (see the module docstring)."""
    known = set(names)
    for key in ("val_clips", "test_clips"):
        missing = [n for n in getattr(cfg, key) or [] if n not in known]
        if missing:
            raise InvalidValue(
                f"{key} {missing} are not among the loaded clips ({sorted(names)[:10]}...); "
                f"fix the names or drop --set {key}"
            )
    both = sorted(set(cfg.val_clips or []) & set(cfg.test_clips or []))
    if both:
        raise InvalidValue(f"clips {both} are in both val_clips and test_clips; a clip belongs to one split")
    order = sorted(names)
    np.random.default_rng(cfg.seed).shuffle(order)
    val = list(cfg.val_clips) if cfg.val_clips else _share(order, cfg.val_fraction, set(cfg.test_clips or []))
    if cfg.test_clips:
        test = list(cfg.test_clips)
    else:
        rest = [n for n in order if n not in set(val)]
        test = _share(rest, cfg.test_fraction, set(), room=len(rest) - 1)
    taken = set(val) | set(test)
    train = [n for n in names if n not in taken]
    if not train:
        raise InvalidValue(
            "every clip is held out for validation or test; lower val_fraction/test_fraction or shorten "
            "val_clips/test_clips"
        )
    if not test and (cfg.test_fraction > 0 or cfg.test_clips):
        log.warning(
            "test split: empty: %d clip(s) are too few for train, val and test (training keeps one, "
            "validation is filled first); evaluate.py --split test has nothing to score on this data",
            len(names),
        )
    return Split(
        train=train, val=[n for n in names if n in set(val)], test=[n for n in names if n in set(test)]
    )


def _share(order: list[str], fraction: float, excluded: set[str], room: int | None = None) -> list[str]:
    """The first ``fraction`` of ``order`` (at least one when the fraction is positive), leaving training
    at least one clip (``room``: how many may be taken; default all but one)."""
    pool = [n for n in order if n not in excluded]
    room = len(pool) - 1 if room is None else room
    if fraction <= 0:
        return []
    return pool[: max(0, min(room, max(1, round(fraction * len(order)))))]


def split_motions(motions: list[Motion], cfg: AgentConfig) -> tuple[Split, dict[str, list[Motion]]]:
    """The split of ``motions`` and the clips of each part (in the given order)."""
    split = split_names([m.name for m in motions], cfg)
    parts = {key: [m for m in motions if m.name in set(split.names(key))] for key in SPLIT_NAMES}
    log.info(
        "split: %d train, %d val (selects best.pt), %d test clip(s) (never used in training; "
        "evaluate.py --split test scores them): %s",
        len(split.train),
        len(split.val),
        len(split.test),
        ", ".join(split.test) or "none",
    )
    return split, parts
