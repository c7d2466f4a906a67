"""The token structure of a tokenizer, stored once and read everywhere: :class:`TokenSpec`.

A token at one time step is a tuple of *streams*, ordered part-major: for every body part (``("body",)``
when the whole body is one part), one entry per quantizer level. Each stream has its own vocabulary size:
``nb_code`` for a VQ or an RVQ level, ``prod(fsq_levels)`` for FSQ (the mixed-radix index of the digits,
first digit most significant). A one-level, one-part tokenizer is the special case with one stream, whose
tokens are plain ints (shape ``[T]``); every other tokenizer takes ``[T, S]``.

The model writes ``TokenSpec.to_dict()`` into its checkpoint and the export manifest; evaluation, export,
the runtime, the wrapper, the batched decoder and the prior rebuild it with :meth:`TokenSpec.from_dict` and
never re-derive it. It lives in :mod:`sim2real` (numpy only) so the robot side and the training side read
the same definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

QUANTIZER_KINDS = ("vq", "rvq", "fsq")
_KEYS = ("kind", "num_levels", "nb_code", "fsq_levels", "parts", "frames_per_token", "fps")


@dataclass(frozen=True)
class TokenSpec:
    """Levels, their sizes, FSQ digits, body parts, frames per token and fps of one tokenizer."""

    kind: str
    """``vq`` (one codebook level), ``rvq`` (``num_levels`` residual codebooks) or ``fsq``."""
    num_levels: int
    """Quantizer levels per part (1 for ``vq`` and ``fsq``)."""
    nb_code: int
    """Codes per level for ``vq``/``rvq``; ``prod(fsq_levels)`` for ``fsq``."""
    fsq_levels: tuple[int, ...] | None
    """FSQ digits' radices (e.g. ``(8, 5, 5, 5)``), ``None`` for codebook quantizers."""
    parts: tuple[str, ...]
    """Body parts, each with its own token streams (``("body",)`` for one whole-body stream set)."""
    frames_per_token: int
    """Motion frames one token decodes to."""
    fps: float
    """Frame rate of the motion the tokens decode to (the training fps), frames per second."""

    def __post_init__(self) -> None:
        if self.kind not in QUANTIZER_KINDS:
            raise ValueError(f"TokenSpec.kind must be one of {QUANTIZER_KINDS}, got {self.kind!r}")
        if not isinstance(self.num_levels, int) or self.num_levels < 1:
            raise ValueError(f"TokenSpec.num_levels must be an int >= 1, got {self.num_levels!r}")
        if self.kind != "rvq" and self.num_levels != 1:
            raise ValueError(f"TokenSpec: kind {self.kind!r} has one level, got num_levels={self.num_levels}")
        if self.kind == "fsq":
            if not self.fsq_levels or any(not isinstance(d, int) or d < 2 for d in self.fsq_levels):
                raise ValueError(f"TokenSpec.fsq_levels must be ints >= 2, got {self.fsq_levels!r}")
            if self.nb_code != math.prod(self.fsq_levels):
                raise ValueError(
                    f"TokenSpec: fsq nb_code must be prod(fsq_levels) = {math.prod(self.fsq_levels)}, "
                    f"got {self.nb_code}"
                )
        elif self.fsq_levels is not None:
            raise ValueError(f"TokenSpec.fsq_levels is only for kind 'fsq', got {self.fsq_levels!r}")
        if not isinstance(self.nb_code, int) or self.nb_code < 2:
            raise ValueError(f"TokenSpec.nb_code must be an int >= 2, got {self.nb_code!r}")
        if not self.parts or len(set(self.parts)) != len(self.parts):
            raise ValueError(f"TokenSpec.parts must be unique names, got {self.parts!r}")
        if not isinstance(self.frames_per_token, int) or self.frames_per_token < 1:
            raise ValueError(f"TokenSpec.frames_per_token must be an int >= 1, got {self.frames_per_token!r}")
        if not (isinstance(self.fps, float) and math.isfinite(self.fps) and 1.0 <= self.fps <= 1000.0):
            raise ValueError(f"TokenSpec.fps must be a float in [1, 1000] frames/s, got {self.fps!r}")

    # ------------------------------------------------------------------ structure
    @property
    def num_streams(self) -> int:
        """Entries of one token: parts x levels."""
        return len(self.parts) * self.num_levels

    @property
    def is_single(self) -> bool:
        """One stream: tokens are plain ints, ``[T]`` sequences, a ``Discrete`` action space."""
        return self.num_streams == 1

    @property
    def stream_sizes(self) -> tuple[int, ...]:
        """Vocabulary size of every stream, part-major (the ``MultiDiscrete`` nvec)."""
        return (self.nb_code,) * self.num_streams

    @property
    def stream_names(self) -> tuple[str, ...]:
        """``part/L<level>`` per stream, for logs, plots and metric names."""
        return tuple(f"{part}/L{level}" for part in self.parts for level in range(self.num_levels))

    def stream_index(self, part: str, level: int) -> int:
        """Position of ``(part, level)`` in a token tuple."""
        if part not in self.parts:
            raise KeyError(f"unknown body part {part!r}; this tokenizer has {list(self.parts)}")
        if not 0 <= level < self.num_levels:
            raise ValueError(f"level must be in [0, {self.num_levels - 1}], got {level}")
        return self.parts.index(part) * self.num_levels + level

    @property
    def bits_per_token(self) -> float:
        """Information in one full token (all streams)."""
        return self.num_streams * math.log2(self.nb_code)

    def bits_per_second(self, levels: int | None = None) -> float:
        """Bit rate when decoding the first ``levels`` levels of every part (all by default)."""
        used = self.num_levels if levels is None else self.check_levels(levels)
        return len(self.parts) * used * math.log2(self.nb_code) * self.fps / self.frames_per_token

    def check_levels(self, levels: int) -> int:
        """``levels`` as an int in ``[1, num_levels]``, or ValueError."""
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)):
            raise TypeError(f"levels must be an int, got {type(levels).__name__}")
        if not 1 <= int(levels) <= self.num_levels:
            raise ValueError(f"levels must be in [1, {self.num_levels}] for this tokenizer, got {levels}")
        return int(levels)

    # ------------------------------------------------------------------ FSQ digits
    def fsq_digits(self, index: Any) -> np.ndarray:
        """Mixed-radix digits ``[..., len(fsq_levels)]`` of FSQ indices (first digit most significant)."""
        if self.fsq_levels is None:
            raise ValueError(f"fsq_digits: a {self.kind!r} tokenizer has no FSQ digits")
        rest = np.asarray(index, np.int64)
        digits = []
        for radix in reversed(self.fsq_levels):
            digits.append(rest % radix)
            rest = rest // radix
        return np.stack(digits[::-1], axis=-1)

    def fsq_index(self, digits: Any) -> np.ndarray:
        """Inverse of :meth:`fsq_digits`."""
        if self.fsq_levels is None:
            raise ValueError(f"fsq_index: a {self.kind!r} tokenizer has no FSQ digits")
        digits = np.asarray(digits, np.int64)
        index = np.zeros(digits.shape[:-1], np.int64)
        for k, radix in enumerate(self.fsq_levels):
            index = index * radix + digits[..., k]
        return index

    # ------------------------------------------------------------------ validation
    def check_tokens(self, tokens: Any, *, batched: bool = False) -> np.ndarray:
        """Tokens as int64 ``[..., T, S]`` (``[..., T]`` for one stream), or ValueError naming the rule.

        One-stream tokens are ``[T]`` (``[B, T]`` with ``batched``); others ``[T, S]`` (``[B, T, S]``).
        """
        arr = np.asarray(tokens)
        ndim = (1 if self.is_single else 2) + int(batched)
        shape = ("[B, T]" if batched else "[T]") if self.is_single else ("[B, T, S]" if batched else "[T, S]")
        valid = f"token ids must be integers in [0, {self.nb_code - 1}]"
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{valid}; got {arr.dtype} values {arr.ravel()[:5].tolist()}")
        if arr.ndim != ndim or (not self.is_single and arr.shape[-1] != self.num_streams):
            streams = "one stream" if self.is_single else f"S={self.num_streams} streams"
            raise ValueError(
                f"tokens must have shape {shape} with {streams} {list(self.stream_names)}; got shape "
                f"{arr.shape}. Two tokens look like {self.example()} (on the command line: --tokens "
                f'"{self.example(cli=True)}")'
            )
        if arr.size == 0:
            raise ValueError(f"{valid}; got an empty sequence")
        bad = arr[(arr < 0) | (arr >= self.nb_code)]
        if bad.size:
            raise ValueError(f"{valid}; got out-of-range ids {bad[:5].tolist()}")
        return arr.astype(np.int64)

    def example(self, steps: int = 2, *, cli: bool = False) -> str:
        """``steps`` valid tokens of this structure, as Python writes them or as ``--tokens`` takes them.

        One stream: ``[3, 17]`` / ``3,17``. Several: one list of S ids per step, ``[[3, 4, ...], [17, ...]]``
        / ``3,4,...;17,...`` (steps separated by ``;``, a step's stream ids by ``,``). Error messages show it,
        so a shape mistake is answered with the right shape for this very tokenizer.
        """
        ids = [[(3 + 14 * t + s) % self.nb_code for s in range(self.num_streams)] for t in range(steps)]
        if self.is_single:
            flat = [row[0] for row in ids]
            return ",".join(map(str, flat)) if cli else str(flat)
        return ";".join(",".join(map(str, row)) for row in ids) if cli else str(ids)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/``weights_only``-safe dict (lists, not tuples)."""
        return {
            "kind": self.kind,
            "num_levels": self.num_levels,
            "nb_code": self.nb_code,
            "fsq_levels": None if self.fsq_levels is None else list(self.fsq_levels),
            "parts": list(self.parts),
            "frames_per_token": self.frames_per_token,
            "fps": self.fps,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "token_spec") -> TokenSpec:
        """Rebuild from :meth:`to_dict`; unknown or missing keys are an error naming ``source``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
        missing = [k for k in _KEYS if k not in data]
        unknown = sorted(set(data) - set(_KEYS))
        if missing or unknown:
            raise ValueError(
                f"{source}: missing keys {missing}, unknown keys {unknown}; valid: {list(_KEYS)}"
            )
        fsq = data["fsq_levels"]
        try:
            return cls(
                kind=data["kind"],
                num_levels=data["num_levels"],
                nb_code=data["nb_code"],
                fsq_levels=None if fsq is None else tuple(fsq),
                parts=tuple(data["parts"]),
                frames_per_token=data["frames_per_token"],
                fps=float(data["fps"]),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from exc
