"""bench/upsample.py: its smoke run times both factors on a thin-line mask that `auto` up-samples.

Run: .venv/bin/python -m pytest tests/test_bench_upsample.py -q
"""

from __future__ import annotations

import re

from scripts import load_script

bench = load_script("bench/upsample.py")


def test_smoke_run_times_both_factors_on_a_mask_auto_upsamples(capsys):
    bench.main(["--smoke-test"])
    out = capsys.readouterr().out
    assert re.search(r"mean line width [12]\.\d+ px, auto chooses 2", out), out
    assert re.search(r"upsample 1: [\d.]+ s .*\nupsample 2: [\d.]+ s", out), out
    assert re.search(r"time ratio upsample 2 / 1: \d+\.\d+", out), out
