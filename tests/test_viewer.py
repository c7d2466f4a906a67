"""The viewer serves a page on which headless Chromium draws the robot (not a blank page).

Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) renders the page with software WebGL;
the screenshot must show robot-coloured pixels in the middle of the view, where the robots stand.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from motion_vqvae.data import sample_motion_path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _robot_pixels(png: Path) -> tuple[int, int]:
    """(reference-blue, reconstruction-orange) pixels in the central half of the screenshot."""
    import imageio.v3 as iio

    image = iio.imread(png)[..., :3].astype(int)
    h, w = image.shape[:2]
    centre = image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    r, b = centre[..., 0], centre[..., 2]
    blue = (b - r > 25) & (b > 120)  # the reference robot (150, 170, 200) shaded; grid and sky are grey
    orange = (r - b > 60) & (r > 120)  # the reconstruction (235, 140, 60) shaded
    return int(blue.sum()), int(orange.sum())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from motion_vqvae.commands.train import main as train_main

    out = tmp_path_factory.mktemp("viewer_run")
    sets = ["total_iter=3", "width=16", "num_threads=1", "eval_every=3"]
    assert train_main(["--out", str(out / "run"), *[a for s in sets for a in ("--set", s)]]) == 0
    return out / "run" / "checkpoints" / "last.pt"


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install -y chromium; .ci/run does)")
def test_page_shows_reference_and_reconstruction(checkpoint: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "motion_vqvae.viewer", "--motion", str(sample_motion_path())]
    command += ["--checkpoint", str(checkpoint), "--port", str(port), "--seconds", "120"]
    viewer = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert viewer.stdout is not None
        started = time.monotonic()
        for line in viewer.stdout:  # the address is printed once the scene is built
            if line.startswith("viewer: http") or time.monotonic() - started > 90:
                break
        assert viewer.poll() is None, "the viewer exited before serving"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        flags += ["--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,700"]
        for attempt, budget_ms in enumerate((8000, 20000)):  # a loaded machine may still be fading in
            shot = tmp_path / f"shot{attempt}.png"
            screenshot = [f"--virtual-time-budget={budget_ms}", f"--screenshot={shot}"]
            subprocess.run(
                [CHROMIUM, *flags, *screenshot, f"http://127.0.0.1:{port}"], capture_output=True, timeout=120
            )
            assert shot.is_file(), "chromium wrote no screenshot"
            blue, orange = _robot_pixels(shot)
            if blue > 300 and orange > 300:
                break
        assert blue > 300 and orange > 300, (
            f"robots not drawn: {blue} reference, {orange} reconstruction pixels"
        )
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)


def test_clicking_a_token_decodes_it_on_a_third_robot(checkpoint: Path) -> None:
    import viser

    from motion_vqvae.agent import MVQVAEAgent
    from motion_vqvae.data import load_motions
    from motion_vqvae.viewer.app import COLORS, Track, Viewer, token_label

    agent = MVQVAEAgent.from_checkpoint(checkpoint, device="cpu")
    clip = agent.prepare(load_motions(sample_motion_path())[0])
    server = viser.ViserServer(host="127.0.0.1", port=_free_port(), verbose=False)
    try:
        tokens = agent.encode(clip)
        viewer = Viewer(
            server,
            [Track("reference", clip, COLORS["reference"])],
            clip.fps,
            tokens=tokens,
            frames_per_token=agent.token_spec.frames_per_token,
            decode_token=lambda t: agent.decode(np.stack([t] * 4)),
        )
        assert token_label(tokens[0]) in viewer.timeline.content and "token 1/" in viewer.timeline.content
        viewer.slider.value = 4 * 3  # frame 12 is in the fourth token
        assert "token 4/" in viewer.timeline.content
        viewer.preview(3)
        preview = viewer.stage.poses["token #3"]
        assert preview.num_frames == 16 and np.isfinite(preview.pos).all()
        viewer.run(seconds=0.2)
        assert int(viewer.slider.value) > 12, "play advances the time slider"
    finally:
        server.stop()
