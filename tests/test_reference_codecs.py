"""Reference codecs of the rate-distortion table (PCA, k-means, residual k-means) and its report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.rate_distortion import markdown_table, plot_rate_distortion
from benchmarks.reference_codecs import chunks, fit_pca, fit_residual_kmeans, kmeans


def _data(n: int = 600, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) @ rng.normal(size=(3, d)) + 0.05 * rng.normal(size=(n, d))


def test_chunks_flatten_frames_and_pad_with_the_last_frame() -> None:
    feats = np.arange(10 * 2, dtype=float).reshape(10, 2)
    out = chunks(feats, 4)
    assert out.shape == (3, 8)
    np.testing.assert_array_equal(out[0], feats[:4].ravel())
    np.testing.assert_array_equal(out[2], np.concatenate([feats[8:].ravel(), feats[9], feats[9]]))


def test_pca_error_falls_with_numbers_and_is_exact_at_full_rank() -> None:
    x = _data()
    errors = [float(((fit_pca(x, n)(x) - x) ** 2).mean()) for n in (1, 2, 3, 12)]
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 1e-20
    assert errors[2] < 0.01, "three components explain this rank-3 data up to its noise"


def test_kmeans_finds_separated_clusters_and_residual_levels_refine() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + 0.1 * rng.normal(size=(100, 2)) for c in centres])
    found = kmeans(x, 3, seed=0)
    assert np.abs(np.sort(found, axis=0) - np.sort(centres, axis=0)).max() < 0.1
    y = _data()
    errors = [float(((fit_residual_kmeans(y, 8, levels, seed=0)(y) - y) ** 2).mean()) for levels in (1, 2, 4)]
    assert errors[0] > errors[1] > errors[2]


def test_table_and_plot_show_every_row_and_level(tmp_path: Path) -> None:
    metrics = {"mpjpe_local_mm": 40.0, "pa_mpjpe_mm": 30.0, "dof_rmse_rad": 0.1, "accel_error_mm": 5.0}
    level = {
        **metrics,
        "codebook_usage_per_level": {"body/L0": 0.5},
        "perplexity_per_level": {"body/L0": 9.0},
    }
    results = {
        "minutes_per_row": 1.0,
        "rows": {
            "default": {
                "kind": "neural",
                "token_spec": {"kind": "rvq"},
                "levels": {"1": {**level, "bits_per_second": 64.0}, "2": {**level, "bits_per_second": 128.0}},
                "windows_per_s": 100.0,
                "parameters": 1_000_000,
            },
            "pca_16": {"kind": "reference", "description": "PCA, 16", "bits_per_second": 3840.0, **metrics},
            "kmeans_384": {"kind": "reference", "description": "k-means", "bits_per_second": 64.0, **metrics},
        },
    }
    table = markdown_table(results)
    assert "first 1 level(s)" in table and "first 2 level(s)" in table and "PCA, 16" in table
    assert "| 128 |" in table and "1.00 M" in table
    assert plot_rate_distortion(results, tmp_path / "rd.png").stat().st_size > 10_000
