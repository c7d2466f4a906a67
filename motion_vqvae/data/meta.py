"""``meta.json`` beside a motion file, and where joint names come from when the file itself has none."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from motion_vqvae.data.errors import MotionFileError, reading
from motion_vqvae.data.joint_names import G1_JOINTS_BY_COUNT

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
        f"'dof_names' ({count} names, in column order) beside the file, or pass a robot= with {count} "
        "joints.",
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
