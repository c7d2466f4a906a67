"""Motion data: one ``Motion`` type, readers for NPY/PKL/CSV, writers, validation and resampling."""

from motion_vqvae.data.motion import Motion

__all__ = ["Motion"]
