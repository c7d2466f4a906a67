"""The viewer's page: robots on a ground grid, a time slider, play/pause and the token timeline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import viser

from motion_vqvae.data import Motion
from motion_vqvae.kinematics import ForwardKinematics
from motion_vqvae.viewer.robot import GeomPoses, geom_meshes, geom_poses

log = logging.getLogger(__name__)

COLORS = {"reference": (150, 170, 200), "reconstruction": (235, 140, 60), "token": (90, 190, 110)}
SPACING = 1.2  # metres between robots standing side by side
TOKENS_PER_PAGE = 10


@dataclass
class Track:
    """One robot on the stage: the motion it plays, where it stands and how it looks."""

    name: str
    motion: Motion
    color: tuple[int, int, int]
    lateral: float = 0.0


class Stage:
    """Mesh handles of one robot per track, placed by precomputed geom poses.

    GUI callbacks (a clicked token) run on viser's threads while the play loop runs on the main one: every
    change and read of the tracks holds ``lock``.
    """

    def __init__(self, server: viser.ViserServer, fk: ForwardKinematics) -> None:
        self.server, self.fk = server, fk
        self.meshes = geom_meshes(fk.model)
        self.geom_ids = [gid for gid, _ in self.meshes]
        self.poses: dict[str, GeomPoses] = {}
        self.handles: dict[str, list] = {}
        self.lock = threading.RLock()

    def add(self, track: Track) -> None:
        with self.lock:
            self._add(track)

    def names(self, prefix: str = "") -> list[str]:
        with self.lock:
            return [name for name in self.poses if name.startswith(prefix)]

    def _add(self, track: Track) -> None:
        poses = geom_poses(self.fk, track.motion, self.geom_ids)
        shift = np.array([0.0, track.lateral, 0.0])
        shift[:2] -= track.motion.root_pos[0, :2]  # every robot starts at its own spot on the grid
        poses.pos += shift
        self.remove(track.name)
        self.poses[track.name] = poses
        self.handles[track.name] = [
            self.server.scene.add_mesh_simple(
                f"/{track.name}/geom_{gid}", mesh.vertices, mesh.faces, color=track.color, flat_shading=False
            )
            for gid, mesh in self.meshes
        ]
        head = poses.pos[0].max(axis=0)
        self.server.scene.add_label(
            f"/{track.name}/label",
            track.name,
            position=(float(shift[0]), float(shift[1]), float(head[2]) + 0.3),
        )

    def frames(self, name: str) -> int:
        with self.lock:
            return self.poses[name].num_frames if name in self.poses else 1

    def remove(self, name: str) -> None:
        with self.lock:
            for handle in self.handles.pop(name, []):
                handle.remove()
            self.poses.pop(name, None)

    def show(self, name: str, frame: int) -> None:
        with self.lock:
            if name in self.poses:
                self._show(name, frame)

    def _show(self, name: str, frame: int) -> None:
        poses = self.poses[name]
        frame = min(frame, poses.num_frames - 1)
        with self.server.atomic():
            for k, handle in enumerate(self.handles[name]):
                handle.position = poses.pos[frame, k]
                handle.wxyz = poses.wxyz[frame, k]


class Viewer:
    """Plays the tracks in step; with tokens, shows the timeline and previews a clicked token."""

    def __init__(
        self,
        server: viser.ViserServer,
        tracks: list[Track],
        fps: float,
        tokens: np.ndarray | None = None,
        frames_per_token: int | None = None,
        decode_token: Callable[[Any], Motion] | None = None,
    ) -> None:
        if tokens is not None and frames_per_token is None:
            raise ValueError("Viewer: tokens need the tokenizer's frames_per_token (its TokenSpec)")
        self.server, self.fps, self.tokens, self.fpt = server, fps, tokens, frames_per_token
        self.decode_token = decode_token
        self.stage = Stage(server, ForwardKinematics())
        self.tracks = [t.name for t in tracks]
        for track in tracks:
            self.stage.add(track)
        self.num_frames = max(t.motion.num_frames for t in tracks)
        self.preview_frame, self.page = 0, -1
        self.token_buttons = None
        server.scene.add_grid("/ground", width=8.0, height=8.0, cell_size=0.5)
        middle = SPACING * (len(tracks) - 1) / 2
        server.initial_camera.position = (2.2 + middle, -2.2 + middle, 1.3)
        server.initial_camera.look_at = (0.0, middle, 0.6)
        gui = server.gui
        gui.add_markdown(f"**{', '.join(self.tracks)}**: {self.num_frames} frames at {fps:g} fps")
        self.playing = gui.add_checkbox("play", initial_value=True)
        self.slider = gui.add_slider("frame", min=0, max=max(1, self.num_frames - 1), step=1, initial_value=0)
        self.slider.on_update(lambda _: self._show(int(self.slider.value)))
        self.timeline = gui.add_markdown("") if tokens is not None else None
        self._show(0)

    def _show(self, frame: int) -> None:
        for name in self.tracks:
            self.stage.show(name, frame)
        if self.tokens is not None and len(self.tokens):
            self._timeline(min(frame // self.fpt, len(self.tokens) - 1))

    def _timeline(self, current: int) -> None:
        lo, hi = max(0, current - 8), min(len(self.tokens), current + 9)
        labels = [token_label(t) for t in self.tokens[lo:hi]]
        cells = [f"**[{t}]**" if i == current else t for i, t in enumerate(labels, lo)]
        assert self.timeline is not None
        self.timeline.content = (
            f"token {current + 1}/{len(self.tokens)} "
            f"(frames {current * self.fpt}-{(current + 1) * self.fpt - 1}): " + " ".join(cells)
        )
        page = current // TOKENS_PER_PAGE
        if page != self.page and self.decode_token is not None:
            self.page = page
            if self.token_buttons is not None:
                self.token_buttons.remove()
            first = page * TOKENS_PER_PAGE
            page_tokens = self.tokens[first : first + TOKENS_PER_PAGE]
            options = [f"#{i} {token_label(t)}" for i, t in enumerate(page_tokens, first)]
            self.token_buttons = self.server.gui.add_button_group("click a token to see its motion", options)
            self.token_buttons.on_click(lambda event: self.preview(int(event.target.value.split()[0][1:])))

    def preview(self, index: int) -> None:
        """Decode the token at timeline position ``index`` (repeated, to watch) on a third robot."""
        assert self.decode_token is not None and self.tokens is not None
        motion = self.decode_token(self.tokens[index])
        lateral = SPACING * len(self.tracks)
        name = f"token #{index}"
        self.stage.add(Track(name, motion, COLORS["token"], lateral))
        for other in self.stage.names("token "):
            if other != name:
                self.stage.remove(other)
        self.preview_frame = 0

    def run(self, seconds: float | None = None) -> None:
        """Advance the slider while "play" is ticked; returns after ``seconds`` (None: until Ctrl-C)."""
        end = time.monotonic() + seconds if seconds is not None else float("inf")
        period = 1.0 / self.fps
        while time.monotonic() < end:
            if self.playing.value and self.num_frames > 1:
                self.slider.value = (int(self.slider.value) + 1) % self.num_frames
            for name in self.stage.names("token "):
                self.preview_frame = (self.preview_frame + 1) % self.stage.frames(name)
                self.stage.show(name, self.preview_frame)
            time.sleep(period)


def token_label(token: Any) -> str:
    """A token as the timeline shows it: ``17`` for one stream, ``17/3/250`` for one entry per stream."""
    return "/".join(str(int(t)) for t in np.atleast_1d(np.asarray(token)))
