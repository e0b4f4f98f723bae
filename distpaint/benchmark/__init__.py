"""The benchmark harness: run repair methods (baselines and trained models) on the benchmark
sets and score them with `distpaint.metrics`, as the paper's Table I.

It sits above inference (`distpaint.infer`) and the baselines (`distpaint.baselines`),
because it runs them; `distpaint.metrics` stays pure scores of masks. Modules: `methods` (the
registry of repair `Method`s: identity, closing, linking, and trained models through the
tiled inference engine), `quality` (`run_quality`: every method on every sample, patch and
whole-mask level, tables, t-tests, payload) and `figures` (colour-coded panels of repairs,
PNG). The command line is `python bench/quality.py`.

    from distpaint.benchmark.methods import resolve_methods
    from distpaint.benchmark.quality import QualityConfig, run_quality
    from distpaint.data.benchset import open_benchset
    result = run_quality(open_benchset("bench_data"), resolve_methods(["identity", "closing"]),
                         QualityConfig(ttest=("identity", "closing")))
"""
