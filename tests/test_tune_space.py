"""Search spaces and sweep reports without Ray: the shipped spaces parse against every shipped
recipe, a broken space fails with its file and key before anything starts (library and CLI),
sampled values become the trial's config, and the table / plot / best config are written.

Run: .venv/bin/python -m pytest tests/test_tune_space.py -q
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from distpaint.errors import ConfigError
from distpaint.train.config import config_to_dict, load_config, packaged_config
from distpaint.tune.report import TrialOutcome, plot_metric, summary_rows, write_best_config, write_table
from distpaint.tune.space import load_space
from distpaint.tune.sweep import SweepConfig, _pool_shared, _resolve_val, run_sweep

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "tune_spaces").glob("*.yaml"))
RECIPES = ("tiny", "cpu_small", "paper", "paper_faithful", "roads")


@pytest.fixture(scope="module")
def tiny():
    return load_config(packaged_config("tiny"))


def _space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_spaces_are_the_planned_ones():
    assert [p.name for p in SPACES] == ["cldice.yaml", "full.yaml", "lambdas.yaml", "learning_rates.yaml"]


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("space", SPACES, ids=lambda p: p.stem)
def test_shipped_spaces_validate_against_shipped_recipes(space, recipe):
    s = load_space(space, load_config(packaged_config(recipe)))
    assert s.params and s.description
    domains = s.to_tune()
    assert list(domains) == s.paths


def test_shipped_spaces_cover_the_issue(tiny):
    lam = load_space(ROOT / "tune_spaces" / "lambdas.yaml", tiny)
    assert {p.path: (p.kind, p.args) for p in lam.params} == {
        "loss.lambda_ce": ("loguniform", (100.0, 10000.0)),
        "loss.lambda_local": ("loguniform", (0.1, 10.0)),
        "loss.lambda_global": ("loguniform", (0.1, 10.0)),
    }  # log scales around the paper's 1000 / 1 / 1
    lr = load_space(ROOT / "tune_spaces" / "learning_rates.yaml", tiny)
    for p, paper in zip(lr.params, (2e-4, 4e-4)):
        assert p.kind == "loguniform" and p.args[0] < paper < p.args[1]
    full = load_space(ROOT / "tune_spaces" / "full.yaml", tiny)
    assert set(full.paths) == set(lam.paths) | set(lr.paths) | {"loss.baseline", "data.gaps.mix_kinds"}


# ---- broken spaces: a ConfigError naming the file and the key ------------------------------------
BROKEN = [
    ("parameters:\n  loss.lamda_ce: {loguniform: [100, 1000]}\n", "parameters.loss.lamda_ce",
     "did you mean 'loss.lambda_ce'"),
    ("parameters:\n  losses.lambda_ce: {uniform: [1, 2]}\n", "parameters.losses.lambda_ce", "unknown parameter"),
    ("parameters:\n  optim.lr_g: {logunifrom: [1e-4, 1e-3]}\n", "parameters.optim.lr_g", "did you mean 'loguniform'"),
    ("parameters:\n  optim.lr_g: {loguniform: [1e-3, 1e-4]}\n", "parameters.optim.lr_g.loguniform", "must be < high"),
    ("parameters:\n  optim.lr_g: {loguniform: [0, 1e-3]}\n", "parameters.optim.lr_g.loguniform", "must be > 0"),
    ("parameters:\n  optim.lr_g: {uniform: [1e-4]}\n", "parameters.optim.lr_g.uniform", "give [low, high]"),
    ("parameters:\n  optim.lr_g: {uniform: [abc, 1]}\n", "parameters.optim.lr_g", "finite number"),
    ("parameters:\n  optim.lr_g: {uniform: [-1.0, 1.0]}\n", "parameters.optim.lr_g = -1.0", "must be positive"),
    ("parameters:\n  data.batch_size: {uniform: [2, 6]}\n", "parameters.data.batch_size", "integer field takes randint"),
    ("parameters:\n  data.batch_size: {randint: [2.5, 6]}\n", "parameters.data.batch_size", "must be an integer"),
    ("parameters:\n  data.batch_size: {randint: [6, 2]}\n", "parameters.data.batch_size.randint", "low 6 > high 2"),
    ("parameters:\n  data.batch_size: {randint: [1, 200]}\n", "parameters.data.batch_size = 200", "fewer than data.batch_size"),
    ("parameters:\n  loss.baseline: {uniform: [0, 1]}\n", "parameters.loss.baseline", "str field takes choice or grid"),
    ("parameters:\n  loss.baseline: {choice: [ema, critic]}\n", "parameters.loss.baseline = 'critic'", "must be one of"),
    ("parameters:\n  loss.baseline: {choice: [ema, ema]}\n", "parameters.loss.baseline.choice", "listed twice"),
    ("parameters:\n  loss.baseline: {choice: []}\n", "parameters.loss.baseline.choice", "non-empty list"),
    ("parameters:\n  data.gaps.mix_kinds: {choice: [[square, holes]]}\n", "parameters.data.gaps.mix_kinds",
     "mix_kinds must be a non-empty subset"),
    ("parameters:\n  data.gaps.densty: {uniform: [0.5, 2]}\n", "parameters.data.gaps.densty", "did you mean 'data.gaps.density'"),
    ("parameters:\n  data.gaps.density: {uniform: [-1, 2]}\n", "parameters.data.gaps.density = -1.0", "density"),
    ("parameters:\n  max_steps: {randint: [10, 20]}\n", "parameters.max_steps", "set by the sweep"),
    ("parameters:\n  loss: {choice: [{}]}\n", "parameters.loss", "a whole section cannot be searched"),
    ("parameters:\n  seed.x: {randint: [0, 3]}\n", "parameters.seed.x", "seed is not a section"),
    ("parameters:\n  data.gaps: {choice: [{kind: mix}]}\n  data.gaps.density: {uniform: [1, 2]}\n",
     "parameters.data.gaps.density overlaps parameters.data.gaps", "search one of them"),
    ("parameters:\n  optim.lr_g: loguniform\n", "parameters.optim.lr_g", "exactly one distribution"),
    ("parameters:\n  optim.lr_g: {uniform: [1, 2], choice: [1]}\n", "parameters.optim.lr_g", "exactly one distribution"),
    ("parameters: {}\n", "'parameters' must be a non-empty mapping", ""),
    ("paramters:\n  optim.lr_g: {uniform: [1, 2]}\n", "unknown top-level key 'paramters'", "did you mean 'parameters'"),
    ("parameters:\n  optim.lr_g: {uniform: [1e-4, 1e-3]}\n  optim.lr_g: {uniform: [1e-4, 1e-3]}\n",
     "duplicate key 'optim.lr_g'", "line 3"),
    ("parameters: [optim.lr_g]\n", "'parameters' must be a non-empty mapping", ""),
    ("parameters:\n  optim.lr_g: {uniform: [1, 2]\n", "not valid YAML", ""),
    ("- just a list\n", "the top level must be a mapping", ""),
]


@pytest.mark.parametrize("text, key, message", BROKEN, ids=[b[1][:40] for b in BROKEN])
def test_broken_space_names_file_and_key(tmp_path, tiny, text, key, message):
    path = _space(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_space(path, tiny)
    assert str(err.value).startswith(f"{path}: "), err.value
    assert key in str(err.value) and message in str(err.value), err.value


def test_missing_space_file(tmp_path, tiny):
    with pytest.raises(ConfigError, match="cannot read search space"):
        load_space(tmp_path / "nope.yaml", tiny)


def test_broken_space_fails_fast_before_ray(tmp_path, tiny, monkeypatch):
    """run_sweep refuses a bad space (and bad options) before Ray starts or any file is written."""
    import ray

    # Another test may have left the session's Ray running, so "not initialised" cannot be the
    # check: any attempt to start or join Ray fails the test instead.
    def no_ray(*args, **kwargs):
        raise AssertionError("run_sweep reached ray.init before refusing the bad input")

    monkeypatch.setattr(ray, "init", no_ray)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    bad = _space(tmp_path, "parameters:\n  loss.lambda_cee: {loguniform: [100, 1000]}\n")
    storage = tmp_path / "sweeps"
    with pytest.raises(ConfigError, match="parameters.loss.lambda_cee.*did you mean 'loss.lambda_ce'"):
        run_sweep(bad, tiny, SweepConfig(num_samples=3, max_steps=4, storage=str(storage), name="x"))
    grid = _space(tmp_path, "parameters:\n  seed: {grid: [0, 1]}\n")
    with pytest.raises(ConfigError, match=r"parameters.seed: grid needs --search random"):
        run_sweep(grid, tiny, SweepConfig(search="optuna", max_steps=4, storage=str(storage), name="x"))
    ok = ROOT / "tune_spaces" / "lambdas.yaml"
    with pytest.raises(ConfigError, match="--report-every 8 .* must be <= --max-steps 4"):
        run_sweep(ok, tiny, SweepConfig(max_steps=4, report_every=8, storage=str(storage), name="x"))
    assert not storage.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"num_samples": 0}, "--num-samples must be >= 1"),
    ({"scheduler": "hyperband"}, "--scheduler must be asha or fifo"),
    ({"search": "bayes"}, "--search must be random or optuna"),
    ({"metric": "val/iou"}, "--metric must be one of"),
    ({"mode": "up"}, "--mode must be max or min"),
    ({"gpus_per_trial": 2, "workers_per_trial": 1}, "a worker drives at most one GPU"),
    ({"cpus_per_worker": 1.5}, "a fraction below 1 or a whole number"),
    ({"reduction_factor": 1}, "--reduction-factor must be > 1"),
    ({"name": "a/b"}, "a plain directory name"),
])
def test_bad_sweep_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SweepConfig(**kwargs)


def test_metric_sets_the_mode():
    assert SweepConfig().mode == "max"
    assert SweepConfig(metric="val/mse_gaps").mode == "min"


def test_cli_broken_space_is_one_line_exit_2(tmp_path):
    path = _space(tmp_path, "parameters:\n  optim.lr_d: {loguniform: [4e-4, 1e-4]}\n")
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "distpaint"), "tune", "--space", str(path), "--config", "tiny",
                           "--num-samples", "3", "--max-steps", "4", "--storage", str(tmp_path / "sweeps")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: parameters.optim.lr_d.loguniform: low 0.0004 must be < high 0.0001"]
    assert not (tmp_path / "sweeps").exists()


# ---- sampled values -> the trial's config ------------------------------------------------------
def test_trial_values_become_the_config(tmp_path, tiny):
    path = _space(tmp_path, """
        parameters:
          loss.lambda_ce: {loguniform: [100, 10000]}
          data.batch_size: {randint: [2, 4]}
          loss.baseline: {choice: [none, self_critical]}
          data.gaps.mix_kinds: {choice: [[square, brush, blob], [skeleton]]}
          model.generator_args.norm: {choice: [batch, instance]}
          seed: {grid: [3, 4]}
        """)
    space = load_space(path, tiny)
    domains = space.to_tune()
    # randint is inclusive (Tune's upper bound is exclusive): 2, 3 and 4 are all drawn
    rng = np.random.default_rng(0)
    drawn = {int(v) for v in domains["data.batch_size"].sample(size=200, random_state=rng)}
    assert drawn == {2, 3, 4}
    # Optuna holds scalars only: list choices travel as JSON text and come back as lists
    encoded = domains["data.gaps.mix_kinds"].categories
    assert all(isinstance(c, str) for c in encoded)
    values = {"loss.lambda_ce": np.float64(512.5), "data.batch_size": np.int64(3), "loss.baseline": "self_critical",
              "data.gaps.mix_kinds": encoded[1], "model.generator_args.norm": "instance", "seed": 4}
    cfg = space.apply(tiny, values)
    assert cfg.loss.lambda_ce == 512.5 and type(cfg.loss.lambda_ce) is float
    assert cfg.data.batch_size == 3 and type(cfg.data.batch_size) is int
    assert cfg.loss.baseline == "self_critical" and cfg.seed == 4
    assert cfg.data.gaps == {"kind": "mix", "mix_kinds": ["skeleton"]}  # the base's gap kind kept
    assert cfg.model.generator_args == {"norm": "instance"}
    rest = config_to_dict(cfg)
    base = config_to_dict(tiny)
    for section in ("optim",):
        assert rest[section] == base[section]
    with pytest.raises(ConfigError, match="lacks"):
        space.apply(tiny, {"loss.lambda_ce": 100.0})


def test_pool_is_shared_unless_a_searched_path_changes_the_masks(tmp_path, tiny):
    assert _pool_shared(load_space(ROOT / "tune_spaces" / "full.yaml", tiny))
    seeds = load_space(_space(tmp_path, "parameters:\n  seed: {grid: [0, 1]}\n"), tiny)
    assert not _pool_shared(seeds)
    n = load_space(_space(tmp_path, "parameters:\n  data.n_masks: {randint: [4, 6]}\n"), tiny)
    assert not _pool_shared(n)


def test_val_data_accepts_a_benchmark_set_and_refuses_other_folders(tmp_path):
    from distpaint.data.benchset import BenchsetConfig, make_benchset
    from distpaint.errors import InputError

    make_benchset(tmp_path / "bench", BenchsetConfig.small(seed=5, kinds=("roots",)), log=lambda _: None)
    assert _resolve_val(str(tmp_path / "bench")) == str((tmp_path / "bench" / "patch").resolve())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a validation set"):
        _resolve_val(str(tmp_path / "empty"))


# ---- reports -----------------------------------------------------------------------------------
def _outcomes() -> list[TrialOutcome]:
    def hist(*vals):
        return [{"step": 2 * (i + 1), "val/rel_component_diff": v} for i, v in enumerate(vals)]

    return [
        TrialOutcome("t0", {"loss.lambda_ce": 100.0, "loss.baseline": "ema"},
                     {"step": 8, "val/rel_component_diff": 0.2, "val/cldice": 0.7, "checkpoint_path": "/c/0"},
                     hist(0.1, 0.3, 0.25, 0.2)),
        TrialOutcome("t1", {"loss.lambda_ce": 3000.0, "loss.baseline": "none"},
                     {"step": 4, "val/rel_component_diff": -0.5, "checkpoint_path": "/c/1"}, hist(0.0, -0.5)),
        TrialOutcome("t2", {"loss.lambda_ce": 900.0, "loss.baseline": "ema"},
                     {"step": 8, "val/rel_component_diff": 0.4, "checkpoint_path": "/c/2"}, hist(0.1, 0.2, 0.3, 0.4)),
        TrialOutcome("t3", {"loss.lambda_ce": 500.0, "loss.baseline": "none"}, {}, [], error="RuntimeError: boom"),
    ]


def test_summary_rows_rank_and_label(tmp_path, tiny):
    space = load_space(_space(tmp_path, """
        parameters:
          loss.lambda_ce: {loguniform: [100, 10000]}
          loss.baseline: {choice: [none, ema]}
        """), tiny)
    rows = summary_rows(_outcomes(), space, "val/rel_component_diff", "max", max_steps=8)
    assert [r["trial"] for r in rows] == ["t2", "t0", "t1", "t3"]
    assert [r["status"] for r in rows] == ["completed", "completed", "stopped early", "error"]
    assert rows[1]["best val/rel_component_diff"] == 0.3 and rows[1]["val/rel_component_diff"] == 0.2
    assert rows[0]["checkpoint"] == "/c/2" and rows[0]["loss.lambda_ce"] == "900"
    low = summary_rows(_outcomes(), space, "val/rel_component_diff", "min", max_steps=8)
    assert [r["trial"] for r in low] == ["t1", "t0", "t2", "t3"]
    csv_path, md_path = write_table(rows, tmp_path / "out")
    assert csv_path.read_text().splitlines()[0].startswith("trial,loss.lambda_ce,loss.baseline,val/rel_component_diff")
    assert len(md_path.read_text().splitlines()) == 2 + 4
    png = plot_metric(rows, space, "val/rel_component_diff", tmp_path / "out" / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_best_config_reads_back_as_a_recipe(tmp_path, tiny):
    space = load_space(ROOT / "tune_spaces" / "full.yaml", tiny)
    values = {"loss.lambda_ce": 250.0, "loss.lambda_local": 0.5, "loss.lambda_global": 2.0, "optim.lr_g": 1e-4,
              "optim.lr_d": 3e-4, "loss.baseline": "none", "data.gaps.mix_kinds": '["blob", "brush", "square"]'}
    cfg = space.apply(tiny, values)
    path = write_best_config(cfg, tmp_path / "best.yaml", "Best trial x\nsearched: ...")
    text = path.read_text()
    assert text.startswith("# Best trial x\n# searched: ...\n")
    again = load_config(path)
    assert config_to_dict(again) == config_to_dict(cfg)
    assert again.optim.lr_g == 1e-4 and again.data.gaps["mix_kinds"] == ["blob", "brush", "square"]
