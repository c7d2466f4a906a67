"""What an export reads from a tokenizer, as a structural type.

:class:`motion_vqvae.tokenizer.Tokenizer` is what callers pass. Its ``export`` method delegates to this
package, so this package cannot import it back without an import circle; the export modules name the
attributes they read here instead, and a ``Tokenizer`` has them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from motion_vqvae.config_loader import AgentConfig
from motion_vqvae.data import Motion
from motion_vqvae.features import FeatureLayout
from motion_vqvae.models.vqvae import VQVAE
from sim2real import JointMap, TokenSpec


class ExportSource(Protocol):
    """A loaded tokenizer as the export sees it (see :class:`motion_vqvae.tokenizer.Tokenizer`)."""

    model: VQVAE
    config: AgentConfig
    layout: FeatureLayout
    joint_map: JointMap
    spec: TokenSpec
    path: Path | None  # the checkpoint file; None for a training run's in-memory model
    sha256: str | None  # of the checkpoint file, pinned in the manifest
    iteration: int

    def prepare(self, motion: Motion) -> Motion:
        """The clip in the model's joint order and fps."""
        ...
