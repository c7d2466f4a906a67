"""``load_motions``: one entry point from a file, folder or glob of NPY/PKL/CSV files to checked ``Motion``s.

Order of work per clip: read and validate (the readers), report and optionally repair joint jumps (at the
file's own frame rate, where the glitches are single frames), resample, map onto the robot's joints, then
drop clips shorter than ``min_frames`` (counted after resampling).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from motion_vqvae.data.csv_format import read_csv
from motion_vqvae.data.errors import WRONG_QUAT_ORDER, MotionFileError, MotionFileNotFoundError, reading
from motion_vqvae.data.jumps import (
    DEFAULT_JUMP_THRESHOLD,
    find_joint_jumps,
    log_joint_jumps,
    repair_joint_jumps,
)
from motion_vqvae.data.meta import META_FILE, source_quat_order, warn_ignored
from motion_vqvae.data.motion import Motion
from motion_vqvae.data.npy_format import NPY_QUAT_ORDER, read_npy
from motion_vqvae.data.pkl_format import read_pkl
from motion_vqvae.data.plausibility import (
    FPS_RANGE,
    JOINT_LIMIT_TOLERANCE,
    check_plausible,
    check_relax,
    joint_limits,
)
from motion_vqvae.data.resample import resample
from motion_vqvae.data.validation import check_quat_order
from motion_vqvae.errors import InvalidValue, user_input

logger = logging.getLogger(__name__)

FORMAT_SUFFIXES: dict[str, str] = {
    ".npy": "npy",
    ".pkl": "pkl",
    ".pickle": "pkl",
    ".joblib": "pkl",
    ".csv": "csv",
}
_DEFAULT_QUAT_ORDER = {"npy": NPY_QUAT_ORDER, "pkl": "xyzw", "csv": "xyzw"}


def sample_motion_path() -> Path:
    """The small procedural G1 29-DOF motion bundled with the package (NPY layout, 30 fps, several clips)."""
    return Path(__file__).resolve().parents[1] / "assets" / "sample_motion.npy"


def find_motion_files(path: str | Path | Sequence[str | Path]) -> list[Path]:
    """Motion files under ``path``: a file, a folder (searched recursively) or a glob; others are skipped."""
    if isinstance(path, (list, tuple)):
        return [f for p in path for f in find_motion_files(p)]
    text = str(path)
    if any(c in text for c in "*?["):
        candidates = sorted(Path(p) for p in glob.glob(text, recursive=True))
        if not candidates:
            raise MotionFileNotFoundError(f"the glob '{text}' matches no file", file=text)
    else:
        root = Path(path)
        if root.is_file():
            if root.suffix.lower() not in FORMAT_SUFFIXES:
                raise MotionFileError(
                    f"{root}: unknown motion file type; supported suffixes: {sorted(FORMAT_SUFFIXES)}",
                    file=root,
                )
            return [root]
        if not root.is_dir():
            raise MotionFileNotFoundError(f"{root}: no such file or folder", file=root)
        candidates = sorted(p for p in root.rglob("*") if p.is_file())
    files = [p for p in candidates if p.is_file() and p.suffix.lower() in FORMAT_SUFFIXES]
    skipped = len(candidates) - len(files)
    if skipped:
        logger.debug("%s: skipped %d file(s) that are not motions (meta.json, licences, ...)", text, skipped)
    if not files:
        raise MotionFileNotFoundError(
            f"{text}: no motion files found; expected suffixes {sorted(FORMAT_SUFFIXES)}", file=text
        )
    return files


def _read_file(
    path: Path,
    kind: str,
    fps: float | None,
    quat_order: str,
    keep_transitions: bool,
    names: Sequence[str] | None,
) -> list[Motion]:
    if kind == "npy":
        motions = read_npy(
            path, quat_order=quat_order, keep_transitions=keep_transitions, robot_joint_names=names
        )
        if fps is not None and motions and abs(motions[0].fps - fps) > 1e-6 * fps:
            warn_ignored(path, "fps", motions[0].fps, fps, "the time column says")
        return motions
    if kind == "pkl":
        return read_pkl(path, fps=fps, quat_order=quat_order, robot_joint_names=names)
    if kind == "csv":
        return read_csv(path, fps=fps, quat_order=quat_order, robot_joint_names=names)
    raise MotionFileError(f"{path}: unknown motion format {kind!r}; supported: {sorted(_DEFAULT_QUAT_ORDER)}")


def _prepare(
    motion: Motion,
    jump_threshold: float | None,
    repair_jumps: bool,
    target_fps: float | None,
    to_robot: Callable[[Motion], Motion] | None,
) -> Motion:
    """Report (and optionally repair) joint jumps at the file's rate, resample, map onto the robot."""
    if jump_threshold is not None:
        jumps = find_joint_jumps(motion, jump_threshold)
        if jumps:
            log_joint_jumps(jumps, jump_threshold, repaired=repair_jumps)
            if repair_jumps:
                motion = repair_joint_jumps(motion, jump_threshold)
    if target_fps is not None:
        motion = resample(motion, target_fps)
    return to_robot(motion) if to_robot is not None else motion


