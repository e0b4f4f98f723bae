"""Question: which self-check decision rule (`Z:MIN_GAIN`: the lowest floor whose expected gain
less Z spreads exceeds MIN_GAIN) harms no validation draw and repairs the most, given the
calibration files research/harm_rate.py wrote?

    python research/rule_sweep.py runs/cal_wide_rivers.json runs/cal_val_rivers.json ...
        [--rules 0:0.002 1:0.002 1.5:0.002 2:0.002]

Each calibration row holds, per candidate floor, the check's expected gain and spread and the
clDice gain measured on the protocol's own cuts (`harm_rate.py --calibration`), so any rule can
be replayed without running the model again: per file and rule, the draws harmed (clDice
lowered; harm_rate.py's tables also count pieces added, which the keep policy's bridges never
are), the draws repaired (a floor kept), the mean and smallest gain, and the harmed draws.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from distpaint.infer.self_check import NO_REPAIR, choose_floor

DEFAULT_RULES = ["0:0.002", "0.5:0.002", "1:0.002", "1.5:0.002", "2:0.002", "3:0.002",
                 "0:0.004", "1:0.004"]


def replay(rows: list[dict], z: float, min_gain: float) -> list[tuple[str, float, float]]:
    """(draw, floor chosen, clDice gain measured there) of each calibration row under the rule
    (z, min_gain); NO_REPAIR gains 0."""
    replayed = []
    for row in rows:
        cells = {float(f): c for f, c in row["floors"].items()}
        floor = choose_floor({f: c["expected"] for f, c in cells.items()},
                             {f: c["spread"] for f, c in cells.items()}, z, min_gain)
        replayed.append((row["mask"], floor, 0.0 if floor == NO_REPAIR else cells[floor]["measured"]))
    return replayed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("calibrations", nargs="+", type=Path)
    parser.add_argument("--rules", nargs="+", default=DEFAULT_RULES)
    args = parser.parse_args(argv)
    console = Console()
    for path in args.calibrations:
        rows = json.loads(path.read_text())
        table = Table(title=f"{path}: {len(rows)} draws")
        for head in ("rule z:MIN_GAIN", "harmed", "repaired", "mean gain", "smallest gain", "harmed draws"):
            table.add_column(head, justify="left" if head in ("rule z:MIN_GAIN", "harmed draws") else "right")
        for rule in args.rules:
            z, _, min_gain = rule.partition(":")
            replayed = replay(rows, float(z), float(min_gain or 0.0))
            gains = np.array([g for _, _, g in replayed])
            harmed = [f"{m} {g:+.4f} ({f:g})" for m, f, g in replayed if g < 0]
            table.add_row(rule, f"{len(harmed)}/{len(rows)}", str(sum(f != NO_REPAIR for _, f, _ in replayed)),
                          f"{gains.mean():+.4f}", f"{gains.min():+.4f}", ", ".join(harmed))
        console.print(table)


if __name__ == "__main__":
    main()
