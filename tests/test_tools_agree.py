"""Tools that agree (issue 25): one rule for fps and quaternion order, the same flags in every command, a
first run that says what slows it or what it memorises, usage plots that match metrics.json, and token
examples of the right shape for a 12-stream tokenizer."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from motion_vqvae.commands.train import build_parser, path_values
from motion_vqvae.data import load_motions, sample_motion_path, save_csv, save_npy
from motion_vqvae.data.loading import select_clip
from motion_vqvae.training import plots
from motion_vqvae.training.advice import (
    CpuClock,
    Machine,
    SpeedCheck,
    memorising,
    no_validation,
    oversubscription,
)
from sim2real import play as play_cli
from sim2real.token_spec import TokenSpec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

import evaluate  # noqa: E402
import train_prior  # noqa: E402
import visualize  # noqa: E402
from _tiny_tokenizer import train_tiny_tokenizer  # noqa: E402

# The default token structure (rvq levels x upper/lower parts = 12 streams), at the tiny model's size.
MULTI = {"quantizer": "rvq", "num_quantizers": 6, "body_parts": "upper_lower"}


def twelve_streams() -> TokenSpec:
    return TokenSpec("rvq", 6, 32, None, ("upper", "lower"), 4, 30.0)


@pytest.fixture(scope="module")
def multi_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 streams, trained on the sample with ``--fps 60``: a checkpoint whose config records fps 60."""
    out = tmp_path_factory.mktemp("multi") / "run"
    return train_tiny_tokenizer(out, str(sample_motion_path()), 6, fps=60.0, **MULTI)


