"""Regenerate the tables of benchmarks/README.md from the JSON files beside it.

    python benchmarks/tables.py            # rewrite the marked sections of benchmarks/README.md
    python benchmarks/tables.py --check    # exit 1 if the README differs from what the JSON gives

A table lives between ``<!-- table: NAME -->`` and ``<!-- /table -->``; everything else in the README is
narrative and left alone. The figures are written by ``scripts/benchmark.py`` into the JSON files, so a
table can never disagree with the measurement it reports: edit the JSON (rerun the benchmark), not the table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as a script, this folder is on sys.path but the checkout (home of the benchmarks package) is not.
sys.path.insert(0, str(HERE.parent))
README = HERE / "README.md"
SECTION = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def _load(name: str) -> dict[str, Any]:
    return json.loads((HERE / name).read_text())


def tokenizers_table() -> str:
    """Rate against distortion per tokenizer (tokenizers.json, written by --sections tokenizers)."""
    from benchmarks.rate_distortion import markdown_table

    return markdown_table(_load("tokenizers.json")["sections"]["tokenizers"])


def scale_table() -> str:
    """Preprocessing and training throughput and memory at scale (scale.json, --sections scale)."""
    from benchmarks.scale import markdown

    return markdown(_load("scale.json")["sections"]["scale"])


def prior_table() -> str:
    """The prior against n-gram baselines on held-out clips (prior.json, --sections prior)."""
    data = _load("prior.json")
    one, multi = data["sections"]["prior"], data["multilevel"]
    rows = [("one-level tokenizer, bits per token", one), ("default tokenizer, bits per time step", multi)]
    lines = [
        "| held-out clips | prior | prior with captions | bigram | unigram | uniform | completion minADE mm "
        "(prior, best of 8) | repeat last token | bigram |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, r in rows:
        cells = [
            r["nll_bits_per_token"],
            r["nll_bits_per_token_text"],
            r["bigram_bits_per_token"],
            r["unigram_bits_per_token"],
            r["uniform_bits_per_token"],
            r["completion_minade_mm"],
            r["completion_minade_repeat_mm"],
            r["completion_minade_bigram_mm"],
        ]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{c:.2f}" if i < 5 else f"{c:.1f}" for i, c in enumerate(cells))
            + " |"
        )
    return "\n".join(lines) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "tokenizers": tokenizers_table,
    "scale": scale_table,
    "prior": prior_table,
}


def render(text: str) -> str:
    """``text`` with every marked table replaced by what its JSON gives; an unknown name is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"{README}: unknown table {name!r}; known: {sorted(TABLES)}")
        return match.group(1) + TABLES[name]() + match.group(4)

    return SECTION.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the README is stale")
    args = parser.parse_args(argv)
    text = README.read_text()
    rendered = render(text)
    if args.check:
        if rendered != text:
            print(f"{README} is stale: run python benchmarks/tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(rendered)
    print(f"wrote {README}: {', '.join(m['name'] for m in SECTION.finditer(rendered))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
