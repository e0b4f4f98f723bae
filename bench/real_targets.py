"""Check the real-mask targets on a `bench/quality.py --real` result: do no harm, and repair.

    python bench/real_targets.py runs/quality/real/quality.json [--level test] \\
        [--roads-model roads] [--general-model general] [--json]

Roads (kind `roads`, method --roads-model, default options): skeleton recall in the gaps
>= 0.90, false fill <= 0.15 and relative component difference >= 0.9 (means over the masks);
on EVERY mask clDice at least 0.01 above the damaged input's, no component added and no input
pixel removed. The independent judging protocol (shared/JUDGING.md) asks less of roads
(recall >= 0.85, false fill <= 0.2, clDice gain >= 0.005); both are printed.
Other kinds (`rivers`, `drawings`, `trees`, method --general-model): no harm on every mask
(clDice not below the input's, no component added, no input pixel removed), and relative
component difference and skeleton recall in the gaps above both closing's and linking's
(means).
Prints one PASS/FAIL line per check with the figures and a count; exit status 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

ROADS = {"skeleton_recall_gaps": (">=", 0.90), "false_fill": ("<=", 0.15),
         "rel_component_diff": (">=", 0.9)}
ROADS_JUDGE = {"skeleton_recall_gaps": (">=", 0.85), "false_fill": ("<=", 0.20),
               "rel_component_diff": (">=", 0.9)}
PER_MASK_GAIN = {"issue": 0.01, "judge": 0.005}


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _ok(value: float, op: str, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


def _samples(doc: dict, level: str, kind: str, method: str) -> dict[str, dict]:
    try:
        return doc["results"][level][kind][method]["samples"]
    except KeyError:
        return {}


def check(doc: dict, level: str, roads_model: str, general_model: str) -> list[dict]:
    """Every check as {check, kind, passed, detail}."""
    out = []
    samples = _samples(doc, level, "roads", roads_model)
    if samples:
        for name, targets in (("issue", ROADS), ("judge", ROADS_JUDGE)):
            for metric, (op, bound) in targets.items():
                value = _mean([s.get(metric) for s in samples.values()])
                out.append({"check": f"{name}: {metric} {op} {bound}", "kind": "roads",
                            "passed": _ok(value, op, bound), "detail": f"{value:.4f}"})
            gains = {n: s["cldice_gain"] for n, s in samples.items()}
            worst = min(gains, key=gains.get)
            out.append({"check": f"{name}: clDice gain >= {PER_MASK_GAIN[name]} on every mask",
                        "kind": "roads", "passed": gains[worst] >= PER_MASK_GAIN[name],
                        "detail": f"min {gains[worst]:.4f} ({worst}), mean {_mean(list(gains.values())):.4f}"})
        added = max(s["components_added"] for s in samples.values())
        removed = max(s["input_removed"] for s in samples.values())
        out.append({"check": "components never increased", "kind": "roads", "passed": added <= 0,
                    "detail": f"most added {added:+.0f}"})
        out.append({"check": "no input pixel removed", "kind": "roads", "passed": removed == 0,
                    "detail": f"most removed {removed:.0f}"})
    for kind in ("rivers", "drawings", "trees"):
        samples = _samples(doc, level, kind, general_model)
        if not samples:
            continue
        harmed = [n for n, s in samples.items() if s["no_harm"] < 1]
        out.append({"check": "no harm on every mask", "kind": kind, "passed": not harmed,
                    "detail": f"{len(samples) - len(harmed)}/{len(samples)}"
                              + (f"; harmed: {', '.join(harmed[:4])}" if harmed else "")})
        for metric in ("rel_component_diff", "skeleton_recall_gaps"):
            mine = _mean([s.get(metric) for s in samples.values()])
            for rival in ("closing", "linking"):
                theirs = _mean([s.get(metric) for s in _samples(doc, level, kind, rival).values()])
                out.append({"check": f"{metric} above {rival}", "kind": kind,
                            "passed": mine > theirs, "detail": f"{mine:.4f} vs {theirs:.4f}"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="quality.json of bench/quality.py --real (OUT/real/)")
    parser.add_argument("--level", default="test", help="val or test (default test)")
    parser.add_argument("--roads-model", default="roads")
    parser.add_argument("--general-model", default="general")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with open(args.result) as fh:
        doc = json.load(fh)
    checks = check(doc, args.level, args.roads_model, args.general_model)
    if not checks:
        print(f"{args.result}: nothing to check at level {args.level} for "
              f"{args.roads_model} / {args.general_model}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(checks))
    else:
        for c in checks:
            print(f"{'PASS' if c['passed'] else 'FAIL'}  {c['kind']:<9} {c['check']:<52} {c['detail']}")
        print(f"{sum(c['passed'] for c in checks)} of {len(checks)} checks pass")
    return 0 if all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
