"""The project's import graph, read from the source with :mod:`ast` (nothing is imported or run).

Every ``import`` statement counts as an edge, wherever it stands: at module level, under
``if TYPE_CHECKING:`` or inside a function. A lazy import hides a circle from Python's import machinery,
not from the reader, so it is no way out of one. ``from a.b import c`` is an edge to the module ``a.b.c``
when that is a module of the tree, else to ``a.b``. Imports of modules outside the tree (torch, numpy)
are kept apart in :attr:`ImportGraph.external`.

A *room* is a module's first two dotted components: ``motion_vqvae.training.loop`` lives in the room
``motion_vqvae.training``, ``motion_vqvae.agent`` is a room of its own, ``sim2real`` (its ``__init__``)
is one. Cycles are reported between files and between rooms (an import between two files of one room is
no arrow between rooms).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    """``root/a/b/c.py`` -> ``a.b.c``; a package's ``__init__.py`` is the package itself."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """The room a module lives in: its first two dotted components."""
    return ".".join(module.split(".")[:2])


@dataclass
class ImportGraph:
    """Edges between the modules of some top-level folders of one tree."""

    files: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=dict)
    external: dict[str, set[str]] = field(default_factory=dict)  # module -> top-level names outside the tree

    @classmethod
    def read(cls, root: Path, tops: Iterable[str]) -> ImportGraph:
        """Every ``.py`` file under ``root/TOP`` for each top, and what each imports."""
        files = {module_name(root, p): p for top in tops for p in sorted((root / top).rglob("*.py"))}
        graph = cls(files)
        for module, path in files.items():
            graph.edges[module], graph.external[module] = graph._imports_of(module, path)
        return graph

    def _resolve(self, name: str) -> str | None:
        """The module of the tree that importing ``name`` loads: ``name`` itself or its longest parent."""
        while name and name not in self.files:
            name = name.rpartition(".")[0]
        return name or None

    def _imports_of(self, module: str, path: Path) -> tuple[set[str], set[str]]:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        inside: set[str] = set()
        outside: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: one level is the file's own package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in self.files else base for a in node.names]
            else:
                continue
            for name in names:
                target = self._resolve(name)
                if target is None:
                    outside.add(name.partition(".")[0])
                elif target != module:
                    inside.add(target)
        return inside, outside

    def room_edges(self) -> dict[str, set[str]]:
        """Arrows between rooms: one wherever a file of one room imports a file of another."""
        arrows: dict[str, set[str]] = {room(m): set() for m in self.files}
        for module, targets in self.edges.items():
            arrows[room(module)] |= {room(t) for t in targets if room(t) != room(module)}
        return arrows


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def describe(component: frozenset[str], edges: dict[str, set[str]]) -> str:
    """The shortest circle through the component's first member, as ``a -> b -> a``, so a failure says
    which imports to look at."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    for node in queue:  # breadth first: the first way back to ``start`` is a shortest one
        for child in sorted(edges[node] & component):
            if child == start:
                return " -> ".join([*paths[node], start])
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    raise AssertionError(f"{sorted(component)} is no strongly connected component")
