"""Robot-side token decoding with onnxruntime and numpy only: ``TokenDecoder(export_dir)``.

Every output passes a :class:`SafetyFilter` before the caller sees it: position limits, a per-joint
velocity limit that also holds across token boundaries and calls, and a hold of the last safe target
instead of any non-finite value. Token ids are validated before they reach the network.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sim2real.manifest import load_manifest
from sim2real.robot import load_robot

log = logging.getLogger(__name__)


def make_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU onnxruntime session with ``threads`` intra-op threads (1 = the lowest per-call jitter)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class BoundStepSession:
    """``decoder_step.onnx`` with every input and output bound to preallocated numpy buffers.

    The state ping-pongs between two buffer sets (one call reads set ``a`` and writes set ``b``, the next
    the other way), so a step allocates nothing and builds no feed dict: per-call Python overhead is a
    measurable share of a sub-millisecond step. Buffers are batch 1, the robot's case.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        self._token = np.zeros(1, np.int64)
        shapes = [[1, *i.shape[1:]] for i in inputs[1:]]
        self._states = [[np.zeros(shape, np.float32) for shape in shapes] for _ in range(2)]
        # One plain run learns the output shapes (the graph may leave the frame axis symbolic).
        feeds = {
            spec.name: buffer for spec, buffer in zip(inputs, [self._token, *self._states[0]], strict=True)
        }
        first = session.run(None, feeds)
        self.targets, self.root = (np.zeros_like(a) for a in first[:2])
        self._bindings = []
        for src, dst in ((0, 1), (1, 0)):
            binding = session.io_binding()
            binding.bind_ortvalue_input(inputs[0].name, self._ortvalue(self._token))
            for spec, buffer in zip(inputs[1:], self._states[src], strict=True):
                binding.bind_ortvalue_input(spec.name, self._ortvalue(buffer))
            for spec, buffer in zip(outputs, [self.targets, self.root, *self._states[dst]], strict=True):
                binding.bind_ortvalue_output(spec.name, self._ortvalue(buffer))
            self._bindings.append(binding)
        self._current = 0

    def _ortvalue(self, array: np.ndarray) -> ort.OrtValue:
        # A CPU OrtValue made from numpy shares the array's memory; self keeps every array alive.
        return ort.OrtValue.ortvalue_from_numpy(array)

    def reset(self) -> None:
        """Zero state: the decoder before its first token."""
        for buffer in self._states[self._current]:
            buffer.fill(0.0)

    def run(self, token: int) -> tuple[np.ndarray, np.ndarray]:
        """One token -> views ``(targets [fpt, dof], root [fpt, R])``, overwritten by the next call."""
        self._token[0] = token
        self.session.run_with_iobinding(self._bindings[self._current])
        self._current ^= 1
        return self.targets[0], self.root[0]


