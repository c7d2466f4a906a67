"""RGB frames of the G1: MuJoCo's renderer when an OpenGL context can be made, else a matplotlib stick figure.

Creating a MuJoCo GL context on a machine without a display can abort the whole process (a GLFW assertion),
so whether GL works is probed once in a throw-away subprocess; the stick figure (body positions from
MuJoCo's kinematics, lines to each parent body) needs nothing but matplotlib's Agg backend.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from motion_vqvae.errors import InvalidValue

log = logging.getLogger(__name__)

_PROBE = "import mujoco; mujoco.Renderer(mujoco.MjModel.from_xml_string('<mujoco/>'), 8, 8).close()"


@functools.lru_cache(maxsize=1)
def gl_available() -> bool:
    """True when MuJoCo can create a rendering context here (probed in a subprocess, once per process)."""
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if probe.returncode != 0:
        log.info("MuJoCo GL rendering unavailable; using the matplotlib stick figure")
    return probe.returncode == 0


class G1Renderer:
    """``render(data) -> (H, W, 3) uint8`` of the model's current state, camera following the root body."""

    def __init__(self, model: mujoco.MjModel, width: int = 320, height: int = 240, backend: str = "auto"):
        if backend not in ("auto", "mujoco", "matplotlib"):
            raise InvalidValue(f"G1Renderer: backend must be auto, mujoco or matplotlib, got {backend!r}")
        self.model, self.width, self.height = model, width, height
        use_gl = backend == "mujoco" or (backend == "auto" and gl_available())
        self.backend = "mujoco" if use_gl else "matplotlib"
        self._gl: mujoco.Renderer | None = mujoco.Renderer(model, height, width) if use_gl else None
        self._figure = None

    def render(self, data: mujoco.MjData) -> np.ndarray:
        if self._gl is not None:
            camera = mujoco.MjvCamera()
            camera.lookat[:] = data.xpos[1]
            camera.distance, camera.azimuth, camera.elevation = 3.0, 135.0, -15.0
            self._gl.update_scene(data, camera)
            return self._gl.render()
        return self._stick_figure([data.xpos[1:].copy()])

    def render_bodies(self, panels: Sequence[np.ndarray], titles: Sequence[str] | None = None) -> np.ndarray:
        """Side-by-side stick figures of body positions ``(B, 3)``, one per panel (e.g. reference, recon)."""
        return self._stick_figure(list(panels), titles)

    def _stick_figure(self, panels: list[np.ndarray], titles: Sequence[str] | None = None) -> np.ndarray:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        n = len(panels)
        if self._figure is None or len(self._figure.axes) != n:
            self._figure = Figure(figsize=(n * self.width / 80, self.height / 80), dpi=80)
            FigureCanvasAgg(self._figure)
            for i in range(n):
                self._figure.add_subplot(1, n, i + 1, projection="3d")
        parents = self.model.body_parentid[1:] - 1  # index into the (B, 3) rows; -1 is the world
        for i, (ax, pos) in enumerate(zip(self._figure.axes, panels, strict=True)):
            ax.cla()
            for child, parent in enumerate(parents):
                if parent >= 0:
                    seg = pos[[parent, child]]
                    ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color="tab:blue", lw=2)
            ax.scatter(pos[:, 0], pos[:, 1], pos[:, 2], s=4, color="k")
            cx, cy = pos[0, 0], pos[0, 1]
            ax.set_xlim(cx - 0.8, cx + 0.8)
            ax.set_ylim(cy - 0.8, cy + 0.8)
            ax.set_zlim(0.0, 1.6)
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=15, azim=-60)
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.set_zticklabels([])
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
        canvas = self._figure.canvas
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        if self._gl is not None:
            self._gl.close()
            self._gl = None
        self._figure = None


GIF_PANEL_PIXELS = 400  # per panel: large enough to read the pose and its label


def write_gif(path: str | Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write RGB frames as a looping GIF (imageio); the parent folder is created."""
    import imageio.v2 as imageio

    if not frames:
        raise InvalidValue(f"write_gif {path}: no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)
    return path


def bodies_gif(
    path: str | Path,
    model: mujoco.MjModel,
    panels: Sequence[np.ndarray],
    fps: float,
    titles: Sequence[str] | None = None,
) -> Path:
    """GIF of body-position sequences ``(T, B, 3)`` drawn side by side (e.g. reference and reconstruction)."""
    length = min(len(p) for p in panels)
    names = list(titles) if titles is not None else [f"motion {i + 1}" for i in range(len(panels))]
    renderer = G1Renderer(model, width=GIF_PANEL_PIXELS, height=GIF_PANEL_PIXELS, backend="matplotlib")
    frames = [
        renderer.render_bodies([p[t] for p in panels], [f"{name}\nt = {t / fps:.2f} s" for name in names])
        for t in range(length)
    ]
    renderer.close()
    return write_gif(path, frames, fps)


class RendersG1:
    """``render()``/``close()`` for envs that hold a ``G1Body`` as ``self.body`` (MuJoCo or stick figure)."""

    render_mode: str | None
    body: Any
    _renderer: G1Renderer | None

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = G1Renderer(self.body.model)
        return self._renderer.render(self.body.data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
