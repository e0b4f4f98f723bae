"""Check the method issue's quality targets on a bench/quality.py result, with paired t-tests.

    python bench/quality_targets.py runs/quality/quality.json [MORE.json ...] [--model gan-gl]
        [--against unet cnn closing linking] [--roads-model roads] [--alpha 0.01] [--json]

For every level (patch, whole) and kind: does MODEL beat each method of --against on relative
component difference (higher is better) and on MSE within the gaps (lower is better), by the
mean over the benchmark samples AND a paired two-tailed t-test with p < ALPHA; is MODEL's false
fill (added pixels outside any gap, as a fraction of the added pixels) below 10%; and on the
roads whole-mask set, does the shipped roads model reach relative component difference >= 0.95
and clDice >= 0.97. Prints one line per check (PASS/FAIL with the figures) and a count; with
--json, one JSON object. The per-sample values come from quality.json (bench/quality.py keeps
them), so the tests pair the same benchmark samples. Several files of the same benchmark set
(same digest; e.g. a model evaluated later) are merged, the first file's method winning a
name given twice.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

from distpaint.metrics.stats import paired_ttest

BETTER = {"rel_component_diff": "higher", "mse_gaps": "lower"}
"""The metrics the targets compare, and which direction is better."""
FALSE_FILL_MAX = 0.10
ROADS_WHOLE = {"rel_component_diff": 0.95, "cldice": 0.97}


def _values(cell: dict, metric: str) -> dict[str, float]:
    return {name: m.get(metric, math.nan) if m.get(metric) is not None else math.nan
            for name, m in cell["samples"].items()}


def check(doc: dict, model: str, against: list[str], roads_model: str | None, alpha: float) -> list[dict]:
    """Every check as {check, level, kind, passed, detail...}."""
    out = []
    for level, kinds in doc["results"].items():
        for kind, methods in kinds.items():
            if model not in methods:
                continue
            mine = methods[model]
            for other in against:
                if other not in methods:
                    continue
                for metric, direction in BETTER.items():
                    t = paired_ttest(metric, _values(mine, metric), _values(methods[other], metric))
                    better = t.mean_a > t.mean_b if direction == "higher" else t.mean_a < t.mean_b
                    passed = bool(better and not math.isnan(t.p) and t.p < alpha)
                    out.append({"check": f"{model} beats {other} on {metric}", "level": level, "kind": kind,
                                "passed": passed, model: round(t.mean_a, 4), other: round(t.mean_b, 4),
                                "p": t.p, "n": t.n})
            ff = mine["aggregate"].get("false_fill", {}).get("mean")
            out.append({"check": f"{model} false fill < {FALSE_FILL_MAX:.0%}", "level": level, "kind": kind,
                        "passed": ff is not None and ff < FALSE_FILL_MAX, "false_fill": ff})
    if roads_model:
        cell = doc["results"].get("whole", {}).get("roads", {}).get(roads_model)
        for metric, target in ROADS_WHOLE.items():
            value = cell["aggregate"].get(metric, {}).get("mean") if cell else None
            out.append({"check": f"{roads_model} whole-mask roads {metric} >= {target}", "level": "whole",
                        "kind": "roads", "passed": value is not None and value >= target, metric: value})
    return out


def load(paths: list[pathlib.Path]) -> dict:
    """The results of `paths` (bench/quality.py JSON files of one benchmark set) merged."""
    merged: dict | None = None
    for path in paths:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            sys.exit(f"{path}: not a readable bench/quality.py JSON file ({exc})")
        if "results" not in doc:
            sys.exit(f"{path}: no 'results' (write it with bench/quality.py, which keeps per-sample values)")
        if merged is None:
            merged, first = doc, path
            continue
        digest = (doc.get("benchset") or {}).get("digest")
        if digest != (merged.get("benchset") or {}).get("digest"):
            sys.exit(f"{path}: scored on another benchmark set than {first} (digest {digest}); "
                     "only results on the same samples can be paired")
        for level, kinds in doc["results"].items():
            for kind, methods in kinds.items():
                cell = merged["results"].setdefault(level, {}).setdefault(kind, {})
                for name, result in methods.items():
                    cell.setdefault(name, result)
        merged["methods"] = {**doc.get("methods", {}), **merged.get("methods", {})}
    assert merged is not None
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("quality", type=pathlib.Path, nargs="+",
                        help="quality.json written by bench/quality.py (several: merged)")
    parser.add_argument("--model", default="gan-gl")
    parser.add_argument("--against", nargs="+", default=["unet", "cnn", "closing", "linking"])
    parser.add_argument("--roads-model", default="roads", help="'' to skip the roads targets")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    doc = load(args.quality)
    checks = check(doc, args.model, args.against, args.roads_model or None, args.alpha)
    if not checks:
        sys.exit(f"{' '.join(map(str, args.quality))}: method {args.model!r} is not in it (methods: {doc.get('methods')})")
    if args.json:
        print(json.dumps({"alpha": args.alpha, "checks": checks,
                          "passed": sum(c["passed"] for c in checks), "total": len(checks)}, default=str))
        return
    for c in checks:
        detail = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in c.items() if k not in ("check", "level", "kind", "passed"))
        print(f"{'PASS' if c['passed'] else 'FAIL'}  {c['level']:5s} {c['kind']:8s} {c['check']}: {detail}")
    print(f"{sum(c['passed'] for c in checks)} of {len(checks)} checks pass (alpha {args.alpha})")


if __name__ == "__main__":
    main()
