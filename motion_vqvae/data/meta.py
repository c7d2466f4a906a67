"""``meta.json`` beside a motion file, and the one rule all tools follow for fps and quaternion order.

The rule, applied per file by :func:`~motion_vqvae.data.loading.load_motions` (which train, evaluate,
visualize, the viewer, the prior scripts and preprocess all read through): the file's own metadata first
(an NPY time column, a PKL ``fps`` key, ``fps`` / ``quat_order`` in a ``meta.json`` beside the file), then
what the user passed (``--fps`` / ``--quat-order``), then refuse (fps) or the format's documented
convention (quaternion order: NPY wxyz, CSV and PKL xyzw; a wrong one is caught by the tilt check). A
checkpoint's fps is its training rate, never a source rate, so no tool passes it here.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from motion_vqvae.data.errors import MotionFileError, flag_hint, reading
from motion_vqvae.data.joint_names import G1_JOINTS_BY_COUNT
from motion_vqvae.data.validation import QUAT_ORDERS

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
MAX_META_BYTES = 2**20  # a meta.json holds an fps and a few dozen names; anything bigger is not one


def read_meta(path: Path) -> dict[str, Any]:
    """The ``meta.json`` in the folder of ``path`` as a dict, or ``{}`` when there is none."""
    meta_path = Path(path).parent / META_FILE
    if not meta_path.is_file():
        return {}
    with reading(meta_path, META_FILE):
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise MotionFileError(f"{meta_path}: larger than {MAX_META_BYTES} bytes; not a meta.json")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise MotionFileError(f"{meta_path}: not valid JSON ({err}); fix or remove it") from err
        if not isinstance(meta, dict):
            raise MotionFileError(f"{meta_path}: expected a JSON object with keys like 'fps' and 'dof_names'")
        return meta


def meta_fps(path: Path) -> float | None:
    """``fps`` from the ``meta.json`` beside ``path``, or None when absent."""
    meta = read_meta(path)
    if "fps" not in meta:
        return None
    fps = meta["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not fps > 0:
        raise MotionFileError(
            f"{Path(path).parent / META_FILE}: 'fps' must be one positive finite number, got {fps!r}",
            file=Path(path).parent / META_FILE,
            column="fps",
        )
    return float(fps)


def meta_quat_order(path: Path) -> str | None:
    """The root quaternion order the ``meta.json`` beside ``path`` states, or None when it states none.

    Read from a ``quat_order`` key (what our writers put there), else from a free-text ``layout`` that names
    exactly one order (kimodo's ``"root_pos(3), root_quat wxyz(4), dof(29)"``).
    """
    meta = read_meta(path)
    meta_path = Path(path).parent / META_FILE
    if "quat_order" in meta:
        order = meta["quat_order"]
        if order not in QUAT_ORDERS:
            raise MotionFileError(
                f"{meta_path}: 'quat_order' must be one of {QUAT_ORDERS}, got {order!r}",
                file=meta_path,
                column="quat_order",
            )
        return str(order)
    layout = meta.get("layout")
    if isinstance(layout, str):
        named = set(re.findall(r"\b(xyzw|wxyz)\b", layout))
        if len(named) == 1:
            return named.pop()
    return None


def source_fps(path: Path, given: float | None, what: str = "a CSV") -> float:
    """The frame rate of a file without its own rate: its ``meta.json``, then ``given``, then refuse."""
    own = meta_fps(path)
    if own is not None:
        warn_ignored(path, "fps", own, given, f"{META_FILE} says")
        return own
    if given is None:
        raise MotionFileError(
            f"{path}: {what} does not store its frame rate and there is no {META_FILE} with 'fps' beside it; "
            f'{flag_hint("fps", 30)} with the rate it was recorded at, or write {{"fps": 30}} into '
            f"{Path(path).parent / META_FILE}",
            file=path,
        )
    return float(given)


def source_quat_order(path: Path, given: str | None, default: str) -> str:
    """The root quaternion order of ``path``: its ``meta.json``, then ``given``, then the format default."""
    own = meta_quat_order(path)
    if own is not None:
        warn_ignored(path, "quat_order", own, given, f"{META_FILE} says")
        return own
    return given or default


def warn_ignored(path: str | Path, key: str, own: object, given: object, says: str) -> None:
    """Warn that a file's own ``key`` wins over a different value the user passed (never silently)."""
    if given is None or given == own:
        return
    if key == "fps":
        own, given = f"{own:g}", f"{given:g}"
        fix = f"the file's rate is kept; use --target-fps {given} (target_fps=) to resample"
    else:
        fix = "the file's order is kept; fix or remove it there if it is wrong"
    logger.warning(
        "%s: %s %s=%s, not the %s passed (--%s); %s", path, says, key, own, given, key.replace("_", "-"), fix
    )


def meta_joint_names(path: Path) -> list[str] | None:
    """``dof_names`` from the ``meta.json`` beside ``path`` (checked: unique strings), or None when absent."""
    meta_path = Path(path).parent / META_FILE
    names = read_meta(path).get("dof_names")
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise MotionFileError(f"{meta_path}: 'dof_names' must be a list of joint-name strings")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MotionFileError(f"{meta_path}: 'dof_names' repeats {repeated}; each column needs its own name")
    return names


def resolve_joint_names(path: Path, count: int, robot_joint_names: Sequence[str] | None = None) -> list[str]:
    """Names of ``count`` joint columns: meta.json ``dof_names``, else the robot's, else the G1 order.

    ``dof_names`` in a meta.json must match the column count: a CSV with 23 columns beside a meta.json of
    29 names has its columns shifted against the names, and guessing would silently mix up joints. Without
    a meta.json, the robot's or a G1 order is used when its length matches; otherwise the file is refused.
    """
    meta_names = meta_joint_names(path)
    if meta_names is not None:
        if len(meta_names) != count:
            raise MotionFileError(
                f"{path}: {count} joint columns, but {Path(path).parent / META_FILE} lists "
                f"{len(meta_names)} dof_names; the columns and the names disagree. Fix the file or its "
                f"meta.json so that there is one name per joint column, in column order.",
                file=path,
            )
        return list(meta_names)
    if robot_joint_names is not None and len(robot_joint_names) == count:
        return list(robot_joint_names)
    if count in G1_JOINTS_BY_COUNT:
        return list(G1_JOINTS_BY_COUNT[count])
    tried = [f"G1 {n}-DOF" for n in sorted(G1_JOINTS_BY_COUNT)]
    if robot_joint_names is not None:
        tried.insert(0, f"the robot's {len(robot_joint_names)}")
    raise MotionFileError(
        f"{path}: {count} joint columns match none of: {', '.join(tried)}. Put a {META_FILE} with "
        f"'dof_names' ({count} names, in column order) beside the file, or name a robot with {count} "
        "joints (--set robot=NAME; from Python: robot=NAME).",
        file=path,
    )


def write_meta(folder: Path, fps: float, dof_names: Sequence[str] | None = None, **extra: Any) -> Path:
    """Write ``meta.json`` into ``folder``, so every reader finds the fps of the motion files written there.

    Headerless CSVs do not carry their rate; tools that write motions (reconstructions, generated motion)
    put this beside them and every tool that reads motion picks it up without an ``--fps``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"fps": float(fps), **extra}
    if dof_names:
        meta["dof_names"] = list(dof_names)
    path = folder / META_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path
