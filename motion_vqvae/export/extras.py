"""Sections that other rooms add to a tokenizer's export: the prior's graphs, the tracker's policy.

The export room writes the tokenizer's files and publishes the folder atomically; what a prior or a tracker
adds is written by their own rooms, which sit above this one (they build on the tokenizer and on
:func:`motion_vqvae.export.graph.export_graph`). Passing an :class:`ExportExtra` in keeps the arrows
pointing down: the export room never imports the prior or the tracker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExportExtra:
    """One manifest section and its files, written into the export being built."""

    section: str
    """the manifest key (``prior``, ``tracker``)"""
    source: Path
    """the checkpoint it reads, which ``--out`` must stay apart from"""
    write: Callable[[Path, Path], dict[str, Any]]
    """(tokenizer checkpoint, folder being built) -> the manifest section, its ``files`` listed"""
    onnx_props: Callable[[dict[str, Any]], dict[str, dict[str, str]]] | None = None
    """the section -> extra ONNX ``metadata_props`` per file name (what a torch-free reader needs)"""
