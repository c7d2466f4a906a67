"""``TokenActionWrapper``: a policy picks motion tokens; they are decoded into the inner env's actions.

One wrapper step = one token = ``frames_per_token`` motion frames (at the motion fps). Each frame becomes one
inner step (rewards summed, stopping early on termination or truncation), the shape of gymnasium's
``RepeatAction``. The decoder is streaming: its context carries across steps and is reset with the env.

Inner actions (``action_format``, default: the inner env's ``action_format`` attribute, else by shape):

* ``"motion_frame"`` - a whole FeatureLayout frame (``G1Kinematic-v0``): root features, joint angles and
  joint velocities (differences of consecutive decoded angles);
* ``"joint_targets_sim"`` / ``"joint_targets_real"`` - joint position targets in simulator or real-robot
  order (through the tokenizer's joint map).

An inner env controlled at another rate than the motion fps (its ``control_fps`` attribute, else
``metadata["render_fps"]``) gets targets linearly interpolated at its own step times; the fractional offset
of its next step inside the next token is the decoder *phase*. ``action_mode="latent"`` exposes a Box in
code space whose actions snap to the nearest code (one-stream tokenizers); ``observe_token=True`` appends the
previous token (one-hot per stream) and the phase to a flat Box observation.

The action space follows the tokenizer's :class:`~sim2real.token_spec.TokenSpec` (read from the checkpoint or
the manifest): ``Discrete(nb_code)`` for one stream, ``MultiDiscrete`` with one entry per stream (part-major,
``spec.stream_names``) otherwise. ``levels=K`` decodes the first K levels of every part only (the finer
levels contribute zero to the latent). The policy chooses the first ``action_levels`` of them (default: all
K); the streams it does not choose come from ``fill`` (``fill(partial, chosen) -> [S]`` ids, e.g. a prior's
most likely codes given the chosen ones, :meth:`motion_vqvae.prior.sampling.StepContext.fill`), never from
zeros the decoder would play as code 0.

At every reset the decoder starts from the inner env's measured joint positions (its ``joint_positions()``,
in the env's own action order), so the first decoded frame ramps from where the robot stands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from motion_vqvae.envs.decoders import TokenSource, load_token_source
from motion_vqvae.errors import InvalidType, InvalidValue

ACTION_FORMATS = ("motion_frame", "joint_targets_sim", "joint_targets_real")
ACTION_MODES = ("token", "latent")


class TokenActionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Token actions (Discrete, MultiDiscrete or snapped code vectors) over a joint-target or frame env."""

    def __init__(
        self,
        env: gym.Env,
        tokenizer: str | Path | Any,
        *,
        action_mode: str = "token",
        action_format: str | None = None,
        observe_token: bool = False,
        levels: int | None = None,
        action_levels: int | None = None,
        fill: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            # Decoder objects hold onnxruntime sessions (not copyable): record where they were loaded from.
            tokenizer=tokenizer if isinstance(tokenizer, (str, Path)) else getattr(tokenizer, "path", None),
            action_mode=action_mode,
            action_format=action_format,
            observe_token=observe_token,
            levels=levels,
            action_levels=action_levels,
        )
        super().__init__(env)
        if action_mode not in ACTION_MODES:
            raise InvalidValue(
                f"TokenActionWrapper: action_mode must be one of {ACTION_MODES}, got {action_mode!r}"
            )
        inner = env.action_space
        if not isinstance(inner, gym.spaces.Box) or len(inner.shape) != 1:
            raise InvalidType(
                f"TokenActionWrapper: the inner env's action space must be a 1-D Box of joint targets or "
                f"motion frames, got {inner}"
            )
        self.source: TokenSource = load_token_source(tokenizer, levels=levels)
        self.token_spec = self.source.spec
        self.levels = self.source.levels
        self.action_levels = self._resolve_action_levels(action_levels, fill)
        self.fill = fill
        # Streams the policy chooses (part-major, the first ``action_levels`` of each part); ``fill`` gives
        # the rest.
        self.action_streams = np.array(
            [
                self.token_spec.stream_index(p, lv)
                for p in self.token_spec.parts
                for lv in range(self.action_levels)
            ]
        )
        self._chosen = np.zeros(self.token_spec.num_streams, bool)
        self._chosen[self.action_streams] = True
        nvec = np.asarray(self.token_spec.stream_sizes)[self.action_streams]
        self.action_format = self._resolve_format(action_format)
        self.frames_per_token = self.source.frames_per_token
        control_fps = getattr(env.unwrapped, "control_fps", None) or env.metadata.get("render_fps")
        self.control_fps = float(control_fps or self.source.fps)
        self._frames_per_inner_step = self.source.fps / self.control_fps
        if self._frames_per_inner_step > self.frames_per_token:
            raise InvalidValue(
                f"TokenActionWrapper: the inner env steps at {self.control_fps} Hz, slower than one step per "
                f"token ({self.source.fps / self.frames_per_token} Hz); raise its control_fps"
            )
        self.action_mode = action_mode
        if action_mode == "token":
            single = len(nvec) == 1
            self.action_space = (
                gym.spaces.Discrete(int(nvec[0])) if single else gym.spaces.MultiDiscrete(nvec)
            )
        else:
            if self.source.codebook is None:
                raise InvalidValue(
                    f"TokenActionWrapper: action_mode='latent' needs a one-stream tokenizer; this one has "
                    f"streams {list(self.token_spec.stream_names)}; use action_mode='token'"
                )
            book = self.source.codebook.astype(np.float32)
            margin = 0.1 * (book.max(axis=0) - book.min(axis=0)) + 1e-3
            self.action_space = gym.spaces.Box(
                book.min(axis=0) - margin, book.max(axis=0) + margin, dtype=np.float32
            )
        self.observe_token = observe_token
        self._one_hot_offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])  # first column of each stream
        if observe_token:
            obs = env.observation_space
            if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
                raise InvalidType(f"TokenActionWrapper: observe_token needs a 1-D Box observation, got {obs}")
            extra = int(nvec.sum()) + 1
            self.observation_space = gym.spaces.Box(
                np.concatenate([obs.low, np.zeros(extra)]).astype(np.float32),
                np.concatenate([obs.high, np.ones(extra)]).astype(np.float32),
                dtype=np.float32,
            )
        self._prev_token: np.ndarray | None = None  # the policy's streams of the previous token
        # Position of the next inner step on the path [previous frame, token frames...] (1.0 = first frame);
        # one inner step after the (virtual) previous frame at reset.
        self._clock = self._frames_per_inner_step
        self._last_frame: np.ndarray | None = None  # last decoded frame (inner-action units)
        self._last_dof: np.ndarray | None = None  # its joint angles (sim order), for joint velocities

    def _resolve_action_levels(self, action_levels: int | None, fill: Any) -> int:
        """The levels per part the policy chooses: all decoded ones, or fewer when ``fill`` gives the rest."""
        if action_levels is None:
            return self.levels
        chosen = self.token_spec.check_levels(action_levels)
        if chosen > self.levels:
            raise InvalidValue(
                f"TokenActionWrapper: action_levels={chosen} exceeds the {self.levels} decoded level(s); "
                f"pass levels >= {chosen}"
            )
        if chosen < self.levels and fill is None:
            raise InvalidValue(
                f"TokenActionWrapper: the policy chooses {chosen} of the {self.levels} decoded levels; the "
                "others need fill= (a prior's completion, train_policy.py --prior PRIOR), or decode "
                f"levels={chosen} only"
            )
        return chosen

    def _resolve_format(self, action_format: str | None) -> str:
        fmt = action_format or getattr(self.env.unwrapped, "action_format", None)
        size = self.env.action_space.shape[0]
        jmap = self.source.joint_map
        if fmt is None:
            if size == jmap.num_sim:
                fmt = "joint_targets_sim"
            elif size == jmap.real_dof:
                fmt = "joint_targets_real"
            else:
                raise InvalidValue(
                    f"TokenActionWrapper: cannot tell what the inner action of size {size} is (the tokenizer "
                    f"has {jmap.num_sim} sim / {jmap.real_dof} real joints); pass action_format, one of "
                    f"{ACTION_FORMATS}"
                )
        if fmt not in ACTION_FORMATS:
            raise InvalidValue(
                f"TokenActionWrapper: action_format must be one of {ACTION_FORMATS}, got {fmt!r}"
            )
        return fmt

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.source.reset(self._measured_joints())
        self._prev_token, self._last_frame, self._last_dof = None, None, None
        self._clock = self._frames_per_inner_step
        return self._observe(obs), info

    def _measured_joints(self) -> np.ndarray:
        """The inner env's joint positions now, simulator order (what the decoder ramps from)."""
        measure = getattr(self.env.unwrapped, "joint_positions", None)
        if measure is None:
            raise InvalidType(
                f"TokenActionWrapper: {type(self.env.unwrapped).__name__} has no joint_positions() method; "
                "the decoder must start from the simulator's joint positions (in the env's action order)"
            )
        q = np.asarray(measure(), dtype=np.float64)
        return self.source.joint_map.real_to_sim(q) if self.action_format == "joint_targets_real" else q

    def token_of(self, action: Any) -> int | np.ndarray:
        """The token an action stands for: an int for one stream, ``[S]`` ids otherwise (the streams the
        policy does not choose from ``fill``, else 0, which is only right where they are not decoded).

        A latent snaps to the nearest code in L2. It must be finite and inside the action Box (the
        codebook's extent plus a 10% margin): outside it every code is about equally far, so the snap
        says nothing about the policy's intent (a 1e30 latent used to become token 0 by rounding), and a
        policy that gets there is broken or unclipped. Clip with ``gymnasium.wrappers.ClipAction`` (SB3
        clips Box actions itself) rather than have the wrapper saturate out of sight.
        """
        if self.action_mode == "latent":
            latent = np.asarray(action, dtype=np.float64).reshape(-1)
            if latent.shape != self.action_space.shape:
                raise ValueError(
                    f"latent action must have shape {self.action_space.shape}, got {latent.shape}"
                )
            low, high = self.action_space.low, self.action_space.high
            bad = np.flatnonzero(~np.isfinite(latent) | (latent < low) | (latent > high))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"latent action[{i}] = {latent[i]} is not finite or outside [{low[i]:.4g}, "
                    f"{high[i]:.4g}] ({bad.size} bad of {latent.size}); clip it into the action space (e.g. "
                    "gymnasium.wrappers.ClipAction)"
                )
            return int(np.argmin(np.sum((self.source.codebook - latent) ** 2, axis=1)))
        chosen = np.asarray(action).reshape(-1)
        sizes = np.asarray(self.token_spec.stream_sizes)[self.action_streams]
        if (
            chosen.shape != sizes.shape
            or not np.all(chosen == np.round(chosen))
            or np.any(chosen < 0)
            or np.any(chosen >= sizes)
        ):
            names = [self.token_spec.stream_names[i] for i in self.action_streams]
            raise ValueError(
                f"token must lie in [0, {sizes[0] - 1}] for each of the {len(names)} streams {names}, "
                f"got {np.asarray(action).tolist()}"
            )
        chosen = chosen.astype(np.int64)
        if self.token_spec.is_single:
            return int(chosen[0])
        token = np.zeros(self.token_spec.num_streams, np.int64)
        token[self.action_streams] = chosen
        if self.fill is None or self._chosen.all():
            return token
        return np.asarray(self.fill(token, self._chosen), np.int64)

    def step(self, action: Any):
        token = self.token_of(action)
        frames = self._decode(token)  # (fpt, inner action size)
        anchor = frames[0] if self._last_frame is None else self._last_frame
        path = np.concatenate([anchor[None], frames])  # (fpt + 1, size): row 0 is the previous frame
        positions = np.arange(self._clock, self.frames_per_token + 1e-9, self._frames_per_inner_step)
        low, high = self.env.action_space.low, self.env.action_space.high
        total, terminated, truncated, inner_info = 0.0, False, False, {}
        fed = []
        obs = None
        for pos in positions:
            i = int(np.floor(pos + 1e-9))
            frac = pos - i
            target = path[i] if frac < 1e-9 else (1 - frac) * path[i] + frac * path[i + 1]
            target = np.clip(target, low, high).astype(self.env.action_space.dtype)
            fed.append(target)
            obs, reward, terminated, truncated, inner_info = self.env.step(target)
            total += float(reward)
            if terminated or truncated:
                break
        self._clock = float(positions[-1] + self._frames_per_inner_step - self.frames_per_token)
        self._last_frame = frames[-1]
        self._prev_token = np.asarray(token).reshape(-1)[self.action_streams]
        info = {**inner_info, "token": token, "targets": np.asarray(fed), "inner_steps": len(fed)}
        return self._observe(obs), total, terminated, truncated, info

    def _decode(self, token: int | np.ndarray) -> np.ndarray:
        root, dof = self.source.step(token)  # (fpt, R), (fpt, N) sim order
        if self.action_format == "joint_targets_sim":
            return dof
        if self.action_format == "joint_targets_real":
            return self.source.joint_map.sim_to_real(dof)
        previous = dof[:1] if self._last_dof is None else self._last_dof[None]
        self._last_dof = dof[-1]
        dof_vel = np.diff(np.concatenate([previous, dof]), axis=0) * self.source.fps
        frame = np.concatenate([root, dof, dof_vel], axis=1)
        if frame.shape[1] != self.env.action_space.shape[0]:
            raise ValueError(
                f"TokenActionWrapper: decoded motion frames have {frame.shape[1]} columns, the inner env "
                f"takes {self.env.action_space.shape[0]}; the tokenizer's feature layout (exp-map tilt?) "
                "must match the env's"
            )
        return frame

    def _observe(self, obs: Any) -> Any:
        if not self.observe_token:
            return obs
        one_hot = np.zeros(self.observation_space.shape[0] - np.asarray(obs).shape[0], dtype=np.float32)
        if self._prev_token is not None:
            one_hot[self._one_hot_offsets + self._prev_token] = 1.0
        one_hot[-1] = self._clock % 1.0
        return np.concatenate([np.asarray(obs, dtype=np.float32), one_hot])
