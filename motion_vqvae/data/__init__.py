"""Motion data: one ``Motion`` type, readers for NPY/PKL/CSV, writers, validation and resampling."""

from motion_vqvae.data.errors import (
    ImplausibleMotionError,
    MotionFileError,
    MotionFileNotFoundError,
    MotionSizeError,
    UnsafePickleError,
)
from motion_vqvae.data.jumps import DEFAULT_JUMP_THRESHOLD, JointJump, find_joint_jumps, repair_joint_jumps
from motion_vqvae.data.loading import load_motions, sample_motion_path
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.plausibility import PLAUSIBILITY_CHECKS
from motion_vqvae.data.resample import resample
from motion_vqvae.data.safe_pickle import safe_load
from motion_vqvae.data.writers import save_csv, save_npy

__all__ = [
    "DEFAULT_JUMP_THRESHOLD",
    "PLAUSIBILITY_CHECKS",
    "ImplausibleMotionError",
    "JointJump",
    "Motion",
    "MotionFileError",
    "MotionFileNotFoundError",
    "MotionSizeError",
    "UnsafePickleError",
    "find_joint_jumps",
    "load_motions",
    "repair_joint_jumps",
    "resample",
    "safe_load",
    "sample_motion_path",
    "save_csv",
    "save_npy",
]
