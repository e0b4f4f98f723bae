"""`distpaint demo`: the whole system end to end on embedded defaults, with a report.

Synthesises a small road archive into a Zarr mask store and corrupts it with `mix` gaps (the
held-out masks); trains GAN-GL briefly on a local Ray (2 DDP workers, the re-composer actor,
MLflow in SQLite) on training masks of other seeds; repairs the held-out masks with the
classical baselines (closing, linking), the shipped roads model and the model it just trained;
evaluates each against the truth; and writes a report folder: metrics as Markdown and JSON,
before/after PNGs with the pixels a method added in red. Under 5 minutes on two cores.

    distpaint demo [--out demo_out] [--size 2048] [--count 4] [--seed 0] [--train-steps 150]
                   [--workers 2] [--model roads|none]

    from distpaint.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig(out="demo_out", size=512, count=2))
    print(result.report / "metrics.md")

Modules: `config` (DemoConfig), `outdir` (the output folder: never clobbers a folder the demo
did not write; re-runs replace the previous demo), `repairs` (`StoreRepair`: the baselines and
the models as repairs of a whole store), `models` (the demo's training run), `pipeline` (the
stages), `report` (Markdown, JSON, PNGs). Tests: `.venv/bin/python -m pytest tests/test_demo.py`.
"""

from distpaint.demo.config import DEFAULT_OUT, DemoConfig
from distpaint.demo.pipeline import INPUT, SHIPPED, TRAINED, DemoResult, run_demo
from distpaint.demo.repairs import StoreRepair, baseline_repairs, model_repair

__all__ = ["DEFAULT_OUT", "INPUT", "SHIPPED", "TRAINED", "DemoConfig", "DemoResult", "StoreRepair",
           "baseline_repairs", "model_repair", "run_demo"]