def _robot_mapper(robot: str | Path) -> tuple[list[str], Callable[[Motion], Motion]]:
    """The robot's joint names and a function mapping a motion's dof columns onto them."""
    from sim2real.joint_map import remap_columns
    from sim2real.robot import load_robot

    with user_input():  # sim2real raises builtins for an unknown robot or a broken robot YAML
        description: Any = load_robot(robot)
    names = list(description.sim_joint_names)

    def to_robot(motion: Motion) -> Motion:
        if motion.joint_names == names:
            return motion
        common = set(motion.joint_names) & set(names)
        if not common:
            raise MotionFileError(
                f"clip '{motion.name}': none of its joints {motion.joint_names[:3]}... is a joint of robot "
                f"'{description.name}' ({names[:3]}...); check the file's dof_names or the robot"
            )
        missing = [n for n in names if n not in common]
        dropped = [n for n in motion.joint_names if n not in common]
        if missing or dropped:
            logger.info(
                "clip '%s' -> robot '%s': filled %s with 0, dropped %s",
                motion.name,
                description.name,
                missing,
                dropped,
            )
        dof = remap_columns(motion.dof, motion.joint_names, names, fill=0.0)
        return Motion(motion.name, motion.fps, motion.root_pos, motion.root_quat, dof, names)

    return names, to_robot


def _check_rate(value: float | None, key: str, source: str) -> None:
    if value is None:
        return
    low, high = FPS_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidValue(f"{source}: {key} must be a number in [{low:g}, {high:g}], got {value!r}")


@contextlib.contextmanager
def _mixed_orders(read_as: dict[str, Path]) -> Iterator[None]:
    """Say so when a file's quaternion order is wrong while an earlier file read fine in that order.

    One order per call is all a command line can give; a folder mixing orders then fails on its first file
    of the other kind, and the plain "wrong order" hint would send the user round in circles.
    """
    try:
        yield
    except MotionFileError as err:
        if err.column != "root_quat" or WRONG_QUAT_ORDER not in str(err) or not read_as:
            raise
        fine = ", ".join(f"{f} as {o}" for o, f in read_as.items())
        err.args = (
            f"{err} This folder mixes quaternion orders (read upright: {fine}), and one --quat-order cannot "
            f"read both: put the files of each order in their own folder with a {META_FILE} saying "
            '{"quat_order": "wxyz"} (or "xyzw") beside them, which every tool reads first.',
            *err.args[1:],
        )
        raise


def select_clip(clips: Sequence[Motion], clip: str | int, source: str | Path) -> Motion:
    """The clip ``--clip`` names: a clip name, or an index into ``clips`` when that reads one way only.

    Names are what a person sees (``output_wave``); an index stays for scripts. ``"3"`` is refused when a
    clip is named ``3`` and another sits at index 3, rather than guessing which was meant.
    """
    text = str(clip)
    named = [c for c in clips if c.name == text]
    index = int(text) if text.isdigit() else None
    if named and index is not None and index < len(clips) and clips[index] is not named[0]:
        raise InvalidValue(
            f"--clip {text} is ambiguous in {source}: a clip is named '{text}' and clip {index} is "
            f"'{clips[index].name}'; name the clip you mean"
        )
    if named:
        return named[0]
    if index is not None and index < len(clips):
        return clips[index]
    listed = ", ".join(c.name for c in clips[:10]) + (", ..." if len(clips) > 10 else "")
    raise InvalidValue(
        f"--clip {text}: {source} has no clip of that name, and {len(clips)} clip(s) (index 0-"
        f"{len(clips) - 1}): {listed}"
    )


def unique_names(names: Sequence[str], files: Sequence[Path]) -> list[str]:
    """Clip names with clashes resolved: a name already taken (``clip.csv`` in two folders) becomes
    ``folder/name`` (then ``folder/name#2``, ...), with a warning. ``files[i]`` holds clip ``names[i]``."""
    seen: set[str] = set()
    out = []
    for name, file in zip(names, files, strict=True):
        unique = name
        if unique in seen:
            unique = f"{file.parent.name}/{name}"
            k = 2
            while unique in seen:
                unique, k = f"{file.parent.name}/{name}#{k}", k + 1
            logger.warning("%s: clip name '%s' is taken; renamed to '%s'", file, name, unique)
        seen.add(unique)
        out.append(unique)
    return out


