"""One token in, ``frames_per_token`` decoded frames out: the small interface the token wrapper drives.

Two implementations share it:

* :class:`CheckpointTokenSource` - a training checkpoint decoded in torch (one-row
  :class:`~motion_vqvae.envs.batched.BatchedTokenDecoder`);
* :class:`ExportTokenSource` - an ONNX export directory (or a loaded ``sim2real.TokenDecoder``), decoded
  with onnxruntime and numpy only, so an environment process needs no torch.

``step(token)`` returns ``(root [fpt, R], dof [fpt, N])``: de-normalized root features (height, exp-map
tilt, heading-frame velocity, yaw rate) and joint position targets in simulator order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sim2real import JointMap


@runtime_checkable
class TokenSource(Protocol):
    """What :class:`~motion_vqvae.envs.wrapper.TokenActionWrapper` needs from a decoder."""

    nb_code: int
    frames_per_token: int
    fps: float
    codebook: np.ndarray  # (nb_code, code_dim): for action_mode="latent"
    joint_map: JointMap  # sim <-> real order of the dof columns

    def reset(self) -> None: ...

    def step(self, token: int) -> tuple[np.ndarray, np.ndarray]: ...


class CheckpointTokenSource:
    """Streaming torch decoding of a checkpoint (``torch.load(weights_only=True)``), one environment."""

    def __init__(self, path: str | Path) -> None:
        import torch

        from motion_vqvae.agent import MVQVAEAgent
        from motion_vqvae.envs.batched import BatchedTokenDecoder
        from sim2real import load_robot

        self.path = Path(path)
        agent = MVQVAEAgent.from_checkpoint(path, device="cpu")
        lower, upper, _ = load_robot(agent.cfg.robot).sim_limits()
        self._decoder = BatchedTokenDecoder(agent.model, agent.layout, 1, lower, upper)
        self.nb_code = self._decoder.nb_code
        self.frames_per_token = self._decoder.frames_per_token
        self.fps = float(agent.cfg.target_fps or 30.0)
        self.codebook = (
            agent.model.quantizer.dequantize(torch.arange(self.nb_code)[None])[0].T.detach().numpy()
        )
        self.joint_map = agent.joint_map or JointMap.identity(agent.layout.num_dof, agent.layout.joint_names)

    def reset(self) -> None:
        self._decoder.reset()

    def step(self, token: int) -> tuple[np.ndarray, np.ndarray]:
        dof = self._decoder.step(np.array([token]))[0].numpy().astype(np.float64)
        return self._decoder.last_root[0].numpy().astype(np.float64), dof


class ExportTokenSource:
    """ONNX export decoding through ``sim2real.TokenDecoder`` (safety filter included), real -> sim order."""

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder
        self.path = Path(decoder.export_dir)
        manifest = decoder.manifest
        self.nb_code = int(decoder.nb_code)
        self.frames_per_token = int(decoder.frames_per_token)
        self.fps = float(decoder.fps)
        self.codebook = np.load(Path(decoder.export_dir) / "codebook.npy")
        self.joint_map = JointMap.from_dict(manifest["joint_map"])

    @classmethod
    def from_dir(cls, export_dir: str | Path) -> ExportTokenSource:
        from sim2real.runtime import TokenDecoder

        return cls(TokenDecoder(export_dir))

    def reset(self) -> None:
        self._decoder.reset()

    def step(self, token: int) -> tuple[np.ndarray, np.ndarray]:
        real = self._decoder.step(int(token))  # (fpt, real_dof), filtered
        return np.asarray(self._decoder.last_root, dtype=np.float64), self.joint_map.real_to_sim(real)


def load_token_source(tokenizer: str | Path | Any) -> TokenSource:
    """A checkpoint file (``.pt``), an export directory (``manifest.json``) or a decoder object."""
    if isinstance(tokenizer, TokenSource):
        return tokenizer
    if hasattr(tokenizer, "manifest") and hasattr(tokenizer, "step") and hasattr(tokenizer, "reset"):
        return ExportTokenSource(tokenizer)
    if isinstance(tokenizer, (str, Path)):
        path = Path(tokenizer)
        if path.is_dir():
            return ExportTokenSource.from_dir(path)
        if path.is_file():
            return CheckpointTokenSource(path)
        raise FileNotFoundError(
            f"tokenizer {path} does not exist; pass a checkpoint .pt or an export directory"
        )
    raise TypeError(
        "tokenizer must be a checkpoint path, an export directory, a sim2real.TokenDecoder or a TokenSource, "
        f"got {type(tokenizer).__name__}"
    )
