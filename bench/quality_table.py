"""One markdown table from one or more quality reports: a row per method, a column group per kind.

`bench/quality.py` writes a report per run (OUT/real/quality.json); comparing models that were
scored in separate runs on the same benchmark set (e.g. the shipped `general` in one run, `roads`
in another) needs them side by side. Reports on different sets are refused (their digests
differ), so a table never mixes benchmarks. The README's quality table is printed by this script.

    python bench/quality_table.py runs/q-general/real/quality.json runs/q-roads/real/quality.json \
        --level test --methods closing linking roads general --rename general-thin=general-thin-synthetic

Each cell is `rel. comp. diff / skeleton recall in the gaps / no-harm share` (means over the
level's masks), the first two ↑ better, the share of masks whose clDice did not drop and whose
components did not increase ↑ better.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CELL_METRICS = ("rel_component_diff", "skeleton_recall_gaps")
"""Means shown in each cell, before the no-harm share."""


def load_reports(paths: list[Path]) -> list[dict]:
    """The reports, checked to be scored on one benchmark set (same digest)."""
    reports = [json.loads(p.read_text()) for p in paths]
    digests = {r["benchset"]["digest"] for r in reports}
    if len(digests) > 1:
        raise SystemExit(f"quality_table: the reports are on different benchmark sets ({sorted(digests)})")
    return reports


def merged_results(reports: list[dict], level: str) -> dict[str, dict[str, dict]]:
    """{kind: {method: result}} for one level; a method scored in several reports keeps its
    first report's result."""
    merged: dict[str, dict[str, dict]] = {}
    for report in reports:
        for kind, methods in report["results"].get(level, {}).items():
            for method, result in methods.items():
                merged.setdefault(kind, {}).setdefault(method, result)
    return merged


def cell(result: dict | None) -> str:
    if result is None:
        return "–"
    aggregate = result["aggregate"]
    values = [f"{aggregate[m]['mean']:.3f}" for m in CELL_METRICS if m in aggregate]
    no_harm = result.get("no_harm")  # {"share", "masks", "n"}: masks without harm of n
    if no_harm:
        values.append(f"{no_harm['masks']}/{no_harm['n']}")
    return " / ".join(values)


def table(merged: dict[str, dict[str, dict]], methods: list[str]) -> str:
    kinds = list(merged)
    lines = ["| method | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(cell(merged[k].get(method)) for k in kinds) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="quality.json files (bench/quality.py)")
    parser.add_argument("--level", default="test", help="benchmark level (default test)")
    parser.add_argument("--methods", nargs="+", help="rows, in order (default: every method)")
    parser.add_argument("--rename", nargs="+", default=[], metavar="OLD=NEW",
                        help="show a method under another name (a model renamed since it was scored)")
    args = parser.parse_args(argv)
    merged = merged_results(load_reports(args.reports), args.level)
    renames = dict(item.split("=", 1) for item in args.rename)
    merged = {kind: {renames.get(m, m): r for m, r in methods.items()} for kind, methods in merged.items()}
    methods = args.methods or list(dict.fromkeys(m for kind in merged.values() for m in kind))
    print(table(merged, methods))


if __name__ == "__main__":
    main()
