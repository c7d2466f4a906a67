"""Robot-side token decoding with onnxruntime and numpy only: ``TokenDecoder(export_dir)``.

Every output passes a :class:`~sim2real.safety.SafetyFilter` before the caller sees it: position limits with
soft margins, velocity and acceleration limits from the robot's measured pose on, a stop instead of any
non-finite value, and a hold when no token arrives in time. The measured pose is checked first
(:mod:`sim2real.pose`). Token ids are validated against the export's :class:`~sim2real.token_spec.TokenSpec`
before they reach the network. The export is verified on load: files, the manifest's pin, its limits against
the packaged robot it names, and every graph's output shapes (frames per token, joints, root features,
streaming state) against the manifest, by one run of each graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sim2real.hardware import resolve_robot
from sim2real.manifest import check_pin, load_manifest, manifest_joint_map, manifest_robot, validate_manifest
from sim2real.pose import measured_pose
from sim2real.safety import SafetyFilter, limits_in_force
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
        self.output_shapes = [a.shape for a in first]  # checked against the manifest by TokenDecoder
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
    ``q`` the same way; ``decode(tokens, offline=True)`` is for evaluation away from a robot.

    The limits in force (``limits``) are element-wise the tightest of the manifest's, the packaged robot
    YAML's (the robot the export names) and the export's ``safety_scale``. ``robot`` (a packaged robot's
    name, or a robot file restricting the export's robot, see :mod:`sim2real.hardware`) can only tighten
    them further, at the same ``safety_scale``. ``interventions`` counts what the filter changed.
    """

    def __init__(self, export_dir: str | Path, *, threads: int = 1, robot: str | Path | None = None) -> None:
        self.export_dir = Path(export_dir)
        self.manifest: dict[str, Any] = load_manifest(self.export_dir)
        m, source = self.manifest, str(self.export_dir / "manifest.json")
        hardware = manifest_robot(m, source)
        self.robot_name: str = hardware.name
        self.limits, self.token_spec = validate_manifest(m, hardware, source)
        if robot is not None:
            tighter = resolve_robot(robot)
            if tighter.name != hardware.name:
                raise ValueError(
                    f"robot={str(robot)!r} describes '{tighter.name}', but {source} was made for "
                    f"'{hardware.name}'; pass that robot's name or a robot file restricting it"
                )
            self.limits = limits_in_force(self.limits, [tighter], float(m["safety_scale"]), str(robot))
        self.hardware_range: tuple[np.ndarray, np.ndarray] = hardware.real_limits()[:2]
        spec: TokenSpec = self.token_spec
        self.nb_code, self.frames_per_token, self.fps = spec.nb_code, spec.frames_per_token, spec.fps
        self.real_joint_names: list[str] = list(manifest_joint_map(m, source).real_joint_names)
        self._root_width = _root_width(m, source)
        self._sequence = make_session(self.export_dir / "decoder.onnx", threads)
        check_pin(m, self._sequence.get_modelmeta().custom_metadata_map, "decoder.onnx")
        self._check_sequence_graph()
        self._step: BoundStepSession | None = None
        if m["streaming"]:
            session = make_session(self.export_dir / "decoder_step.onnx", threads)
            check_pin(m, session.get_modelmeta().custom_metadata_map, "decoder_step.onnx")
            self._step = self._checked_step_session(session)
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

    def reset(self, current: Any, *, recover: str | None = None) -> None:
        """Start a new token sequence from ``current``, the robot's measured joint positions (real order,
        rad): the robot standing still there.

        A pose of the wrong size, non-finite, or outside a joint's range raises ValueError naming the joint,
        its value and its range, and leaves no pose known (``step`` raises until a valid reset).
        ``recover="ramp"`` accepts joints slightly outside their range and ramps them back in at the
        velocity limit (see :mod:`sim2real.pose`).
        """
        self._filter.forget()
        if self._step is not None:
            self._step.reset()
        self._filter.reset(self._pose(current, recover))

    def check_tokens(self, tokens: Any) -> np.ndarray:
        """``tokens`` as int64 ``[T]``/``[T, S]`` (or batched), or ValueError naming the valid range."""
        batched = np.ndim(tokens) == (1 if self.token_spec.is_single else 2) + 1
        return self.token_spec.check_tokens(tokens, batched=batched)

    def decode(self, tokens: Any, current: Any = None, *, offline: bool = False) -> np.ndarray:
        """Whole sequence -> filtered targets: ``[T]``/``[T, S]`` -> ``[T*fpt, dof]`` (batched: ``[B, ...]``).

        ``current`` (``[dof]`` or ``[B, dof]``, the robot's measured joint positions, real order, rad,
        checked as in :meth:`reset`): the targets ramp from that pose as ``reset(current=q)`` + ``step``
        would. ``offline=True`` instead, and only away from a robot (evaluation, plots): the filter starts at
        rest at the first decoded frame, so the output is within the limits but its first frame may be
        anywhere. One of the two is required. The streaming state is untouched.
        """
        if offline and current is not None:
            raise ValueError("decode: pass current=q (for a robot) or offline=True (evaluation), not both")
        if not offline and current is None:
            raise ValueError(
                "decode needs the robot's measured pose: decode(tokens, current=q) with its joint positions "
                "(real order, rad); for evaluation away from a robot, decode(tokens, offline=True)"
            )
        pose = None if offline else self._pose(current)
        arr = self.check_tokens(tokens)
        single = arr.ndim == (1 if self.token_spec.is_single else 2)
        batch = arr[None] if single else arr
        targets, root = self._sequence.run(None, {"tokens": batch})
        expected = (len(batch), batch.shape[1] * self.frames_per_token, len(self.real_joint_names))
        if targets.shape != expected:
            raise ValueError(
                f"{self.export_dir / 'decoder.onnx'} emitted targets {list(targets.shape)} for tokens "
                f"{list(batch.shape)}, the manifest says {list(expected)}; re-export"
            )
        self.last_root = root[0] if single else root
        fresh = SafetyFilter(self.limits)
        fresh.reset(targets[:, 0] if pose is None else np.broadcast_to(pose, targets[:, 0].shape))
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

    def _pose(self, current: Any, recover: str | None = None) -> np.ndarray:
        lower, upper = self.hardware_range
        return measured_pose(
            current, self.real_joint_names, lower, upper, recover=recover, robot=self.robot_name
        )

    def _one_token(self, token: Any) -> np.ndarray:
        ids = self.token_spec.check_tokens(
            np.asarray(token).reshape(1, -1) if not self.token_spec.is_single else np.reshape(token, (-1,))
        )
        if ids.shape[0] != 1:
            raise ValueError(f"step takes one token, got shape {np.shape(token)}; use decode() for sequences")
        return ids[0]

    def _check_sequence_graph(self) -> None:
        """One run of ``decoder.onnx`` on two tokens: its outputs must have the manifest's shapes."""
        spec, fpt = self.token_spec, self.frames_per_token
        tokens = np.zeros((1, 2) if spec.is_single else (1, 2, spec.num_streams), np.int64)
        path = self.export_dir / "decoder.onnx"
        shapes = [out.shape for out in run_graph(self._sequence, {"tokens": tokens}, path)]
        expected = [(1, 2 * fpt, len(self.real_joint_names)), (1, 2 * fpt, self._root_width)]
        check_output_shapes(path, shapes, expected, f"2 tokens of {fpt} frames")

    def _checked_step_session(self, session: ort.InferenceSession) -> BoundStepSession:
        """``decoder_step.onnx`` bound for streaming, once its inputs and outputs match the manifest."""
        path, m = self.export_dir / "decoder_step.onnx", self.manifest
        states = m.get("step_state")
        if not isinstance(states, list) or not all(
            isinstance(s, dict) and isinstance(s.get("shape"), list) and len(s["shape"]) == 3 for s in states
        ):
            raise ValueError(f"{self.export_dir / 'manifest.json'}: step_state must list the step states")
        names = [i.name for i in session.get_inputs()]
        wanted = ["token", *(s.get("input") for s in states)]
        token_rank = len(session.get_inputs()[0].shape)
        if names != wanted or token_rank != (1 if self.token_spec.is_single else 2):
            raise ValueError(
                f"{path} takes inputs {names} (token rank {token_rank}), the manifest says {wanted} with "
                f"{self.token_spec.num_streams} stream(s); re-export"
            )
        state_shapes = [(1, *s["shape"][1:]) for s in states]
        for i, shape in zip(session.get_inputs()[1:], state_shapes, strict=True):
            if list(i.shape[1:]) != list(shape[1:]):
                raise ValueError(f"{path}: input {i.name} has shape {i.shape}, the manifest says {shape}")
        try:
            bound = BoundStepSession(session)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; refuse the graph
            raise ValueError(f"{path} does not run as the manifest describes it ({exc}); re-export") from exc
        fpt, dof = self.frames_per_token, len(self.real_joint_names)
        expected = [(1, fpt, dof), (1, fpt, self._root_width), *state_shapes]
        check_output_shapes(path, bound.output_shapes, expected, f"one token of {fpt} frames")
        return bound


def run_graph(session: ort.InferenceSession, feeds: dict[str, np.ndarray], path: Path) -> list[np.ndarray]:
    """The outputs of one run of ``session``; a graph that cannot run on these inputs is refused."""
    try:
        return session.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; refuse the graph
        raise ValueError(f"{path} does not run on the manifest's inputs ({exc}); re-export") from exc


def check_output_shapes(path: Path, got: list[tuple], expected: list[tuple], what: str) -> None:
    """Refuse a graph whose outputs are not the manifest's (e.g. another frames-per-token), naming both."""
    got = [tuple(int(d) for d in shape) for shape in got]
    if got != [tuple(shape) for shape in expected]:
        raise ValueError(
            f"{path} emits outputs of shapes {got} for {what}, the manifest says {expected}: the graph does "
            "not belong to this manifest; re-export"
        )


def _root_width(manifest: dict[str, Any], source: str) -> int:
    """Number of root features per frame (the manifest's ``root_features`` slices start at column 0)."""
    slices = manifest.get("root_features")
    try:
        return max((int(stop) for _, stop in slices.values()), default=0)
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{source}: root_features must map names to [start, stop], got {slices!r}") from None
