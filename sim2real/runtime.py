"""Robot-side token decoding with onnxruntime and numpy only: ``TokenDecoder(export_dir)``.

Every output passes a :class:`~sim2real.safety.SafetyFilter` before the caller sees it: position limits with
soft margins, velocity and acceleration limits from the robot's measured pose on, a stop instead of any
non-finite value, and a hold when no token arrives in time. Token ids are validated against the export's
:class:`~sim2real.token_spec.TokenSpec` before they reach the network; the export is verified on load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sim2real.manifest import check_pin, load_manifest, validate_manifest
from sim2real.robot import load_robot
from sim2real.safety import SafetyFilter, limits_for_robot
from sim2real.token_spec import TokenSpec

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
        self._token = np.zeros([1, *inputs[0].shape[1:]], np.int64)  # [1] or [1, S]
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

    def run(self, token: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One token (an id, or ``S`` ids) -> views ``(targets [fpt, dof], root [fpt, R])`` (reused)."""
        self._token[0] = token
        self.session.run_with_iobinding(self._bindings[self._current])
        self._current ^= 1
        return self.targets[0], self.root[0]


class TokenDecoder:
    """Token ids -> safe joint position targets in the real robot's order, from an export directory.

    Streaming (``decoder_step.onnx``, causal exports): ``reset(current=q)`` with the robot's measured joint
    positions (real order, rad; the robot standing still at ``q``), then ``step(token)`` per token -> ``[fpt,
    dof]`` in constant time, or ``hold()`` (= ``step(None)``) when no token arrived in time. ``step`` before a
    pose is known raises RuntimeError. ``decode(tokens, current=q)`` decodes a whole sequence ramping from
    ``q`` the same way; see its docstring for the offline case.

    The limits are the manifest's (checked against the robot YAML named there, or ``robot``), or, with
    ``robot`` given, that YAML's own ``safety`` defaults (a way to loosen or tighten without re-exporting;
    the hardware limits stay the ceiling). ``interventions`` counts what the filter changed.
    """

    def __init__(self, export_dir: str | Path, *, threads: int = 1, robot: str | Path | None = None) -> None:
        self.export_dir = Path(export_dir)
        self.manifest: dict[str, Any] = load_manifest(self.export_dir)
        m, source = self.manifest, str(self.export_dir / "manifest.json")
        try:
            description = load_robot(robot if robot is not None else _robot_name(m, source))
        except (FileNotFoundError, KeyError) as exc:
            raise FileNotFoundError(
                f"{exc}; the export names robot {m['robot']!r}: pass TokenDecoder(..., robot=NAME_OR_YAML) "
                "with this robot's description"
            ) from exc
        self.limits, self.token_spec = validate_manifest(m, description, source)
        if robot is not None:
            self.limits = limits_for_robot(description.real_limits(), description.safety, self.limits.fps)
        spec: TokenSpec = self.token_spec
        self.nb_code, self.frames_per_token, self.fps = spec.nb_code, spec.frames_per_token, spec.fps
        self.real_joint_names: list[str] = list(m["real_joint_names"])
        self._sequence = make_session(self.export_dir / "decoder.onnx", threads)
        check_pin(m, self._sequence.get_modelmeta().custom_metadata_map, "decoder.onnx")
        self._step: BoundStepSession | None = None
        if m["streaming"]:
            session = make_session(self.export_dir / "decoder_step.onnx", threads)
            check_pin(m, session.get_modelmeta().custom_metadata_map, "decoder_step.onnx")
            self._step = BoundStepSession(session)
        self._filter = SafetyFilter(self.limits)
        self.last_root: np.ndarray | None = None  # root features of the latest output, de-normalized

    @property
    def interventions(self) -> dict[str, int]:
        """Joint-frames changed by each limit (position, velocity, acceleration); non-finite, held frames.

        A copy: read it as often as needed, the counters themselves only ever grow.
        """
        return dict(self._filter.interventions)

    @property
    def nonfinite_frames(self) -> int:
        """Frames whose network output was non-finite and was replaced by a stop."""
        return self._filter.interventions["nonfinite"]

    def reset(self, current: Any = None) -> None:
        """Start a new token sequence from ``current`` (real order, rad): the robot standing still there.

        Without ``current`` the pose is unknown and ``step`` raises until the next ``reset(current=q)``.
        """
        if self._step is not None:
            self._step.reset()
        if current is None:
            self._filter.forget()
        else:
            self._filter.reset(current)

    def check_tokens(self, tokens: Any) -> np.ndarray:
        """``tokens`` as int64 ``[T]``/``[T, S]`` (or batched), or ValueError naming the valid range."""
        batched = np.ndim(tokens) == (1 if self.token_spec.is_single else 2) + 1
        return self.token_spec.check_tokens(tokens, batched=batched)

    def decode(self, tokens: Any, current: Any = None) -> np.ndarray:
        """Whole sequence -> filtered targets: ``[T]``/``[T, S]`` -> ``[T*fpt, dof]`` (batched: ``[B, ...]``).

        With ``current`` (``[dof]`` or ``[B, dof]``, real order, rad) the targets ramp from that pose as
        ``reset(current=q)`` + ``step`` would: use this for anything sent to a robot. Without it this is an
        *offline* decode (evaluation, plots): the filter starts at rest at the first decoded frame, so the
        output is within the limits but its first frame may be anywhere. The streaming state is untouched.
        """
        arr = self.check_tokens(tokens)
        single = arr.ndim == (1 if self.token_spec.is_single else 2)
        batch = arr[None] if single else arr
        targets, root = self._sequence.run(None, {"tokens": batch})
        self.last_root = root[0] if single else root
        fresh = SafetyFilter(self.limits)
        fresh.reset(targets[:, 0] if current is None else np.broadcast_to(current, targets[:, 0].shape))
        out = fresh(targets)
        for key, count in fresh.interventions.items():
            self._filter.interventions[key] += count
        return out[0] if single else out

    def step(self, token: Any) -> np.ndarray:
        """One token (an int, or ``S`` ints) -> ``[fpt, dof]`` safe targets; ``None`` means :meth:`hold`."""
        if token is None:
            return self.hold()
        if self._step is None:
            raise RuntimeError(
                f"{self.export_dir} has no decoder_step.onnx (a non-causal model); use decode(tokens) instead"
            )
        if not self._filter.ready:
            raise RuntimeError(
                "step() before the robot's pose is known: call reset(current=q) with the measured joint "
                "positions (real order, rad) first"
            )
        if not (type(token) is int and self.token_spec.is_single and 0 <= token < self.nb_code):
            token = self._one_token(token)  # the hot path (a valid plain int) skips the array checks
        targets, root = self._step.run(token)
        self.last_root = root.copy()
        before = self._filter.interventions["nonfinite"]
        safe = self._filter(targets)
        if self._filter.interventions["nonfinite"] > before:
            self._step.reset()  # a non-finite value may sit in the cached state too: restart the network
        return safe

    def hold(self) -> np.ndarray:
        """No token in time: ``[frames_per_token, dof]`` targets that stop the joints within the limits."""
        self.last_root = None
        return self._filter.hold(self.frames_per_token)

    def _one_token(self, token: Any) -> np.ndarray:
        ids = self.token_spec.check_tokens(
            np.asarray(token).reshape(1, -1) if not self.token_spec.is_single else np.reshape(token, (-1,))
        )
        if ids.shape[0] != 1:
            raise ValueError(f"step takes one token, got shape {np.shape(token)}; use decode() for sequences")
        return ids[0]


def _robot_name(manifest: dict[str, Any], source: str) -> str:
    robot = manifest["robot"]
    if not isinstance(robot, str) or not robot:
        raise ValueError(f"{source}: 'robot' must name the robot description, got {robot!r}")
    return robot
