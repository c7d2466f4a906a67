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
