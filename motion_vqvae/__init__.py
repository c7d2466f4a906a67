"""motion-vqvae: VQ-VAE motion tokenizers for humanoid robots (training side, may import torch).

``from motion_vqvae import Tokenizer`` imports torch only when the name is first used, so ``import
motion_vqvae`` (and its torch-free parts, e.g. the data readers) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from motion_vqvae.tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = ["Tokenizer", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Tokenizer":
        from motion_vqvae.tokenizer import Tokenizer

        return Tokenizer
    raise AttributeError(f"module 'motion_vqvae' has no attribute {name!r}")