class SafetyFilter:
    """Stateful clamp of joint targets ``[..., N, dof]``: limits, max step per frame, non-finite hold.

    ``max_step = velocity / fps`` per joint. The last emitted frame is remembered, so the velocity limit
    also applies between consecutive calls; a frame with any non-finite value is replaced by the last
    safe frame (or ``home`` before the first one) and counted in ``nonfinite_frames``.
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray, velocity: np.ndarray, fps: float) -> None:
        self.lower, self.upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        if np.any(self.lower > self.upper):
            raise ValueError(
                f"SafetyFilter: lower > upper at joints {np.flatnonzero(self.lower > self.upper).tolist()}"
            )
        velocity = np.asarray(velocity, np.float64)
        if velocity.shape != self.lower.shape or np.any(~(velocity > 0)):
            raise ValueError(
                f"SafetyFilter: velocity limits must be positive, one per joint ({len(self.lower)})"
            )
        self.max_step = velocity / fps  # (dof,) rad per frame
        self.home = np.clip(0.0, self.lower, self.upper)  # (dof,)
        self.last: np.ndarray | None = None  # (..., dof)
        self.nonfinite_frames = 0

    def reset(self, current: np.ndarray | None = None) -> None:
        """Forget the last frame; ``current`` (the robot's pose, real order): the next frame ramps from it."""
        if current is not None:
            current = np.asarray(current, np.float64)
            if current.shape[-1:] != self.lower.shape or not np.all(np.isfinite(current)):
                raise ValueError(
                    f"reset: current pose must be finite, {len(self.lower)} joints last; got {current.shape}"
                )
            current = np.clip(current, self.lower, self.upper)
        self.last = current

    def __call__(self, frames: np.ndarray) -> np.ndarray:  # (..., N, dof) -> (..., N, dof) float64
        frames = np.array(frames, dtype=np.float64)
        if np.isfinite(frames).all():
            # Fast path, the usual case: nothing to hold and no step over the limit after clamping.
            clamped = np.clip(frames, self.lower, self.upper, out=frames)
            first = clamped[..., :1, :] if self.last is None else self.last[..., None, :]
            steps = np.abs(
                np.diff(clamped, axis=-2, prepend=np.broadcast_to(first, clamped[..., :1, :].shape))
            )
            if (steps <= self.max_step).all():
                self.last = clamped[..., -1, :]
                return clamped
        return self._sequential(frames)

    def _sequential(self, frames: np.ndarray) -> np.ndarray:  # frame by frame, each limited by the last
        last = self.last
        for t in range(frames.shape[-2]):
            frame = frames[..., t, :]
            bad = ~np.all(np.isfinite(frame), axis=-1)  # (...,)
            if np.any(bad):
                self.nonfinite_frames += int(np.sum(bad))
                log.warning(
                    "non-finite joint targets replaced by the last safe targets (%d frame(s) so far)",
                    self.nonfinite_frames,
                )
                hold = self.home if last is None else last
                frame = np.where(bad[..., None], hold, frame)
            frame = np.clip(frame, self.lower, self.upper)
            if last is not None:
                frame = np.clip(frame, last - self.max_step, last + self.max_step)
            frames[..., t, :] = frame
            last = frame
        self.last = last
        return frames


class TokenDecoder:
    """Token ids -> safe joint position targets in the real robot's order, from an export directory.

    ``decode(tokens)`` decodes a whole sequence (``[T]`` -> ``[T*fpt, dof]``, or ``[B, T]`` ->
    ``[B, T*fpt, dof]``); ``step(token)`` decodes one token in constant time (causal exports) and keeps
    the decoder state; ``reset()`` starts a new sequence. ``robot`` (a name or YAML path) overrides the
    manifest's velocity limits by joint name. The files are hash-checked on load.
    """

    def __init__(self, export_dir: str | Path, *, threads: int = 1, robot: str | Path | None = None) -> None:
        self.export_dir = Path(export_dir)
        self.manifest: dict[str, Any] = load_manifest(self.export_dir)
        m = self.manifest
        self.nb_code: int = int(m["nb_code"])
        self.frames_per_token: int = int(m["frames_per_token"])
        self.fps: float = float(m["fps"])
        self.real_joint_names: list[str] = list(m["real_joint_names"])
        self.lower = np.asarray(m["position_limits"]["lower"], np.float64)
        self.upper = np.asarray(m["position_limits"]["upper"], np.float64)
        self.velocity = self._velocity_limits(robot)
        self._sequence = make_session(self.export_dir / "decoder.onnx", threads)
        self._step = (
            BoundStepSession(make_session(self.export_dir / "decoder_step.onnx", threads))
            if m["streaming"]
            else None
        )
        self._filter = SafetyFilter(self.lower, self.upper, self.velocity, self.fps)
        self.last_root: np.ndarray | None = None  # root features of the latest output, de-normalized
        self.reset()

    @property
    def nonfinite_frames(self) -> int:
        """Frames whose network output was non-finite and was replaced by the last safe target."""
        return self._filter.nonfinite_frames

    def _velocity_limits(self, robot: str | Path | None) -> np.ndarray:
        velocity = np.asarray(self.manifest["velocity_limits"], np.float64)
        if robot is None:
            return velocity
        desc = load_robot(robot)
        unknown = [n for n in self.real_joint_names if n not in desc.joints]
        if unknown:
            raise KeyError(f"{desc.source}: no velocity limits for the export's real joints {unknown}")
        return np.array([desc.joints[n].velocity for n in self.real_joint_names])

    def reset(self, current: np.ndarray | None = None) -> None:
        """Start a new token sequence; ``current`` (real order, rad) is where the robot stands now."""
        if self._step is not None:
            self._step.reset()
        self._filter.reset(current)

    def check_tokens(self, tokens: Any) -> np.ndarray:
        """``tokens`` as int64, or ValueError naming the valid range ``[0, nb_code - 1]``."""
        arr = np.asarray(tokens)
        valid = f"token ids must be integers in [0, {self.nb_code - 1}]"
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{valid}; got {arr.dtype} values {arr.ravel()[:5].tolist()}")
        if arr.size == 0:
            raise ValueError(f"{valid}; got an empty sequence")
        bad = arr[(arr < 0) | (arr >= self.nb_code)]
        if bad.size:
            raise ValueError(f"{valid}; got out-of-range ids {bad[:5].tolist()}")
        return arr.astype(np.int64)

    def decode(self, tokens: Any) -> np.ndarray:
        """Whole sequence, filtered from a fresh start: ``[T]`` -> ``[T*fpt, dof]`` (``[B, T]`` -> batch)."""
        arr = self.check_tokens(tokens)
        if arr.ndim not in (1, 2):
            raise ValueError(f"decode: tokens must be [T] or [B, T], got shape {arr.shape}")
        targets, root = self._sequence.run(None, {"tokens": arr.reshape(-1, arr.shape[-1])})
        self.last_root = root.reshape(*arr.shape[:-1], *root.shape[1:])
        fresh = SafetyFilter(self.lower, self.upper, self.velocity, self.fps)
        out = fresh(targets.reshape(*arr.shape[:-1], *targets.shape[1:]))
        self._filter.nonfinite_frames += fresh.nonfinite_frames
        return out

    def step(self, token: Any) -> np.ndarray:
        """One token -> ``[frames_per_token, dof]`` targets, continuing the current sequence."""
        if self._step is None:
            raise RuntimeError(
                f"{self.export_dir} has no decoder_step.onnx (a non-causal model); use decode(tokens) instead"
            )
        if not (type(token) is int and 0 <= token < self.nb_code):  # the hot path skips the array checks
            ids = self.check_tokens(token)
            if ids.size != 1:
                raise ValueError(
                    f"step takes one token id, got shape {ids.shape}; use decode() for sequences"
                )
            token = int(ids.reshape(-1)[0])
        targets, root = self._step.run(token)
        self.last_root = root.copy()
        before = self._filter.nonfinite_frames
        safe = self._filter(targets)
        if self._filter.nonfinite_frames > before:
            # A non-finite value may sit in the cached state too: restart the network, keep the held pose.
            self.reset(self._filter.last)
        return safe
