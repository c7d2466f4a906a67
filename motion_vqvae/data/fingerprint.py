"""A short hash of a set of clips, so a resumed run can tell that it is fed the data it was trained on."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from motion_vqvae.data.motion import Motion


def dataset_fingerprint(motions: Sequence[Motion]) -> str:
    """sha256 (16 hex digits) over the clips' names, fps, joint names and every number, in name order.

    Paths are not part of it: the same files moved elsewhere match, a changed or added file does not.
    """
    digest = hashlib.sha256()
    for motion in sorted(motions, key=lambda m: m.name):
        digest.update(f"{motion.name}|{motion.fps:.6f}|{','.join(motion.joint_names or [])}|".encode())
        for array in (motion.root_pos, motion.root_quat, motion.dof):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]
