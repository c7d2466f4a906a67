"""A preprocessed cache is input, not trusted state: hostile and damaged caches, one test per class.

Changed bytes (refused on open and on --resume, naming the file), an edited index (names outside the
folder, offsets and lengths outside a shard), a shard that shrinks under a running training (an error, not
SIGBUS), a staleness key that follows the feature code itself, and a run that adopts the settings the cache
was made with where its command line leaves them unset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from motion_vqvae.config_loader import ConfigLoader
from motion_vqvae.data import sample_motion_path
from motion_vqvae.data.fingerprint import FEATURE_SOURCES, SOURCE_ROOT, source_fingerprint
from motion_vqvae.training.cache import MotionCache
from motion_vqvae.training.cache_files import CacheError
from motion_vqvae.training.memmap_windows import MemmapWindowSampler
from motion_vqvae.training.preprocess import preprocess

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train_vqvae  # noqa: E402
from _tiny_tokenizer import TINY, tiny_sets  # noqa: E402

SETS = [f"{k}={v}" for k, v in TINY.items()] + ["device=cpu"]
SHARD = "features_00000.f32"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of the bundled sample, made once; each test tampers with its own copy."""
    out = tmp_path_factory.mktemp("made") / "cache"
    preprocess(sample_motion_path(), ConfigLoader(overrides=SETS).config, out, workers=1, progress=False)
    return out


@pytest.fixture
def cache(made: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "cache"))


