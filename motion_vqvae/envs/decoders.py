"""One token in, ``frames_per_token`` decoded frames out: the small interface the token wrapper drives.

Two implementations share it:

* :class:`CheckpointTokenSource` - a :class:`~motion_vqvae.tokenizer.Tokenizer` decoded in torch (one-row
  :class:`~motion_vqvae.envs.batched.BatchedTokenDecoder`);
* :class:`ExportTokenSource` - an ONNX export directory (or a loaded ``sim2real.TokenDecoder``), decoded
  with onnxruntime and numpy only, so an environment process needs no torch.

``reset(current)`` starts a sequence from the simulator's joint positions (simulator order, rad): the safety
filter ramps from there. ``step(token)`` takes an int (one-stream tokenizers) or ``[S]`` ids (one per stream
of the :class:`~sim2real.token_spec.TokenSpec`) and returns ``(root [fpt, R], dof [fpt, N])``: de-normalized
root features (height, tilt, heading-frame velocity, yaw rate; columns by name in ``root_slices``, as the
feature layout or the manifest's ``root_features`` say) and joint position targets in simulator order.
``decode_held(tokens, current, repeats)`` decodes many tokens, each held ``repeats`` steps from ``current``,
and returns the last step's ``(root [T, fpt, R], dof [T, fpt, N])``: what a token does once it is held (the
token policy describes every token this way); a checkpoint decodes them as one batch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from motion_vqvae.errors import InvalidType, InvalidValue, MissingPath, user_input
from sim2real import JointMap
from sim2real.token_spec import TokenSpec

if TYPE_CHECKING:
    from motion_vqvae.tokenizer import Tokenizer


HELD_BATCH = 1024
"""Rows a checkpoint decodes at once in ``decode_held`` (bounds the decoder state's memory)."""


def _check_repeats(repeats: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidValue(
            f"decode_held: repeats must be an int >= 1 (steps a token is held), got {repeats!r}"
        )


@runtime_checkable
class TokenSource(Protocol):
    """What :class:`~motion_vqvae.envs.wrapper.TokenActionWrapper` needs from a decoder."""

    spec: TokenSpec  # the token structure, as the checkpoint or the manifest stores it
    levels: int  # quantizer levels per part it decodes (spec.num_levels: all)
    frames_per_token: int
    fps: float
    codebook: np.ndarray | None  # (nb_code, code_dim) of a one-stream tokenizer, for action_mode="latent"
    joint_map: JointMap  # sim <-> real order of the dof columns
    root_slices: dict[str, list[int]]  # name -> [start, stop] of each root feature in ``step``'s root output

    def reset(self, current: np.ndarray) -> None: ...

    def step(self, token: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def decode_held(
        self, tokens: np.ndarray, current: np.ndarray, repeats: int
    ) -> tuple[np.ndarray, np.ndarray]: ...


class CheckpointTokenSource:
    """Streaming torch decoding of a :class:`~motion_vqvae.tokenizer.Tokenizer`, one environment."""

    def __init__(self, tokenizer: Tokenizer | str | Path, levels: int | None = None) -> None:
        import torch

        from motion_vqvae.envs.batched import BatchedTokenDecoder
        from motion_vqvae.tokenizer import Tokenizer

        tok = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.load(tokenizer)
        self._tokenizer = tok
        self.path = tok.path
        self._decoder = BatchedTokenDecoder.from_tokenizer(tok, 1, levels=levels)
        self.spec = self._decoder.spec
        self.levels = self._decoder.levels
        self.frames_per_token = self.spec.frames_per_token
        self.fps = self.spec.fps
        self.codebook = None
        if self.spec.is_single:
            codes = torch.arange(self.spec.nb_code)[None]
            self.codebook = tok.model.quantizer.dequantize(codes)[0].T.detach().numpy()
        self.joint_map = tok.joint_map
        self.root_slices = tok.layout.root_slices()

    def reset(self, current: np.ndarray) -> None:
        """New sequence ramping from ``current`` (simulator order, rad)."""
        self._decoder.reset(current=np.asarray(current, np.float32)[None])

    def step(self, token: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dof = self._decoder.step(np.asarray(token, np.int64)[None])[0].numpy().astype(np.float64)
        return self._decoder.last_root[0].numpy().astype(np.float64), dof

    def decode_held(
        self, tokens: np.ndarray, current: np.ndarray, repeats: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every row of ``tokens`` held ``repeats`` steps from ``current``, in batches of rows."""
        from motion_vqvae.envs.batched import BatchedTokenDecoder

        _check_repeats(repeats)
        tokens = np.asarray(tokens, np.int64)
        roots, dofs = [], []
        for start in range(0, len(tokens), HELD_BATCH):
            rows = tokens[start : start + HELD_BATCH]
            decoder = BatchedTokenDecoder.from_tokenizer(self._tokenizer, len(rows), levels=self.levels)
            decoder.reset(current=np.broadcast_to(np.asarray(current, np.float32), (len(rows), len(current))))
            for _ in range(repeats):
                dof = decoder.step(rows)
            roots.append(decoder.last_root.numpy())
            dofs.append(dof.numpy())
        return np.concatenate(roots).astype(np.float64), np.concatenate(dofs).astype(np.float64)


class ExportTokenSource:
    """ONNX export decoding through ``sim2real.TokenDecoder`` (safety filter included), real -> sim order."""

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder
        self.path = Path(decoder.export_dir)
        manifest = decoder.manifest
        self.spec = decoder.token_spec  # the manifest's, validated by the runtime
        self.levels = self.spec.num_levels  # decoder_step.onnx decodes every level
        self.frames_per_token = self.spec.frames_per_token
        self.fps = self.spec.fps
        self.codebook = np.load(self.path / "codebook.npy") if self.spec.is_single else None
        self.joint_map = JointMap.from_dict(manifest["joint_map"])
        self.root_slices = dict(manifest["root_features"])

    @classmethod
    def from_dir(cls, export_dir: str | Path) -> ExportTokenSource:
        from sim2real.runtime import TokenDecoder

        with user_input():  # sim2real refuses a missing or broken export with builtins
            return cls(TokenDecoder(export_dir))

    def reset(self, current: np.ndarray) -> None:
        """New sequence ramping from ``current`` (simulator order, rad; the runtime takes real order)."""
        self._decoder.reset(current=self.joint_map.sim_to_real(np.asarray(current, np.float64)))

    def step(self, token: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(token, np.int64)
        real = self._decoder.step(int(ids) if ids.ndim == 0 else tuple(ids.tolist()))  # (fpt, real_dof)
        return np.asarray(self._decoder.last_root, dtype=np.float64), self.joint_map.real_to_sim(real)

    def decode_held(
        self, tokens: np.ndarray, current: np.ndarray, repeats: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every row of ``tokens`` held ``repeats`` steps from ``current``, one after the other (the robot
        runtime decodes one robot's stream); the source's own stream is left on the last row."""
        _check_repeats(repeats)
        roots, dofs = [], []
        for token in np.asarray(tokens, np.int64):
            self.reset(current)
            for _ in range(repeats):
                root, dof = self.step(token)
            roots.append(root)
            dofs.append(dof)
        return np.stack(roots), np.stack(dofs)


def load_token_source(tokenizer: str | Path | Any, levels: int | None = None) -> TokenSource:
    """A :class:`~motion_vqvae.tokenizer.Tokenizer`, a checkpoint file (``.pt``), an export directory
    (``manifest.json``) or a decoder object.

    ``levels``: decode only the first ``levels`` quantizer levels of every part (all: None).
    """
    if _is_tokenizer(tokenizer) or isinstance(tokenizer, (str, Path)) and Path(tokenizer).is_file():
        return CheckpointTokenSource(tokenizer, levels)
    if isinstance(tokenizer, TokenSource):
        source = tokenizer
    elif hasattr(tokenizer, "manifest") and hasattr(tokenizer, "step") and hasattr(tokenizer, "reset"):
        source = ExportTokenSource(tokenizer)
    elif isinstance(tokenizer, (str, Path)):
        if not Path(tokenizer).is_dir():
            raise MissingPath(
                f"tokenizer {tokenizer} does not exist; pass a checkpoint .pt or an export directory"
            )
        source = ExportTokenSource.from_dir(tokenizer)
    else:
        raise InvalidType(
            "tokenizer must be a Tokenizer, a checkpoint path, an export directory, a sim2real.TokenDecoder "
            f"or a TokenSource, got {type(tokenizer).__name__}"
        )
    if levels is not None and source.spec.check_levels(levels) != source.levels:
        raise InvalidValue(
            f"{type(source).__name__} decodes {source.levels} of {source.spec.num_levels} levels, asked for "
            f"{levels}; decode the first K levels from a checkpoint (an export's decoder_step.onnx decodes "
            "every level)"
        )
    return source


def _is_tokenizer(obj: Any) -> bool:
    """Whether ``obj`` is a loaded Tokenizer, without importing torch into an export-only process (a
    Tokenizer object exists only once its module is imported)."""
    module = sys.modules.get("motion_vqvae.tokenizer")
    return module is not None and isinstance(obj, module.Tokenizer)
