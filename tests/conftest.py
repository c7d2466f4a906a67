"""Shared fixtures: the real data in ../shared, skipped with a clear reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__import__("os").environ.get("MOTION_VQVAE_SHARED", REPO_ROOT.parent / "shared"))
SHARED_DATA = SHARED / "data"
UNITREE_G1_XML = SHARED / "robots" / "unitree_g1" / "g1_29dof_rev_1_0.xml"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs the real data at {path} (the ../shared folder beside the checkout is absent)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def g1_moves_dir() -> Path:
    return _require(SHARED_DATA / "g1_moves")


@pytest.fixture(scope="session")
def seed_layout_npy() -> Path:
    return _require(SHARED_DATA / "g1_moves_30fps_seed_layout.npy")


@pytest.fixture(scope="session")
def asap_dir() -> Path:
    return _require(SHARED_DATA / "asap_g1_23dof")


@pytest.fixture(scope="session")
def kimodo_dir() -> Path:
    return _require(SHARED_DATA / "kimodo_g1")


@pytest.fixture(scope="session")
def unitree_g1_xml() -> Path:
    return _require(UNITREE_G1_XML)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tests use tiny models: one thread avoids oversubscription when other processes share the cores."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def example_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory holding what README.md and docs/*.md name, shared by their tests.

    ``runs/g1/checkpoints/best.pt`` is a tiny tokenizer with the default token structure (RVQ, 2 body
    parts x 6 levels = 12 streams; 64 codes, so ids below 64 are valid), ``runs/prior`` a tiny prior on its
    tokens (with captions, so ``prompt="a karate chop"`` works) and ``exports/g1`` their export. ``scripts``,
    ``configs`` and ``motion_vqvae`` link to the checkout, so commands run as written from a clone's root;
    ``../shared`` is linked where it exists, as seen from the snippets.
    """
    from _tiny_tokenizer import train_tiny_tokenizer  # puts scripts/ on sys.path
    from test_prior import train_tiny_prior

    from motion_vqvae import Tokenizer
    from motion_vqvae.data import sample_motion_path
    from motion_vqvae.export import export_checkpoint
    from motion_vqvae.prior.export import prior_extra

    root = tmp_path_factory.mktemp("examples")
    work = root / "work"
    work.mkdir()
    for name in ("scripts", "configs", "motion_vqvae"):
        (work / name).symlink_to(REPO_ROOT / name)
    if SHARED.exists():
        (root / "shared").symlink_to(SHARED)
    default_structure = {"quantizer": "rvq", "body_parts": "upper_lower", "num_quantizers": 6, "nb_code": 64}
    last = train_tiny_tokenizer(
        work / "runs" / "g1", str(sample_motion_path()), iters=30, **default_structure
    )
    best = last.parent / "best.pt"
    best.write_bytes(last.read_bytes())
    captions = root / "captions.yaml"
    captions.write_text('captions:\n  - {pattern: "sample_motion_*", caption: "a karate chop"}\n')
    prior = train_tiny_prior(best, work / "runs" / "prior", 10, use_text=True, captions=captions)
    export_checkpoint(Tokenizer.load(best), work / "exports" / "g1", extras=[prior_extra(prior)])
    return work
