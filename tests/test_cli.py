"""The shared command helpers: user errors as one line, data warnings as one line per kind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from motion_vqvae.cli import UserError, cli_main
from motion_vqvae.config_loader import ConfigLoader, parse_overrides
from motion_vqvae.data.warning_digest import WarningDigest
from motion_vqvae.errors import UnknownKey


@cli_main
def _fails(argv: list[str] | None = None) -> int:
    kind = (argv or ["user"])[0]
    if kind == "user":
        raise UserError("--out x is in use\n  by pid 3")
    if kind == "key":
        raise UnknownKey("unknown config key 'nb_codes'; did you mean 'nb_code'?")
    if kind == "plain":  # what a bug raises: the builtin itself, not the project's family
        raise {"value": ValueError, "key": KeyError, "type": TypeError}[argv[1]]("deep inside")
    raise RuntimeError("a bug keeps its traceback")


def test_user_errors_print_one_line_and_return_2(capsys, monkeypatch) -> None:
    monkeypatch.delenv("MOTION_VQVAE_DEBUG", raising=False)
    assert _fails(["user"]) == 2
    assert capsys.readouterr().err == "error: --out x is in use by pid 3\n"
    assert _fails(["key"]) == 2
    assert capsys.readouterr().err == "error: unknown config key 'nb_codes'; did you mean 'nb_code'?\n"
    with pytest.raises(RuntimeError):
        _fails(["bug"])
    monkeypatch.setenv("MOTION_VQVAE_DEBUG", "1")
    with pytest.raises(UserError):
        _fails(["user"])


@pytest.mark.parametrize("builtin", ["value", "key", "type"])
def test_a_plain_builtin_error_is_a_bug_and_keeps_its_traceback(builtin: str, monkeypatch) -> None:
    monkeypatch.delenv("MOTION_VQVAE_DEBUG", raising=False)
    with pytest.raises((ValueError, KeyError, TypeError)) as caught:
        _fails(["plain", builtin])
    assert not isinstance(caught.value, UserError)


def test_paths_and_globs_in_set_are_text_not_yaml() -> None:
    parsed = parse_overrides(["motion_file=data/*.csv", "wandb_project=1e3", "val_clips=[a, b]"])
    assert parsed == {"motion_file": "data/*.csv", "wandb_project": "1e3", "val_clips": ["a", "b"]}
    assert ConfigLoader(overrides=["lr=2e-4"]).config.lr == 2e-4
    config = ConfigLoader(overrides=["motion_file=*.csv"], values={"mjcf": "robots/&g1.xml"}).config
    assert config.motion_file == "*.csv" and config.mjcf == "robots/&g1.xml"


def test_repeated_data_warnings_become_one_line_and_a_file(tmp_path: Path, caplog) -> None:
    reader = logging.getLogger("motion_vqvae.data.jumps")
    with WarningDigest() as digest:
        for clip in ("a", "b", "c"):
            reader.warning("clip '%s': %d joint jump(s) above %g rad/s", clip, 2, 30.0)
        reader.warning("a different problem")
    out = logging.getLogger("test")
    with caplog.at_level(logging.WARNING, logger="test"):
        digest.report(tmp_path / "data_warnings.log", out)
    lines = [r.getMessage() for r in caplog.records if r.name == "test"]
    assert lines[0].startswith("3 warnings like: clip 'a'") and lines[1] == "a different problem"
    assert "data_warnings.log" in lines[2] and len(lines) == 3
    assert len((tmp_path / "data_warnings.log").read_text().splitlines()) == 4