def _edit_index(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    index = json.loads((folder / "index.json").read_text())
    edit(index)
    (folder / "index.json").write_text(json.dumps(index))


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


# ---------------------------------------------------------------------------------------------- checksums
@pytest.mark.parametrize("name", [SHARD, "val_motions.f64"])
def test_changed_bytes_are_refused_on_open_naming_the_file(cache: Path, name: str) -> None:
    MotionCache.open(cache).close()
    _flip_byte(cache / name, (cache / name).stat().st_size // 2 + 1)  # one bit, mid-file, size unchanged
    with pytest.raises(CacheError, match="checksum mismatch") as err:
        MotionCache.open(cache)
    assert str(cache / name) in str(err.value) and "preprocess.py" in str(err.value)


def test_changed_bytes_are_refused_on_resume(cache: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert train_vqvae.main(["--motion_file", str(cache), "--out", str(out), *tiny_sets(2)]) == 0
    last = (out / "checkpoints" / "last.pt").read_bytes()
    shard = cache / SHARD
    values = np.fromfile(shard, dtype=np.float32)
    values[len(values) // 3] = 1e30  # one number, as a hostile edit or a bad disk block would
    values.tofile(shard)
    capsys.readouterr()
    args = ["--motion_file", str(cache), "--out", str(out), "--resume", "--set", "total_iter=4"]
    assert train_vqvae.main(args) == 2
    err = capsys.readouterr().err
    assert str(shard) in err and "checksum mismatch" in err and "--overwrite" in err
    assert (out / "checkpoints" / "last.pt").read_bytes() == last


# ---------------------------------------------------------------------------------------------- the index
def _shard_file(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda index: index["shards"][0].update(file=value)


def _clip(field: str, value: Any, which: int = 0) -> Callable[[dict[str, Any]], None]:
    return lambda index: index["clips"][which].update({field: value})


def _val_clip(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(index: dict[str, Any]) -> None:
        next(c for c in index["clips"] if c["val"])[field] = value

    return edit


HOSTILE_INDEXES = {
    "parent path": (_shard_file("../../outside.f32"), "shards[0].file"),
    "absolute path": (_shard_file("/etc/passwd"), "shards[0].file"),
    "sub folder": (_shard_file("sub/features_00000.f32"), "shards[0].file"),
    "negative offset": (_clip("offset", -500), "clips[0].offset"),
    "offset past the shard": (_clip("offset", 10**9), "clips[0].offset"),
    "length past the shard": (_clip("length", 10**9), "clips[0].length"),
    "range past the shard": (
        lambda i: i["clips"][0].update(offset=i["shards"][0]["frames"] - 3),
        "clips[0].offset",
    ),
    "zero length": (_clip("length", 0), "clips[0].length"),
    "float offset": (_clip("offset", 1.5), "clips[0].offset"),
    "text offset": (_clip("offset", "12"), "clips[0].offset"),
    "bool shard": (_clip("shard", True), "clips[0].shard"),
    "missing shard": (_clip("shard", 3), "clips[0].shard"),
    "unknown field": (_clip("evil", 1), "clips[0]"),
    "validation rows outside": (_val_clip("motion_offset", 10**6), "motion_offset"),
    "negative validation offset": (_val_clip("motion_offset", -1), "motion_offset"),
    "more frames than the file": (
        lambda i: i["shards"][0].update(frames=i["shards"][0]["frames"] + 1),
        "bytes",
    ),
    "other feature width": (lambda i: i["layout"].update(dim=i["layout"]["dim"] + 1), "bytes"),
    "no shards": (lambda i: i.update(shards=[]), "shards"),
    "no training clip": (lambda i: i.update(clips=[c for c in i["clips"] if c["val"]]), "training clip"),
    "infinite fps": (lambda i: i.update(fps=float("inf")), "fps"),
    "clips not a list": (lambda i: i.update(clips={"a": 1}), "clips"),
}


@pytest.mark.parametrize("case", list(HOSTILE_INDEXES))
def test_a_hostile_index_is_refused_naming_the_field(cache: Path, case: str) -> None:
    edit, field = HOSTILE_INDEXES[case]
    (cache.parent.parent / "outside.f32").write_bytes((cache / SHARD).read_bytes())  # exists: refused by name
    _edit_index(cache, edit)
    with pytest.raises(CacheError) as err:
        MotionCache.open(cache)
    message = str(err.value)
    assert field in message and "preprocess.py" in message and "\n" not in message


def test_a_shard_linked_from_outside_the_folder_is_refused(cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.f32"
    shutil.move(cache / SHARD, outside)
    (cache / SHARD).symlink_to(outside)
    with pytest.raises(CacheError, match=r"shards\[0\]\.file.*outside"):
        MotionCache.open(cache)


def test_index_damage_reaches_the_command_line_as_one_line(cache: Path, tmp_path: Path, capsys) -> None:
    _edit_index(cache, _clip("offset", -500))
    args = ["--motion_file", str(cache), "--out", str(tmp_path / "run"), *tiny_sets(2)]
    assert train_vqvae.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "clips[0].offset = -500" in err
    (cache / "index.json").write_text("{not json")
    assert train_vqvae.main(args) == 2
    assert "index.json: not JSON" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- no SIGBUS
def test_a_shard_that_shrinks_while_read_raises_naming_it(cache: Path) -> None:
    opened = MotionCache.open(cache)
    sampler = MemmapWindowSampler.from_cache(opened, 16, 0, torch.device("cpu"))
    picks = torch.arange(sampler.num_windows - 8, sampler.num_windows)  # the last windows of the shard
    sampler.gather(picks)
    os.truncate(cache / SHARD, (cache / SHARD).stat().st_size // 2)
    with pytest.raises(CacheError, match="shrank to") as err:
        sampler.gather(picks)
    assert str(cache / SHARD) in str(err.value) and "--resume" in str(err.value)


def test_a_training_whose_shard_is_truncated_stops_with_a_message_not_sigbus(
    cache: Path, tmp_path: Path
) -> None:
    """In a child process, so a regression (SIGBUS, exit -7 / 135) cannot take pytest down with it."""
    out = tmp_path / "run"
    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "from motion_vqvae.training import memmap_windows as mw\n"
        "gather, calls = mw.MemmapWindowSampler.gather, []\n"
        "def truncating(self, picks):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:  # mid-run, as `truncate`, a full disk or a concurrent rewrite would\n"
        f"        os.truncate({str(cache / SHARD)!r}, 4096)\n"
        "    return gather(self, picks)\n"
        "mw.MemmapWindowSampler.gather = truncating\n"
        "import train_vqvae\n"
        f"sys.exit(train_vqvae.main({['--motion_file', str(cache), '--out', str(out), *tiny_sets(6)]!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error: " in line]  # tqdm may share the line
    assert len(errors) == 1 and f"{cache / SHARD} shrank to 4096 bytes" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------- staleness
def _copy_sources(dest: Path) -> None:
    for pattern in FEATURE_SOURCES:
        for path in SOURCE_ROOT.glob(pattern):
            target = dest / path.relative_to(SOURCE_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def test_the_staleness_key_follows_the_feature_code(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    key = source_fingerprint(tmp_path, FEATURE_SOURCES)
    assert key == source_fingerprint(SOURCE_ROOT, FEATURE_SOURCES)  # text, not where it lies
    reader = tmp_path / "motion_vqvae" / "data" / "csv_format.py"
    text = reader.read_bytes()
    reader.write_bytes(text.replace(b"\n", b"\r\n"))  # a Windows checkout of the same code
    assert source_fingerprint(tmp_path, FEATURE_SOURCES) == key
    reader.write_bytes(text + b"\n# a reader fix that forgot to bump anything\n")
    assert source_fingerprint(tmp_path, FEATURE_SOURCES) != key
    reader.write_bytes(text)
    (tmp_path / "motion_vqvae" / "features.py").write_bytes(b"")
    assert source_fingerprint(tmp_path, FEATURE_SOURCES) != key
    (tmp_path / "motion_vqvae" / "features.py").unlink()
    with pytest.raises(FileNotFoundError, match="features.py"):
        source_fingerprint(tmp_path, FEATURE_SOURCES)


def test_the_staleness_key_is_the_same_in_another_process_and_folder(tmp_path: Path) -> None:
    from motion_vqvae.data.fingerprint import feature_code_fingerprint

    code = "from motion_vqvae.data.fingerprint import feature_code_fingerprint as f; print(f())"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.stdout.strip() == feature_code_fingerprint()


def test_every_module_the_preprocess_worker_runs_is_in_the_key() -> None:
    """A module added to the feature path later must join FEATURE_SOURCES, or its edits go unnoticed."""
    code = (
        "import sys\n"
        "from motion_vqvae.config_loader import ConfigLoader\n"
        "from motion_vqvae.data import sample_motion_path\n"
        "from motion_vqvae.training.preprocess import _process_file\n"
        "_process_file(str(sample_motion_path()), ConfigLoader().config.to_dict())\n"
        "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours = {Path(f).resolve() for f in proc.stdout.split()}
    ours = {p.relative_to(REPO).as_posix() for p in ours if p.is_relative_to(REPO)}
    hashed = {p.relative_to(SOURCE_ROOT).as_posix() for pat in FEATURE_SOURCES for p in SOURCE_ROOT.glob(pat)}
    not_features = {  # what the worker imports but what cannot change a feature
        "motion_vqvae/__init__.py",
        "motion_vqvae/training/__init__.py",
        "sim2real/__init__.py",
        "motion_vqvae/cli.py",  # logging and error types
        "motion_vqvae/errors.py",  # error types
        "motion_vqvae/outputs.py",  # where the finished cache goes, not what it holds
        "motion_vqvae/config_loader.py",  # the settings themselves are in the key
        "motion_vqvae/typed_fields.py",  # the config's field machinery, likewise
        "motion_vqvae/training/split.py",  # which clips train or test, not what their features are
        "motion_vqvae/training/cache.py",  # index layout: CACHE_FORMAT
        "motion_vqvae/training/cache_files.py",  # checksums and reads of the finished files
    }
    assert ours - not_features <= hashed, sorted(ours - not_features - hashed)


def test_a_cache_made_by_other_feature_code_is_refused(cache: Path, tmp_path: Path, capsys) -> None:
    _edit_index(cache, lambda index: index["settings"].update(feature_code="0123456789abcdef"))
    args = ["--motion_file", str(cache), "--out", str(tmp_path / "run"), *tiny_sets(2)]
    assert train_vqvae.main(args) == 2
    err = capsys.readouterr().err
    assert "made by other feature code" in err and "'0123456789abcdef'" in err
    assert f"--out {cache} --overwrite --set window_size=16" in err  # the command that remakes it


# ---------------------------------------------------------------------------------------------- adoption
def test_a_run_adopts_the_caches_settings_and_refuses_only_real_conflicts(
    tmp_path: Path, capsys, caplog
) -> None:
    import preprocess as preprocess_script

    cache = tmp_path / "cache"
    args = ["--motion_file", str(sample_motion_path()), "--out", str(cache), "--fps", "60", "--workers", "1"]
    args += ["--set", "window_size=16", "--set", "mirror_augment=false", "--set", "seed=7"]
    assert preprocess_script.main(args) == 0
    run = tmp_path / "run"
    sets = tiny_sets(2)  # no --fps, mirror_augment nor seed
    with caplog.at_level("INFO", logger="train_vqvae"):
        assert train_vqvae.main(["--motion_file", str(cache), "--out", str(run), *sets]) == 0
    assert "fps=60.0" in caplog.text and "mirror_augment=False" in caplog.text and "seed=7" in caplog.text
    saved = ConfigLoader(run / "config.yaml").config
    assert (saved.fps, saved.mirror_augment, saved.seed) == (60.0, False, 7)
    capsys.readouterr()
    # a value the command line does set, against the cache's: refused, naming both and both fixes
    args = ["--motion_file", str(cache), "--out", str(tmp_path / "run2"), "--fps", "30", *sets]
    assert train_vqvae.main(args) == 2
    err = capsys.readouterr().err
    assert "fps (cache: 60.0, run: 30.0)" in err and "--fps 30" in err and "drop those values" in err
    # a --config file's values count as set where they differ from the shipped configs/agent.yaml
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  config:\n    target_fps: 50\n    mirror_augment: true\n    fps: null\n")
    args = ["--motion_file", str(cache), "--out", str(tmp_path / "run3"), "--config", str(config), *sets]
    assert train_vqvae.main(args) == 2
    err = capsys.readouterr().err
    assert "target_fps (cache: 30.0, run: 50.0)" in err and err.count("(cache:") == 1


def test_real_clips_cache_adopts_fps_verifies_and_survives_truncation(
    tmp_path: Path, g1_moves_dir: Path
) -> None:
    """On real g1_moves clips: a cache made with fps=60 gives a run without it fps=60 and nothing else; a
    changed number is refused at open; a shard truncated after opening raises instead of faulting."""
    from motion_vqvae.training.cache import adopted_settings, load_index

    source = str(g1_moves_dir / "B_*Karate.csv")
    cfg = ConfigLoader(overrides=[*SETS, "fps=60"]).config
    out = preprocess(source, cfg, tmp_path / "cache", workers=1, progress=False).path
    run_cfg = ConfigLoader(overrides=SETS).config
    assert adopted_settings(load_index(out)["settings"], run_cfg, explicit=set()) == {"fps": 60.0}
    assert adopted_settings(load_index(out)["settings"], run_cfg, explicit={"fps"}) == {}
    opened = MotionCache.open(out, cfg)
    sampler = MemmapWindowSampler.from_cache(opened, 16, 0, torch.device("cpu"))
    picks = sampler.draw(64)
    os.truncate(out / SHARD, 4096)
    with pytest.raises(CacheError, match="shrank to 4096 bytes"):
        sampler.gather(picks)
    with pytest.raises(CacheError, match=r"4096 bytes, but index\.json says"):
        MotionCache.open(out)
