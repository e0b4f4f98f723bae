"""Hyper-parameter sweeps on Ray Tune (`distpaint tune`).

- `space`: the YAML schema of search spaces (`tune_spaces/*.yaml`), validated before any trial;
- `trial`: the per-trial driver function that trains with the distributed trainer;
- `sweep`: `run_sweep`, the Tuner (ASHA/FIFO, random/Optuna), data, resume, results;
- `tracking`: MLflow parent run per sweep, child run per trial;
- `report`: summary table, metric-vs-parameter plot, best config.

    distpaint tune --space tune_spaces/lambdas.yaml --config cpu_small --num-samples 8 --max-steps 300

Importing this package imports nothing heavy; Ray and MLflow load in `sweep` and `tracking`.
"""
