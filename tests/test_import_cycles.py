"""No import circle between the project's files or rooms, and the arrows ARCHITECTURE.md draws hold.

The graph is read from the source (tests/_import_graph.py): lazy and ``TYPE_CHECKING`` imports count,
so a circle cannot be hidden by moving an import into a function. A circle is mended by moving the shared
piece down a level (a small module both sides import), never by hiding one of its imports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from _import_graph import ImportGraph, cycles, describe, room

REPO = Path(__file__).resolve().parents[1]
TOPS = ("motion_vqvae", "sim2real", "benchmarks", "scripts")

# Circles known today, each as the set of its members. Only the agent's: ``MVQVAEAgent`` is both the
# trainer and the inference handle, and ``training/loop.py`` calls back into it. The ``trainer`` branch
# (issue 19) turns the agent into a thin facade over ``training/trainer.py``; its merge empties these sets.
# The test fails on a circle not listed here, and on a listed one that is gone, so neither set can go stale.
KNOWN_FILE_CYCLES: set[frozenset[str]] = {frozenset({"motion_vqvae.agent", "motion_vqvae.training.loop"})}
KNOWN_ROOM_CYCLES: set[frozenset[str]] = {frozenset({"motion_vqvae.agent", "motion_vqvae.training"})}

ROBOT_SIDE_PACKAGES = {"numpy", "onnxruntime", "yaml"}  # sim2real's dependencies, besides the stdlib


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph.read(REPO, TOPS)


def _check(edges: dict[str, set[str]], known: set[frozenset[str]], what: str) -> None:
    found = set(cycles(edges))
    new = [describe(c, edges) for c in found - known]
    assert not new, f"import circles between {what}: " + "; ".join(new) + (
        ". Move what both sides need into a module below both (a lazy import still counts)."
    )
    gone = [sorted(c) for c in known - found]
    assert not gone, f"known circles between {what} no longer exist: {gone}; remove them from the KNOWN set"


def test_no_circle_between_files(graph: ImportGraph) -> None:
    _check(graph.edges, KNOWN_FILE_CYCLES, "files")


def test_no_circle_between_rooms(graph: ImportGraph) -> None:
    _check(graph.room_edges(), KNOWN_ROOM_CYCLES, "rooms")


def test_the_robot_side_imports_no_training_code(graph: ImportGraph) -> None:
    """sim2real installs without torch: numpy, onnxruntime and pyyaml only, nothing of motion_vqvae."""
    robot_side = [m for m in graph.files if room(m).startswith("sim2real")]
    assert robot_side
    wrong = {
        m: sorted(t for t in graph.edges[m] if not t.startswith("sim2real"))
        + sorted(graph.external[m] - ROBOT_SIDE_PACKAGES - set(sys.stdlib_module_names))
        for m in robot_side
    }
    assert not {m: w for m, w in wrong.items() if w}, wrong


def test_the_library_never_imports_benchmarks(graph: ImportGraph) -> None:
    wrong = {
        m: sorted(t for t in targets if t.startswith("benchmarks"))
        for m, targets in graph.edges.items()
        if m.split(".")[0] in ("motion_vqvae", "sim2real")
    }
    assert not {m: w for m, w in wrong.items() if w}, "benchmarks/ sits beside the library, not under it"


def _plant(root: Path, files: dict[str, str]) -> ImportGraph:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ImportGraph.read(root, ["pkg"])


def test_the_checker_finds_a_planted_circle_through_a_lazy_import(tmp_path: Path) -> None:
    graph = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "def thing():\n    from . import a\n    return a\n",
            "pkg/c.py": "import pkg.a\n",  # on no circle: imports into it, not out of it
        },
    )
    assert cycles(graph.edges) == [frozenset({"pkg.a", "pkg.b"})]
    assert describe(cycles(graph.edges)[0], graph.edges) == "pkg.a -> pkg.b -> pkg.a"
    with pytest.raises(AssertionError, match="circles between files: pkg.a -> pkg.b -> pkg.a"):
        _check(graph.edges, set(), "files")
    with pytest.raises(AssertionError, match="no longer exist"):
        _check(graph.edges, {frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg.c", "pkg.a"})}, "files")


def test_the_checker_finds_a_circle_between_rooms_that_no_two_files_close(tmp_path: Path) -> None:
    graph = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/x/__init__.py": "",
            "pkg/x/low.py": "",
            "pkg/x/high.py": "from pkg.y import n\n",
            "pkg/y/__init__.py": "",
            "pkg/y/n.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.x.low import T\n",
        },
    )
    assert cycles(graph.edges) == []
    assert cycles(graph.room_edges()) == [frozenset({"pkg.x", "pkg.y"})]
    assert graph.external["pkg.y.n"] == {"typing"}
