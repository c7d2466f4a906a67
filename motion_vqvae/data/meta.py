"""``meta.json`` beside a motion file, and where joint names come from when the file itself has none."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from motion_vqvae.data.joint_names import G1_JOINTS_BY_COUNT

META_FILE = "meta.json"


def read_meta(path: Path) -> dict[str, Any]:
    """The ``meta.json`` in the folder of ``path`` as a dict, or ``{}`` when there is none."""
    meta_path = Path(path).parent / META_FILE
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: not valid JSON ({err}); fix or remove it") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object with keys like 'fps' and 'dof_names'")
    return meta


def meta_fps(path: Path) -> float | None:
    """``fps`` from the ``meta.json`` beside ``path``, or None when absent."""
    meta = read_meta(path)
    if "fps" not in meta:
        return None
    fps = meta["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f"{Path(path).parent / META_FILE}: 'fps' must be a positive number, got {fps!r}")
    return float(fps)


def resolve_joint_names(path: Path, count: int, robot_joint_names: Sequence[str] | None = None) -> list[str]:
    """Names of ``count`` joint columns: meta.json ``dof_names``, else the robot's, else the G1 order.

    Each source is used only when its length matches ``count``; a file whose joint count matches none of
    them is refused, because guessing the columns would silently mix up joints.
    """
    meta_names = read_meta(path).get("dof_names")
    if isinstance(meta_names, list) and len(meta_names) == count:
        return [str(n) for n in meta_names]
    if robot_joint_names is not None and len(robot_joint_names) == count:
        return list(robot_joint_names)
    if count in G1_JOINTS_BY_COUNT:
        return list(G1_JOINTS_BY_COUNT[count])
    tried = [f"G1 {n}-DOF" for n in sorted(G1_JOINTS_BY_COUNT)]
    if robot_joint_names is not None:
        tried.insert(0, f"the robot's {len(robot_joint_names)}")
    if isinstance(meta_names, list):
        tried.insert(0, f"{len(meta_names)} dof_names in {META_FILE}")
    raise ValueError(
        f"{path}: {count} joint columns match none of: {', '.join(tried)}. Put a {META_FILE} with "
        f"'dof_names' ({count} names, in column order) beside the file, or pass a robot= with {count} joints."
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
