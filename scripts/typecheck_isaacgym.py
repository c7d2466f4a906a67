"""Type-check the Isaac Gym adapter with mypy against isaacgym-stubs, repaired in a temporary copy.

The stub package ships ``isaacgym-stubs/{__init__.py, gymapi.pyi}``: no ``__init__.pyi``, no ``gymtorch``,
and a property named ``lambda`` (a syntax error). The copy adds ``__init__.pyi``, renames the property to
``lambda_``, writes a two-function ``gymtorch.pyi`` and runs mypy with ``MYPYPATH`` pointing at it. The
stubs' own sloppiness (``dtype`` undefined, ``ndarray[float32]``) is silenced for ``isaacgym.*`` only.

    python scripts/typecheck_isaacgym.py [FILES]   # default: the adapter; exit status = mypy's
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "motion_vqvae" / "envs" / "isaacgym_adapter.py"
GYMTORCH_STUB = """import torch
from isaacgym.gymapi import Tensor

def unwrap_tensor(tensor: torch.Tensor) -> Tensor: ...
def wrap_tensor(
    gym_tensor: Tensor, offsets: tuple[int, ...] | None = ..., counts: tuple[int, ...] | None = ...
) -> torch.Tensor: ...
"""


def stub_dir() -> Path:
    """The installed isaacgym-stubs folder (it is not importable as a package, so find it on sys.path)."""
    for entry in map(Path, sys.path):
        candidate = entry / "isaacgym-stubs" / "gymapi.pyi"
        if candidate.is_file():
            return candidate.parent
    raise FileNotFoundError("isaacgym-stubs is not installed; pip install isaacgym-stubs (a dev dependency)")


def write_fixed_stubs(root: Path) -> Path:
    """Copy the stubs into ``root/isaacgym`` with the fixes above; returns ``root``."""
    src, dst = stub_dir(), root / "isaacgym"
    dst.mkdir(parents=True)
    gymapi = re.sub(r"\bdef lambda\(", "def lambda_(", (src / "gymapi.pyi").read_text())
    (dst / "gymapi.pyi").write_text(gymapi)
    (dst / "gymtorch.pyi").write_text(GYMTORCH_STUB)
    (dst / "__init__.pyi").write_text("from . import gymapi as gymapi, gymtorch as gymtorch\n")
    return root


def main(argv: list[str] | None = None) -> int:
    if importlib.util.find_spec("mypy") is None:
        print("mypy is not installed (a dev dependency)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        stubs = write_fixed_stubs(Path(tmp) / "stubs")
        env = {**os.environ, "MYPYPATH": str(stubs)}
        config = Path(tmp) / "mypy.ini"
        config.write_text("[mypy]\n[mypy-isaacgym.*]\nignore_errors = True\n")
        cmd = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--follow-imports=silent",
            "--ignore-missing-imports",
            "--check-untyped-defs",
            "--cache-dir",
            str(REPO / ".mypy_cache" / "isaacgym"),
            *(argv or [str(TARGET)]),
        ]
        return subprocess.run(cmd, env=env, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
