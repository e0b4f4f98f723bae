"""`distpaint demo`: the data pipeline end to end on embedded defaults, with a report.

Synthesises a small road archive into a Zarr mask store, corrupts it with `mix` gaps, repairs
it with every method (today the classical baselines, closing and linking; the trained model
joins them as one more `Method` once the main job exists), evaluates each against the truth,
and writes a report folder: metrics as Markdown and JSON, before/after PNGs with the pixels a
method added in red. About 15 s on two cores with the defaults.

    distpaint demo [--out demo_out] [--size 2048] [--count 4] [--seed 0]

    from distpaint.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig(out="demo_out", size=512, count=2))
    print(result.report / "metrics.md")

Modules: `config` (DemoConfig), `outdir` (the output folder: never clobbers a folder the demo
did not write; re-runs replace the previous demo), `pipeline` (the stages and `Method`),
`report` (Markdown, JSON, PNGs). Tests: `.venv/bin/python -m pytest tests/test_demo.py`.
"""

from distpaint.demo.config import DEFAULT_OUT, DemoConfig
from distpaint.demo.pipeline import INPUT, DemoResult, Method, baseline_methods, run_demo

__all__ = ["DEFAULT_OUT", "INPUT", "DemoConfig", "DemoResult", "Method", "baseline_methods", "run_demo"]