# ------------------------------------------------------------------------------ one rule for fps and order
def test_evaluate_reads_fps_from_meta_not_from_the_checkpoint(
    multi_checkpoint: Path, kimodo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """kimodo's meta.json says 30 fps and wxyz; the checkpoint's config says fps 60. The file wins: every
    clip keeps its frame count (at 60 fps read into a 30-fps tokenizer, each would have lost half)."""
    out = tmp_path / "eval"
    assert (
        evaluate.main(
            ["--checkpoint", str(multi_checkpoint), "--motion_file", str(kimodo_dir), "--out", str(out)]
        )
        == 0
    )
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {
        p.stem: sum(1 for line in p.read_text().splitlines() if line.strip())
        for p in kimodo_dir.glob("*.csv")
    }
    assert {c["name"]: c["num_frames"] for c in metrics["per_clip"]} == rows
    assert (out / "codebook_usage.png").stat().st_size > 10_000
    one = tmp_path / "one"  # --clip NAME, as in visualize and the viewer
    assert evaluate.main(["--checkpoint", str(multi_checkpoint), "--motion_file", str(kimodo_dir),
                          "--clip", "output_wave", "--out", str(one)]) == 0  # fmt: skip
    per_clip = json.loads((one / "metrics.json").read_text())["per_clip"]
    assert [(c["name"], c["num_frames"]) for c in per_clip] == [("output_wave", rows["output_wave"])]


def test_codebook_usage_plot_matches_metrics_per_stream(
    multi_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from motion_vqvae.agent import MVQVAEAgent
    from motion_vqvae.training.evaluation import evaluate_motions

    agent = MVQVAEAgent.from_checkpoint(multi_checkpoint, device="cpu")
    clips = [agent.prepare(m) for m in load_motions(sample_motion_path())]
    summary, results = evaluate_motions(
        agent.model, agent.layout, clips, mjcf=agent.mjcf, device=agent.device
    )
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plots.plot_codebook_usage(results, agent.token_spec, tmp_path / "usage.png")
    (fig,) = figures
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    spec = agent.token_spec
    assert spec.num_streams == 12 and len(titles) == 12
    for title, name in zip(titles, spec.stream_names, strict=True):
        assert title.startswith(f"{name}: ") and f"({summary['codebook_usage_per_level'][name]:.1%})" in title
    assert f"{summary['codebook_usage']:.1%}" in fig._suptitle.get_text()
    pooled = len(np.unique(np.concatenate([r.tokens.reshape(-1) for r in results]))) / spec.nb_code
    assert f"{pooled:.1%}" not in fig._suptitle.get_text()  # not the pooled histogram of before


def test_visualize_needs_no_fps_beside_a_meta_json_and_takes_clip_names(
    kimodo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # kimodo: meta.json holds fps 30 and the wxyz order; nothing else is needed.
    assert visualize.main(["--motion", str(kimodo_dir / "output_walk.csv"), "--out", str(tmp_path / "w.gif"),
                           "--max-frames", "3"]) == 0  # fmt: skip
    assert (tmp_path / "w.gif").stat().st_size > 1_000
    folder = tmp_path / "gifs"  # no .gif suffix: a folder, the clip's name inside it
    assert visualize.main(["--motion", str(kimodo_dir), "--clip", "output_wave", "--out", str(folder),
                           "--max-frames", "3"]) == 0  # fmt: skip
    assert (folder / "output_wave.gif").is_file()
    with pytest.raises(SystemExit):
        visualize.main(["--motion", str(kimodo_dir), "--out", str(tmp_path / "w.png")])
    assert "expected a .gif file or a folder" in capsys.readouterr().err
    assert visualize.main(["--motion", str(kimodo_dir), "--clip", "nope", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --clip nope") and "output_wave" in err and "None" not in err


def test_select_clip_by_name_or_unambiguous_index() -> None:
    clips = load_motions(sample_motion_path())
    assert select_clip(clips, "sample_motion_2", "s").name == "sample_motion_2"
    assert select_clip(clips, "1", "s") is clips[1]
    renamed = [clips[0], *clips[1:3], clips[3].slice(0, clips[3].num_frames, name="1")]
    with pytest.raises(ValueError, match="ambiguous"):
        select_clip(renamed, "1", "s")
    with pytest.raises(ValueError, match=r"--clip 9: s has no clip .*\(index 0-3\)"):
        select_clip(renamed, "9", "s")


# ------------------------------------------------------------------------------ the same flags everywhere
def test_the_same_source_flags_in_every_command(capsys: pytest.CaptureFixture) -> None:
    args = build_parser().parse_args(["--target-fps", "50", "--fps", "60", "--quat-order", "wxyz"])
    assert path_values(args) == {"fps": 60.0, "quat_order": "wxyz", "target_fps": 50.0}
    for main in (train_prior.main, evaluate.main, visualize.main):
        with pytest.raises(SystemExit):
            main(["--help"])
        text = capsys.readouterr().out
        assert "--fps" in text and "--quat-order" in text, main


# ------------------------------------------------------------------------------ a first run that learns
def test_oversubscribed_threads_are_named_with_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    busy = Machine(cores=2, load=2.1)
    assert "--set num_threads=1" in oversubscription(2, busy)
    assert oversubscription(1, busy) is None and oversubscription(8, Machine(16, 0.5)) is None
    check = SpeedCheck("cpu", threads=2, batch_size=16)
    with caplog.at_level(logging.INFO, logger="motion_vqvae.training.advice"):
        steps = [check.after_step(0.5) for _ in range(SpeedCheck.UNTIMED_STEPS + SpeedCheck.TIMED_STEPS)]
        assert steps[-1] and not any(steps[:-1])  # reported once, after the timed steps
        assert "--set num_threads=1" in check.report(2.0, busy)
    assert "speed: 2.0 steps/s (32 windows/s)" in caplog.text
    assert SpeedCheck("cuda", 2, 16).report(50.0, busy) is None


def test_the_load_of_others_is_measured_not_averaged() -> None:
    """Busy CPU time of the machine less this process's, over the timed steps: a job that ended seconds
    ago (still in the 1-minute load average) and this run's own threads are not a neighbour."""
    alone = CpuClock(wall=0.0, own=0.0, everyone=100.0)
    assert CpuClock(wall=10.0, own=18.0, everyone=118.5).others_since(alone) == pytest.approx(0.05)
    assert oversubscription(2, Machine(2, 0.05)) is None  # two threads fit an idle 2-core machine
    neighbour = CpuClock(wall=10.0, own=10.0, everyone=120.0).others_since(alone)
    assert neighbour == pytest.approx(1.0)
    assert "--set num_threads=1" in oversubscription(2, Machine(2, neighbour))
    assert CpuClock(10.0, 1.0, None).others_since(alone) is None  # no /proc/stat: the load average instead
    start = CpuClock.read()
    busy = time.process_time() + 0.6
    while time.process_time() < busy:  # keep a core busy
        pass
    end = CpuClock.read()
    if start.everyone is None:
        pytest.skip("no /proc/stat on this machine")
    assert end.everyone - start.everyone >= (end.own - start.own) - 0.05  # the machine's time holds ours
    assert 0.0 <= end.others_since(start) <= len(os.sched_getaffinity(0))


def test_memorising_and_no_validation_advice() -> None:
    text = memorising(train_mm=5.1, val_mm=68.0)
    assert text is not None and "13x" in text and "More data" in text and "augmentation" in text
    assert memorising(train_mm=20.0, val_mm=25.0) is None and memorising(1.0, 8.0) is None
    assert "val_clips" in no_validation(4) and "add clips" in no_validation(1)


def test_one_clip_run_warns_and_summary_compares_train_and_held_out(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    one = tmp_path / "one.npy"
    save_npy(load_motions(sample_motion_path())[:1], one)
    with caplog.at_level(logging.WARNING):
        train_tiny_tokenizer(tmp_path / "run", str(one), 2)
    assert "0 validation clips (1 training clip(s))" in caplog.text
    assert "held-out clips: none" in capsys.readouterr().out


def test_summary_scores_training_clips_and_next_lines_repeat_source_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    csv_dir = tmp_path / "csv"
    for m in load_motions(sample_motion_path()):
        save_csv(m, csv_dir / f"{m.name}.csv")  # no meta.json: the rate must be given
    train_tiny_tokenizer(tmp_path / "run", str(csv_dir), 2, fps=30.0)
    out = capsys.readouterr().out
    assert "training clips (" in out
    next_lines = [line for line in out.splitlines() if "--checkpoint" in line]
    assert len(next_lines) == 2 and all("--fps 30" in line for line in next_lines)


# ------------------------------------------------------------------------------ token examples, 12 streams
def test_token_shape_errors_show_an_example_of_the_right_shape() -> None:
    spec = twelve_streams()
    assert spec.check_tokens(json.loads(spec.example())).shape == (2, 12)
    with pytest.raises(ValueError, match=r"S=12 streams.*Two tokens look like \[\[3, 4, 5,") as info:
        spec.check_tokens([3, 17, 17, 40])
    cli = spec.example(cli=True)
    assert f'--tokens "{cli}"' in str(info.value) and cli.count(";") == 1 and cli.count(",") == 22
    assert play_cli._tokens(cli, spec).shape == (2, 12)
    with pytest.raises(ValueError, match=r"--tokens '3,17,17,40'.*--tokens \"3,4,5"):
        play_cli._tokens("3,17,17,40", spec)
    with pytest.raises(ValueError, match=r"12 comma-separated ids .* e\.g\. --tokens"):
        play_cli._tokens("3,x;1", spec)
    single = TokenSpec("vq", 1, 32, None, ("body",), 4, 30.0)
    assert single.example() == "[3, 17]" and single.example(cli=True) == "3,17"


def test_play_decodes_the_default_tokenizer_from_its_help_example(
    multi_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from motion_vqvae import Tokenizer
    from motion_vqvae.export import export_checkpoint

    export = tmp_path / "export"
    export_checkpoint(Tokenizer.load(multi_checkpoint), export)
    with pytest.raises(SystemExit):
        play_cli.main(["--help"])
    help_text = capsys.readouterr().out
    shown = [part.split('"')[0] for part in help_text.split('--tokens "')[1:]]
    example = next(e for e in shown if ";" in e)  # the 12-stream example --help shows
    assert example.count(";") == 1 and len(example.split(";")[0].split(",")) == 12
    assert (
        play_cli.main([str(export), "--tokens", example, "--offline", "--csv", str(tmp_path / "t.csv")]) == 0
    )
    capsys.readouterr()
    assert play_cli.main([str(export), "--tokens", "3,17,17,40", "--offline"]) == 2
    err = capsys.readouterr().err
    assert "S=12 streams" in err and '(on the command line: --tokens "' in err