def _unique_names(motions: list[Motion], files: list[Path]) -> list[Motion]:
    """Motions renamed by :func:`unique_names` where two share a name."""
    names = unique_names([m.name for m in motions], files)
    return [m if n == m.name else dataclasses.replace(m, name=n) for m, n in zip(motions, names, strict=True)]


def load_motions(
    path: str | Path | Sequence[str | Path],
    *,
    fps: float | None = None,
    quat_order: str | None = None,
    target_fps: float | None = None,
    robot: str | Path | None = None,
    min_frames: int = 0,
    keep_transitions: bool = False,
    repair_jumps: bool = False,
    jump_threshold: float | None = DEFAULT_JUMP_THRESHOLD,
    relax: Collection[str] = (),
    joint_limit_tolerance: float = JOINT_LIMIT_TOLERANCE,
) -> list[Motion]:
    """Read, validate and prepare every clip under ``path`` (file, folder or glob; NPY/PKL/CSV mixed).

    ``fps`` is the frame rate of files that do not state one (a CSV without ``fps`` in a meta.json beside
    it, PKL clips without an ``fps`` key); a file's own rate (NPY time column, PKL key, meta.json) is
    kept, with a warning when ``fps`` differs. ``quat_order`` likewise yields to a ``quat_order`` in a
    meta.json beside the file and overrides each format's default (NPY wxyz, CSV and PKL xyzw); see
    :mod:`motion_vqvae.data.meta` for this one rule. ``robot`` (name or
    YAML path, see ``sim2real.robot.load_robot``) maps joint columns onto the robot's simulator order,
    filling missing joints with 0. ``jump_threshold`` (rad/s, None to skip) reports joint jumps, which
    ``repair_jumps`` bridges by interpolation.

    Every clip is checked for physical plausibility (:mod:`motion_vqvae.data.plausibility`): joint angles
    within the robot's limits +- ``joint_limit_tolerance`` rad, root position and speed, fps, and a tilt
    that betrays a wrong quaternion order. Each failure raises ``ImplausibleMotionError``; the checks named
    in ``relax`` (from ``PLAUSIBILITY_CHECKS``) only log a warning. Every file error is a
    ``MotionFileError`` naming the file (see ``motion_vqvae.data.errors``); two clips with the same name
    are renamed after their folder, with a warning; a file that yields no clip is refused.
    """
    if quat_order is not None:
        check_quat_order(quat_order, f"load_motions({path!s})")
    if isinstance(min_frames, bool) or not isinstance(min_frames, int) or min_frames < 0:
        raise InvalidValue(
            f"load_motions({path!s}): min_frames must be a non-negative int, got {min_frames!r}"
        )
    _check_rate(fps, "fps", f"load_motions({path!s})")
    _check_rate(target_fps, "target_fps", f"load_motions({path!s})")
    relaxed = check_relax(relax, f"load_motions({path!s})")
    if isinstance(joint_limit_tolerance, bool) or not joint_limit_tolerance >= 0:
        raise InvalidValue(
            f"load_motions({path!s}): joint_limit_tolerance must be >= 0 rad, got {joint_limit_tolerance!r}"
        )
    robot_names, to_robot = _robot_mapper(robot) if robot is not None else (None, None)
    motions: list[Motion] = []
    sources: list[Path] = []
    limits: dict[tuple[str, ...], Any] = {}
    read_as: dict[str, Path] = {}  # quaternion order -> a file read upright with it
    for file in find_motion_files(path):
        kind = FORMAT_SUFFIXES[file.suffix.lower()]
        with reading(file), _mixed_orders(read_as):
            order = source_quat_order(file, quat_order, _DEFAULT_QUAT_ORDER[kind])
            clips = _read_file(file, kind, fps, order, keep_transitions, robot_names)
            if not clips:
                raise MotionFileError(
                    f"{file}: the file holds no clip (in an NPY, every row is a transition frame?); "
                    "remove it or fix its transition_flag column",
                    file=file,
                )
            for motion in clips:
                names = tuple(motion.joint_names)
                if names not in limits:
                    limits[names] = joint_limits(names, robot)
                check_plausible(
                    motion,
                    where=f"{file} clip '{motion.name}'",
                    file=file,
                    file_quat_order=order,
                    limits=limits[names],
                    relax=relaxed,
                    tolerance=joint_limit_tolerance,
                )
                motions.append(_prepare(motion, jump_threshold, repair_jumps, target_fps, to_robot))
                sources.append(file)
            read_as.setdefault(order, file)
    motions = _unique_names(motions, sources)
    short = [m for m in motions if m.num_frames < min_frames]
    if short:
        listed = ", ".join(f"{m.name} ({m.num_frames} frames)" for m in short)
        logger.warning("skipped %d clip(s) shorter than min_frames=%d: %s", len(short), min_frames, listed)
    return [m for m in motions if m.num_frames >= min_frames]
