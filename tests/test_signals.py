"""Ctrl-C, SIGTERM and SIGHUP at random moments, then --resume: bit for bit the uninterrupted run.

Real signals: a timer thread sends them to this process at a random time into training (the loop's handler
runs wherever the main thread is, usually inside a step), and one test stops a separate training process
from outside as ``docker stop`` or ``timeout`` would. Runs on the bundled sample: no ../shared needed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from motion_vqvae.commands.train import main as train_main
from motion_vqvae.training.signals import StopRequests

REPO = Path(__file__).resolve().parents[1]
SETS = {
    "width": 16,
    "depth": 1,
    "nb_code": 32,
    "code_dim": 16,
    "output_emb_width": 16,
    "window_size": 16,
    "batch_size": 16,
    "total_iter": 60,
    "warmup_iter": 5,
    "eval_every": 20,
    "save_every": 1000,
    "print_iter": 5,
    "num_threads": 1,
}
ARGS = [a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]


def _final_state(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)


def _losses(out: Path) -> list[tuple[int, str, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["iteration"], r["split"], r.get("loss", r.get("mpjpe_local_mm"))) for r in rows]


def _assert_same_run(a: Path, b: Path) -> None:
    sa, sb = _final_state(a), _final_state(b)
    assert sa["iteration"] == sb["iteration"] == SETS["total_iter"]
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), f"weights differ: {key}"
    for index, state in sa["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], sb["optimizer"]["state"][index]["exp_avg"])
    assert _losses(a) == _losses(b), "every logged loss and validation score is identical"


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("signals") / "straight"
    assert train_main(["--out", str(out), *ARGS]) == 0
    return out


def _send_when_training(signum: int, delay: float, done: threading.Event) -> None:
    """Wait until the loop's handler is installed, then ``delay`` seconds, then send ``signum`` to us."""
    while not done.is_set():
        handler = signal.getsignal(signal.SIGINT)
        if getattr(handler, "__self__", None).__class__ is StopRequests:
            time.sleep(delay)
            if not done.is_set():
                os.kill(os.getpid(), signum)
            return
        time.sleep(0.001)


def test_five_ctrl_c_a_sigterm_and_a_sighup_then_resume_equal_the_straight_run(straight, tmp_path) -> None:
    rng = random.Random(7)
    plan = [signal.SIGINT] * 5 + [signal.SIGTERM, signal.SIGHUP]
    rng.shuffle(plan)
    out = tmp_path / "interrupted"
    saved = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stops: list[tuple[str, int]] = []
    try:
        for signum in [*plan, None]:
            done = threading.Event()
            if signum is not None:
                delay = rng.uniform(0.0, 0.25)
                threading.Thread(target=_send_when_training, args=(signum, delay, done), daemon=True).start()
            resume = ["--resume"] if (out / "checkpoints" / "last.pt").exists() else ["--overwrite"]
            code = train_main(["--out", str(out), *ARGS, *resume])
            done.set()
            if signum is None:
                assert code == 0
                break
            assert code == 128 + signum, (signal.Signals(signum).name, code)
            stops.append((signal.Signals(signum).name, _final_state(out)["iteration"]))
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    iterations = [it for _, it in stops]
    assert len(stops) == 7 and iterations == sorted(iterations), stops
    assert 0 < iterations[-1] < SETS["total_iter"] and len(set(iterations)) >= 4, stops
    print("stopped at", stops)
    _assert_same_run(straight, out)


def test_sigterm_from_outside_saves_and_resume_is_exact(straight, tmp_path) -> None:
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "scripts/train_vqvae.py", "--out", str(out), *ARGS]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the first metrics row is written inside the loop, with the handlers installed
    time.sleep(random.Random(3).uniform(0.0, 0.2))
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    stopped_at = _final_state(out)["iteration"]
    assert 0 < stopped_at < SETS["total_iter"]
    assert train_main(["--out", str(out), *ARGS, "--resume"]) == 0
    _assert_same_run(straight, out)
