"""No import circle between the project's files or rooms, and every arrow between rooms points down the
layers that ARCHITECTURE.md draws (:data:`LAYERS`, top to bottom).

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

# The rooms of motion_vqvae from top to bottom, as ARCHITECTURE.md draws them: a room may import its own
# layer (the circle tests keep that acyclic) and any layer below, never one above. The robot side
# (sim2real) lies below them all. A room not listed fails the test: place it here and in ARCHITECTURE.md.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(f"motion_vqvae.{r}" if "." not in r and r not in TOPS else r for r in rooms.split()))
    for name, rooms in (
        ("entry points", "commands viewer scripts benchmarks"),
        ("public face", "motion_vqvae"),  # the package itself: `from motion_vqvae import Tokenizer`
        ("command-line helpers", "cli"),
        ("consumers", "envs evaluate tracking"),
        ("prior", "prior"),
        ("tokenizer", "tokenizer agent"),
        ("export", "export"),
        ("training", "training"),
        ("models", "models"),
        ("motion", "features body_parts kinematics metrics physics physics_report"),
        ("data", "data"),
        (
            "foundation",
            "errors rotations normalization collectives config_loader outputs robot_model devices threads "
            "typed_fields",
        ),
        ("robot side", "sim2real"),
    )
)

WHOLE_TREES = {"scripts", "benchmarks", "sim2real"}  # one room per file, all in one layer

ROBOT_SIDE_PACKAGES = {"numpy", "onnxruntime", "yaml"}  # sim2real's dependencies, besides the stdlib


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph.read(REPO, TOPS)


def _check(edges: dict[str, set[str]], what: str) -> None:
    new = [describe(c, edges) for c in set(cycles(edges))]
    assert not new, (
        f"import circles between {what}: "
        + "; ".join(new)
        + (". Move what both sides need into a module below both (a lazy import still counts).")
    )


def test_no_circle_between_files(graph: ImportGraph) -> None:
    _check(graph.edges, "files")


def test_no_circle_between_rooms(graph: ImportGraph) -> None:
    _check(graph.room_edges(), "rooms")


def layer_of(module_room: str) -> int:
    """The index of a room's layer in :data:`LAYERS` (0 is the top); the rooms of scripts, benchmarks and
    sim2real are listed by their top-level name."""
    top = module_room.split(".")[0]
    for depth, (_, rooms) in enumerate(LAYERS):
        if module_room in rooms or (top in WHOLE_TREES and top in rooms):
            return depth
    raise AssertionError(
        f"room {module_room} has no layer: add it to LAYERS in tests/test_import_cycles.py and to the "
        "drawing in ARCHITECTURE.md"
    )


def upward_arrows(room_edges: dict[str, set[str]]) -> list[str]:
    """Arrows from a room to a layer above its own (those inside a known circle aside)."""
    return [
        f"{source} ({LAYERS[layer_of(source)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
        for source, targets in sorted(room_edges.items())
        for target in sorted(targets)
        if layer_of(target) < layer_of(source)
    ]


def test_every_arrow_between_rooms_points_down(graph: ImportGraph) -> None:
    upward = upward_arrows(graph.room_edges())
    assert not upward, "imports that point up the layers of ARCHITECTURE.md: " + "; ".join(upward)


def test_the_layer_check_catches_an_upward_arrow_and_an_unplaced_room() -> None:
    assert upward_arrows({"motion_vqvae.models": {"motion_vqvae.training", "sim2real.token_spec"}}) == [
        "motion_vqvae.models (models) -> motion_vqvae.training (training)"
    ]
    assert upward_arrows({"scripts.train_vqvae": {"motion_vqvae.commands"}}) == []
    with pytest.raises(AssertionError, match="motion_vqvae.nowhere has no layer"):
        layer_of("motion_vqvae.nowhere")


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
        _check(graph.edges, "files")


def test_the_checker_finds_a_circle_between_rooms_that_no_two_files_close(tmp_path: Path) -> None:
    graph = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/x/__init__.py": "",
            "pkg/x/low.py": "",
            "pkg/x/high.py": "from pkg.y import n\n",
            "pkg/y/__init__.py": "",
            "pkg/y/n.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.x.low import T\n",
        },
    )
    assert cycles(graph.edges) == []
    assert cycles(graph.room_edges()) == [frozenset({"pkg.x", "pkg.y"})]
    assert graph.external["pkg.y.n"] == {"typing"}
    assert graph.edges["pkg.x.high"] == {"pkg.y.n"}  # ``from pkg.y import n`` reaches the module n


def _room_text(module_room: str) -> str:
    """How the docs name a room of motion_vqvae: ``envs/`` for a package, ``cli.py`` for a file."""
    name = module_room.removeprefix("motion_vqvae.")
    return f"{name}/" if (REPO / "motion_vqvae" / name).is_dir() else f"{name}.py"


def _drawn_layers() -> dict[str, str]:
    """ARCHITECTURE.md's drawing: each layer's name (a line's first words) -> the text of its rows."""
    drawing = (REPO / "ARCHITECTURE.md").read_text().split("```")[1]
    layers: dict[str, str] = {}
    name = ""
    for line in drawing.splitlines():
        if line[:1].isalpha():
            name = line.split("  ")[0]
        if name:
            layers[name] = layers.get(name, "") + line[len(name) :] + "\n"
    return layers


def test_architecture_md_draws_the_layers_and_names_every_room(graph: ImportGraph) -> None:
    drawn = _drawn_layers()
    assert list(drawn) == [name for name, _ in LAYERS], "ARCHITECTURE.md's drawing and LAYERS disagree"
    rooms = {room(m) for m in graph.files if m.startswith("motion_vqvae.")}
    missing = {r: LAYERS[layer_of(r)][0] for r in rooms if _room_text(r) not in drawn[LAYERS[layer_of(r)][0]]}
    assert not missing, f"ARCHITECTURE.md's drawing does not name these rooms in their layers: {missing}"


def test_the_readme_layout_table_names_every_package(graph: ImportGraph) -> None:
    layout = (REPO / "README.md").read_text().split("## Layout")[1]
    packages = {_room_text(room(m)) for m in graph.files if m.startswith("motion_vqvae.")}
    missing = sorted(p for p in packages if p.endswith("/") and p not in layout)
    assert not missing, f"README's layout table does not list {missing}; keep it in step with ARCHITECTURE.md"
