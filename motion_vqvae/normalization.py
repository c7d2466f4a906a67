"""Per-column z-score statistics for feature arrays, stored as plain lists so checkpoints load them safely.

The statistics come from the training clips only; a floor on the standard deviation keeps columns that
barely move (e.g. the ankle-roll joints that are constant in asap_g1_23dof) from turning numerical noise
into large normalized values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Moments:
    """Frame count, per-column mean and sum of squared deviations of some feature frames.

    Merging two (Chan et al.'s parallel update) gives the moments of the union without revisiting a frame,
    so statistics over a dataset too large for memory come from one streaming pass, clip by clip, in any
    order and across processes; each clip's deviations are taken around its own mean, which avoids the
    cancellation of ``E[x^2] - E[x]^2``.
    """

    count: int
    mean: np.ndarray  # (F,)
    m2: np.ndarray  # (F,)

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """Moments of the rows of a ``(T, F)`` array."""
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        return cls(len(x), mean, ((x - mean) ** 2).sum(axis=0))

    def merge(self, other: Moments) -> Moments:
        """Moments of both sets of frames."""
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return Moments(count, mean, m2)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moments:
        return cls(int(data["count"]), np.asarray(data["mean"], dtype=np.float64), np.asarray(data["m2"]))


@dataclass
class Normalizer:
    """Feature-wise ``(x - mean) / std``; ``std`` already includes the floor applied at fit time."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,), strictly positive

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.std = np.asarray(self.std, dtype=np.float64)
        if self.mean.ndim != 1 or self.mean.shape != self.std.shape:
            raise ValueError(
                "Normalizer: mean and std must be 1-D of equal length, "
                f"got {self.mean.shape} and {self.std.shape}"
            )
        if not np.all(np.isfinite(self.mean)) or not np.all(np.isfinite(self.std)):
            raise ValueError("Normalizer: mean and std must be finite; refit on clean features")
        if np.any(self.std <= 0):
            bad = np.flatnonzero(self.std <= 0).tolist()
            raise ValueError(
                f"Normalizer: std must be positive, columns {bad} are not; fit with a std_floor > 0"
            )

    @property
    def dim(self) -> int:
        return len(self.mean)

    @classmethod
    def fit(cls, features: Sequence[np.ndarray], std_floor: float | np.ndarray = 1e-2) -> Normalizer:
        """Statistics over every frame of every clip (longer clips weigh more), std raised to ``std_floor``.

        ``std_floor`` is a scalar or one value per column (see ``FeatureLayout.default_std_floor``).
        """
        arrays = [np.asarray(f, dtype=np.float64) for f in features]
        if not arrays:
            raise ValueError("Normalizer.fit: no feature arrays given; pass at least one (T, F) array")
        dim = arrays[0].shape[-1] if arrays[0].ndim == 2 else -1
        for i, a in enumerate(arrays):
            if a.ndim != 2 or a.shape[1] != dim or len(a) == 0:
                raise ValueError(
                    f"Normalizer.fit: array {i} has shape {a.shape}; every array must be (T>0, {dim})"
                )
            if not np.all(np.isfinite(a)):
                raise ValueError(f"Normalizer.fit: array {i} contains NaN or inf; clean the clip first")
        floor = np.broadcast_to(np.asarray(std_floor, dtype=np.float64), (dim,))
        if np.any(floor <= 0):
            raise ValueError(f"Normalizer.fit: std_floor must be positive, got {std_floor}")
        moments = Moments.of(arrays[0])
        for a in arrays[1:]:
            moments = moments.merge(Moments.of(a))
        return cls.from_moments(moments, floor)

    @classmethod
    def from_moments(cls, moments: Moments, std_floor: float | np.ndarray) -> Normalizer:
        """Statistics from accumulated :class:`Moments`, std raised to ``std_floor`` (scalar or columns)."""
        if moments.count == 0:
            raise ValueError("Normalizer.from_moments: no frames were accumulated")
        floor = np.broadcast_to(np.asarray(std_floor, dtype=np.float64), moments.mean.shape)
        return cls(mean=moments.mean, std=np.maximum(np.sqrt(moments.m2 / moments.count), floor))

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` over the last axis."""
        self._check(x)
        return (x - self.mean) / self.std

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize`."""
        self._check(z)
        return z * self.std + self.mean

    def _check(self, x: np.ndarray) -> None:
        if np.shape(x)[-1:] != (self.dim,):
            raise ValueError(f"Normalizer: expected {self.dim} feature columns, got shape {np.shape(x)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain lists: loadable with ``torch.load(weights_only=True)`` and writable to JSON."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or set(data) != {"mean", "std"}:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise KeyError(f"Normalizer.from_dict: expected keys ['mean', 'std'], got {got}")
        return cls(mean=np.asarray(data["mean"]), std=np.asarray(data["std"]))
