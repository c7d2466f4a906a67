"""One home for command-line entry points: the logic in motion_vqvae/commands/, scripts/*.py thin shims.

A shim is the docstring, ``from motion_vqvae.cli import run``, ``from motion_vqvae.commands.X import main``
and ``if __name__ == "__main__": run(main)``, nothing else: no flags, no logic, no thread settings. The
scripts that stay whole are the checkout's own tools (they read or write files of the checkout) and the
benchmark runner, which imports ``benchmarks/`` (beside the library, never inside it).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))
CHECKOUT_TOOLS = {"benchmark", "build_g1_model", "make_sample_motion", "typecheck_isaacgym"}
COMMANDS = sorted(p.stem for p in (REPO / "motion_vqvae" / "commands").glob("*.py") if p.stem != "__init__")


def shim_target(path: Path) -> str | None:
    """The ``motion_vqvae.commands`` module a script runs, or None when the script is not a thin shim."""
    body = ast.parse(path.read_text()).body
    if not body or not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
        return None
    expected = [
        "from motion_vqvae.cli import run",
        "from motion_vqvae.commands.{} import main",
        "if __name__ == '__main__':\n    run(main)",
    ]
    rest = [ast.unparse(node) for node in body[1:]]
    if len(rest) != 3 or not rest[1].startswith("from motion_vqvae.commands."):
        return None
    target = rest[1].removeprefix("from motion_vqvae.commands.").removesuffix(" import main")
    return target if rest == [line.format(target) for line in expected] else None


@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - CHECKOUT_TOOLS))
def test_every_script_is_a_thin_shim_over_a_command(script: str) -> None:
    target = shim_target(REPO / "scripts" / f"{script}.py")
    assert target in COMMANDS, (
        f"scripts/{script}.py holds more than a shim: move its logic to motion_vqvae/commands/ and leave "
        "the docstring, `from motion_vqvae.cli import run`, `from motion_vqvae.commands.X import main` and "
        "`if __name__ == '__main__': run(main)`"
    )


def test_every_command_has_a_script() -> None:
    targets = {shim_target(REPO / "scripts" / f"{s}.py") for s in SCRIPTS}
    assert set(COMMANDS) <= targets, f"commands without a scripts/ shim: {sorted(set(COMMANDS) - targets)}"


def test_the_shim_check_refuses_logic(tmp_path: Path) -> None:
    shim = (REPO / "scripts" / "train_vqvae.py").read_text()
    assert shim_target(REPO / "scripts" / "train_vqvae.py") == "train"
    fat = tmp_path / "fat.py"
    fat.write_text(shim.replace("if __name__", "import torch\ntorch.set_num_threads(1)\n\nif __name__"))
    assert shim_target(fat) is None


def test_every_console_script_names_a_command_main() -> None:
    tomllib = pytest.importorskip("tomllib")  # the standard library has it from Python 3.11
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert module.startswith("motion_vqvae."), f"{name} = {target}: entry points live in the library"
        assert callable(getattr(importlib.import_module(module), attr)), f"{name} = {target}"
