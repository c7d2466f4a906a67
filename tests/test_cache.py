"""The preprocessed dataset cache, its memmap window sampler and evaluation at scale.

A cache must train the same model as the files it was made from (same split, normaliser and windows for
the same seed), refuse settings it was not made with and any unfinished write, and the batched, capped
evaluation must score exactly what clip-by-clip evaluation scores.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_vqvae.agent import MVQVAEAgent
from motion_vqvae.config_loader import ConfigLoader
from motion_vqvae.data import sample_motion_path
from motion_vqvae.metrics import motion_metrics
from motion_vqvae.normalization import Normalizer
from motion_vqvae.training.cache import INCOMPLETE, MotionCache
from motion_vqvae.training.clips import capped_validation
from motion_vqvae.training.evaluation import evaluate_motions, reconstruct_motion
from motion_vqvae.training.preprocess import preprocess

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train_vqvae  # noqa: E402
from _tiny_tokenizer import TINY, tiny_sets  # noqa: E402

SMALL = [f"{k}={v}" for k, v in TINY.items()] + ["device=cpu"]


def _config(*overrides: str):
    return ConfigLoader(overrides=[*SMALL, *overrides]).config


def _same_setup(files_agent: MVQVAEAgent, cache_agent: MVQVAEAgent) -> None:
    """Same split, normaliser, model init and, for one seed, the same windows."""
    assert [m.name for m in files_agent.val_motions] == [m.name for m in cache_agent.val_motions]
    for a, b in zip(files_agent.val_motions, cache_agent.val_motions, strict=True):
        assert np.array_equal(a.dof, b.dof) and np.array_equal(a.root_quat, b.root_quat)
    norm_a, norm_b = files_agent.layout.normalizer, cache_agent.layout.normalizer
    assert np.allclose(norm_a.mean, norm_b.mean, rtol=0, atol=1e-12)
    assert np.allclose(norm_a.std, norm_b.std, rtol=1e-12)
    assert files_agent.sampler.num_windows == cache_agent.sampler.num_windows
    for _ in range(3):
        picks_a, picks_b = files_agent.sampler.draw(32), cache_agent.sampler.draw(32)
        assert torch.equal(picks_a, picks_b)
        # float32 storage of the raw features: rounding, not another window (those differ by > 1e-2)
        assert torch.allclose(
            files_agent.sampler.gather(picks_a), cache_agent.sampler.gather(picks_b), atol=1e-4
        )


def test_cache_matches_training_from_files_on_the_bundled_sample(tmp_path: Path) -> None:
    cfg = _config("speed_augment=[0.8]")  # three versions per clip: the version-major order matters
    cache = preprocess(sample_motion_path(), cfg, tmp_path / "cache", workers=1, progress=False)
    assert {c.augmentation for c in cache.training_clips()} == {
        "none",
        "speed0.8",
        "mirror",
        "mirror+speed0.8",
    }
    files_agent = MVQVAEAgent(cfg, run_dir=tmp_path / "a")
    files_agent.setup_from_file()
    cache_agent = MVQVAEAgent(cfg, run_dir=tmp_path / "b")
    cache_agent.setup_from_file(cache.path)  # a cache folder is recognised as one
    _same_setup(files_agent, cache_agent)
    for p, q in zip(files_agent.model.parameters(), cache_agent.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_cache_of_real_clips_in_worker_processes_matches_files(tmp_path: Path, g1_moves_dir: Path) -> None:
    source = str(g1_moves_dir / "B_*Karate.csv")
    cfg = _config("val_fraction=0.25")
    cache = preprocess(source, cfg, tmp_path / "cache", workers=2, progress=False)
    files_agent = MVQVAEAgent(cfg, run_dir=tmp_path / "a")
    files_agent.setup_from_file(source)
    cache_agent = MVQVAEAgent(cfg, run_dir=tmp_path / "b")
    cache_agent.setup_from_cache(cache)
    _same_setup(files_agent, cache_agent)
    assert cache.fingerprint == MotionCache.open(tmp_path / "cache").fingerprint


def test_preprocess_then_train_and_resume_from_the_cache(tmp_path: Path, capsys) -> None:
    import preprocess as preprocess_script

    cache = tmp_path / "cache"
    args = ["--motion_file", str(sample_motion_path()), "--out", str(cache), "--set", "window_size=16"]
    assert preprocess_script.main(args) == 0
    assert (cache / "index.json").is_file() and not list(tmp_path.glob(".cache.partial-*"))
    out = tmp_path / "run"
    assert train_vqvae.main(["--motion_file", str(cache), "--out", str(out), *tiny_sets(6)]) == 0
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["iteration"] == 6 and state["dataset"] == MotionCache.open(cache).fingerprint
    args = ["--motion_file", str(cache), "--out", str(out), "--resume", "--set", "total_iter=8"]
    assert train_vqvae.main(args) == 0
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 8
    capsys.readouterr()
    # the same run directory fed the files instead: other data, refused
    args = [
        "--motion_file",
        str(sample_motion_path()),
        "--out",
        str(out),
        "--resume",
        "--set",
        "total_iter=9",
    ]
    assert train_vqvae.main(args) == 2
    assert "differ from the ones" in capsys.readouterr().err


def test_settings_the_cache_was_not_made_with_are_refused(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    preprocess(sample_motion_path(), _config(), cache, workers=1, progress=False)
    args = ["--motion_file", str(cache), "--out", str(tmp_path / "run"), *tiny_sets(2, mirror_augment=False)]
    assert train_vqvae.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(cache) in err
    assert "mirror_augment (cache: True, run: False)" in err and "--set mirror_augment=false" in err
    # a schedule or model key does not make other features: accepted
    assert (
        train_vqvae.main(["--motion_file", str(cache), "--out", str(tmp_path / "ok"), *tiny_sets(2, lr=1e-3)])
        == 0
    )


def test_a_killed_preprocess_leaves_nothing_that_trains(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cache"
    kill_before_index = (
        "import os, signal, sys\n"
        "from motion_vqvae.training import preprocess as p\n"
        "p._compact_val_motions = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from motion_vqvae.commands.preprocess import main\n"
        f"main(['--motion_file', {str(sample_motion_path())!r}, '--out', {str(out)!r}, '--workers', '2'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", kill_before_index], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -9
    assert not out.exists()
    partial = next(tmp_path.glob(".cache.partial-*"))
    assert (partial / INCOMPLETE).is_file() and list(partial.glob("features_*.f32"))
    args = ["--motion_file", str(partial), "--out", str(tmp_path / "run"), *tiny_sets(2)]
    assert train_vqvae.main(args) == 2
    assert "unfinished cache" in capsys.readouterr().err
    # a failure inside preprocess cleans up after itself and leaves an existing cache alone
    good = preprocess(sample_motion_path(), _config(), out, workers=1, progress=False)
    with pytest.raises(ValueError, match="val_clips"):
        preprocess(
            sample_motion_path(), _config("val_clips=[nope]"), out, workers=1, progress=False, overwrite=True
        )
    assert MotionCache.open(out).fingerprint == good.fingerprint
    # the killed run's partial folder (its PID is dead) went with the next preprocess into the same --out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".cache")) == []


def test_batched_evaluation_equals_clip_by_clip(tmp_path: Path) -> None:
    cfg = _config("quantizer=rvq", "num_quantizers=2")  # multi-stream tokens, causal
    agent = MVQVAEAgent(cfg, run_dir=tmp_path)
    agent.setup_from_file()
    for p in agent.model.parameters():  # away from the init, so padding mistakes would show
        p.data.add_(0.05 * torch.randn_like(p))
    agent.model.eval()
    clips = [agent.prepare(m) for m in agent.train_motions + agent.val_motions]
    assert len({m.num_frames for m in clips}) > 1
    summary, results = evaluate_motions(agent.model, agent.layout, clips, device=agent.device)
    for clip, result in zip(clips, results, strict=True):
        recon, tokens = reconstruct_motion(agent.model, agent.layout, clip, agent.device)
        assert np.array_equal(tokens, result.tokens)
        assert np.allclose(recon.dof, result.reconstruction.dof, atol=1e-5)
        expected = motion_metrics(recon, clip)
        for key, value in expected.items():
            assert result.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
    # validation reuses the reference kinematics it computed the first time
    first = agent.evaluate()
    bodies = agent._references._bodies
    cached = {name: id(entry[1]) for name, entry in bodies.items()}
    assert agent.evaluate() == first and {n: id(e[1]) for n, e in bodies.items()} == cached


def test_max_val_frames_caps_validation_deterministically(tmp_path: Path, caplog) -> None:
    lengths = {f"clip{i}": 100 + 10 * i for i in range(20)}
    cfg = _config("max_val_frames=600")
    with caplog.at_level(logging.INFO, logger="motion_vqvae.training.clips"):
        chosen = capped_validation(lengths, cfg)
    assert chosen == capped_validation(lengths, cfg) and sum(lengths[n] for n in chosen) <= 600
    assert sum(lengths[n] for n in chosen) + min(lengths[n] for n in lengths if n not in chosen) > 600
    assert f"validating on {len(chosen)} of 20 held-out clips" in caplog.text
    assert capped_validation(lengths, _config("max_val_frames=50")) == ["clip0"]  # none fits: the shortest
    assert capped_validation(lengths, _config("max_val_frames=null")) == list(lengths)
    agent = MVQVAEAgent(_config("val_fraction=0.4", "max_val_frames=300"), run_dir=tmp_path)
    agent.setup_from_file()
    assert len(agent.val_motions) == 1 and agent.val_motions[0].num_frames <= 300


def test_streaming_moments_equal_the_two_pass_statistics() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.normal(1000.0, 0.01, size=(n, 3)) for n in (1, 7, 300)]  # large mean, tiny spread
    stacked = np.concatenate(arrays)
    fitted = Normalizer.fit(arrays, std_floor=1e-9)
    assert np.allclose(fitted.mean, stacked.mean(axis=0), rtol=1e-15)
    assert np.allclose(fitted.std, stacked.std(axis=0), rtol=1e-9)


def test_scale_benchmark_at_a_small_frame_count(tmp_path: Path, g1_moves_dir: Path) -> None:
    from benchmarks.scale import bench_scale

    sets = [f"{k}={v}" for k, v in TINY.items()] + ["max_val_frames=2000"]
    results = bench_scale(
        g1_moves_dir, tmp_path, tmp_path / "report", frames=30_000, train_iters=6, train_sets=sets
    )
    assert results["synthesis"]["frames"] >= 30_000
    pre = results["preprocess"]
    assert (
        pre["frames"] == results["synthesis"]["frames"] and pre["feature_frames"] >= 2 * 0.8 * pre["frames"]
    )
    for row in (pre, results["g1_moves"]["train_from_cache"], results["train_from_cache"]["1"]):
        assert 10 < row["peak_rss_mb"] < 3000 and row["seconds"] > 0
    assert results["train_from_cache"]["1"]["windows_per_s"] > 0 and results["meets_rss_bar"]
    assert "train from cache, 1 proc" in (tmp_path / "report" / "scale.md").read_text()
    assert not (tmp_path / "scale" / "synthetic").exists() and not (tmp_path / "scale" / "cache").exists()


def test_cache_sampler_reads_exact_rows_and_maps_no_shard(tmp_path: Path) -> None:
    """Windows are read (not memory-mapped) from the right rows, so resident memory cannot grow with the
    bytes read, and the same picks give the same windows again."""
    from motion_vqvae.training.memmap_windows import MemmapWindowSampler

    cfg = _config()
    cache = preprocess(sample_motion_path(), cfg, tmp_path / "cache", workers=1, progress=False)
    sampler = MemmapWindowSampler.from_cache(cache, cfg.window_size, 0, torch.device("cpu"))
    picks = sampler.draw(16)
    before = sampler.gather(picks)
    raw = np.fromfile(cache.path / "features_00000.f32", dtype=np.float32).reshape(-1, cache.dim)
    _, rows = sampler.locate(picks)
    expected = np.stack([raw[r : r + cfg.window_size] for r in rows])
    expected = cache.normalizer.normalize(expected.astype(np.float64)).astype(np.float32)
    assert torch.equal(before, torch.from_numpy(expected))
    for _ in range(10):
        sampler.sample(16)
    assert torch.equal(sampler.gather(picks), before)
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert "features_00000.f32" not in maps.read_text()
