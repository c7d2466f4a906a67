"""benchmarks/README.md's tables are what benchmarks/tables.py makes of the committed JSON files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import tables  # noqa: E402


def test_committed_readme_matches_the_json() -> None:
    text = tables.README.read_text()
    assert {m["name"] for m in tables.SECTION.finditer(text)} == set(tables.TABLES)
    assert tables.render(text) == text, "benchmarks/README.md is stale: run python benchmarks/tables.py"
    assert tables.main(["--check"]) == 0


def test_a_stale_table_is_detected_and_rewritten(tmp_path: Path, monkeypatch) -> None:
    stale = tables.README.read_text().replace("| vq | 64 | 53.7 |", "| vq | 64 | 99.9 |")
    assert stale != tables.README.read_text()
    monkeypatch.setattr(tables, "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text(stale)
    assert tables.main(["--check"]) == 1
    assert tables.main([]) == 0
    assert "| vq | 64 | 53.7 |" in (tmp_path / "README.md").read_text()


def test_an_unknown_table_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        tables.render("<!-- table: nope -->\n<!-- /table -->")
