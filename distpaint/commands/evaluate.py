"""`distpaint evaluate` and `distpaint compare`: score repaired masks, compare two methods.

    distpaint evaluate --pred P --truth T [--input I] [--gaps M] [--json OUT]
    distpaint evaluate --pred-store PRED --truth-store REF [--sample NAME ...] [--json OUT]
    distpaint compare A.json B.json [--metric NAME ...]

P, T, I, M are mask files (.png, .tif, .npy, .zarr, or a node of a .zarr store such as
`corrupted.zarr/s1/gaps`) or store references `STORE::SAMPLE[::LAYER]` (layer default
`mask`). With --input (or --gaps) the relative improvements input -> pred are reported, and
the harm metrics (`distpaint.metrics.harm`: spurs, thickening, islands, erased input pixels,
the `no_harm` verdict; batch mode prints on how many samples no harm was done).

Batch mode evaluates every sample of the reference store REF (a corrupted store: layers
`mask` = input, `gaps`, `truth`; or a plain store: `mask` = truth) against the sample of the
same name in PRED (its `mask` layer), prints mean and standard deviation per metric and
writes per-sample values and the aggregate to --json. `compare` runs a paired two-tailed
t-test per metric on the samples two such files share.

Every metric is blind (predictions are never pasted into the gaps) and tiled, so masks of
tens of thousands of pixels on a side are evaluated in bounded memory.
"""

from __future__ import annotations

import pathlib
import time
from dataclasses import asdict
from typing import Any

import dask
import dask.array as da
import typer
from rich.console import Console

from distpaint.data.files import read_raw
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError
from distpaint.metrics.evaluation import EvalConfig, evaluate, evaluate_store, metric_info
from distpaint.metrics.report import (
    aggregate_table,
    build_payload,
    compare_table,
    metrics_table,
    read_samples,
    write_json,
)
from distpaint.metrics.stats import aggregate, compare_results

__all__ = ["compare", "evaluate_command", "read_mask", "register"]

_console = Console()


def read_mask(ref: str, option: str) -> tuple[Any, str]:
    """(lazy bool mask, sample name) for a file path or `STORE::SAMPLE[::LAYER]` reference.

    Non-bool files must hold two values {0, v} (foreground = v); anything else is an
    InputError naming `option` and the file."""
    try:
        return _read_mask(ref, option)
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None


def _read_mask(ref: str, option: str) -> tuple[Any, str]:
    if "::" in ref:
        parts = ref.split("::")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"{option} {ref!r}: expected STORE::SAMPLE or STORE::SAMPLE::LAYER")
        store = MaskStore.open(parts[0])
        return store.dask(parts[1], parts[2] if len(parts) == 3 else "mask"), parts[1]
    path = pathlib.Path(ref)
    raw, _ = read_raw(path)
    name = path.name if path.suffix.lower() == "" else path.stem
    return _binary(raw, str(path)), name


def _binary(raw: da.Array, what: str) -> da.Array:
    if raw.dtype == bool:
        return raw
    # the values must be 0 and one other value v (foreground), or a single value
    low, high = dask.compute(raw.min(), raw.max())
    ok = (low == 0 or low == high) and bool(((raw == low) | (raw == high)).all().compute())
    if not ok:
        raise InputError(f"{what}: not a binary mask (values between {low} and {high}); "
                         "threshold it to 0/1 first")
    return raw != 0


def _config(halo: int, tile: int | None, workers: int | None, fill_tolerance: int,
            traits: bool, harm_tolerance: int = EvalConfig.harm_tolerance) -> EvalConfig:
    return EvalConfig(halo=halo, fill_tolerance=fill_tolerance, traits=traits, tile=tile,
                      workers=workers, harm_tolerance=harm_tolerance)


def _single(pred: str, truth: str, inp: str | None, gaps: str | None, config: EvalConfig,
            json_out: pathlib.Path | None) -> None:
    p, name = read_mask(pred, "--pred")
    t, _ = read_mask(truth, "--truth")
    i = read_mask(inp, "--input")[0] if inp else None
    g = read_mask(gaps, "--gaps")[0] if gaps else None
    with _console.status("evaluating ..."):
        start = time.perf_counter()
        metrics = evaluate(p, t, i, g, config)
        seconds = time.perf_counter() - start
    _console.print(metrics_table(metrics, title=f"{pred} vs {truth} ({seconds:.1f} s)"))
    if json_out is not None:
        inputs = {"pred": pred, "truth": truth, "input": inp, "gaps": gaps}
        write_json(json_out, build_payload({name: metrics}, {name: seconds}, asdict(config),
                                           inputs))
        _console.print(f"wrote {json_out}")


def _batch(pred_store: str, truth_store: str, names: list[str] | None,
           config: EvalConfig, json_out: pathlib.Path | None) -> None:
    def progress(name: str, metrics: dict) -> None:
        harm = f", no_harm {metrics['no_harm']:.0f}" if "no_harm" in metrics else ""
        _console.print(f"{name}: pixel_diff {metrics['pixel_diff']}, cldice "
                       f"{metrics['cldice']:.4f}, component_diff {metrics['component_diff']}"
                       f"{harm}", highlight=False)

    result = evaluate_store(pred_store, truth_store, names, config, progress)
    summary = aggregate(result.samples)
    _console.print(aggregate_table(summary, title=f"{pred_store} vs {truth_store} "
                                                  f"(N = {len(result.samples)})"))
    if "no_harm" in summary and summary["no_harm"].n:
        s = summary["no_harm"]
        _console.print(f"no harm on {round(s.mean * s.n)} of {s.n} samples "
                       f"({100 * s.mean:.0f}%)", highlight=False)
    if json_out is not None:
        inputs = {"pred_store": str(pred_store), "truth_store": str(truth_store)}
        write_json(json_out, build_payload(result.samples, result.seconds, result.config,
                                           inputs))
        _console.print(f"wrote {json_out}")


def evaluate_command(
    pred: str | None = typer.Option(None, "--pred", help="Repaired mask: file or STORE::SAMPLE[::LAYER]."),
    truth: str | None = typer.Option(None, "--truth", help="Complete (ground-truth) mask."),
    input: str | None = typer.Option(None, "--input", help="Corrupted input mask: adds the relative improvements."),  # noqa: A002
    gaps: str | None = typer.Option(None, "--gaps", help="Gap mask M (default: truth & ~input)."),
    # str, not Path: stores may be URLs (s3://bucket/x.zarr), which Path would mangle
    pred_store: str | None = typer.Option(None, "--pred-store", help="Batch: store of repaired samples (a folder or a URL)."),
    truth_store: str | None = typer.Option(None, "--truth-store", help="Batch: reference store (corrupted: mask/gaps/truth; a folder or a URL)."),
    sample: list[str] | None = typer.Option(None, "--sample", help="Batch: only these samples (repeatable)."),
    json_out: pathlib.Path | None = typer.Option(None, "--json", help="Write every metric to this JSON file."),
    halo: int = typer.Option(EvalConfig.halo, help="Halo in px around tiles of large masks."),
    tile: int | None = typer.Option(None, help="Tile side in px (default: whole mask when small)."),
    workers: int | None = typer.Option(None, help="Threads (default: one per core)."),
    fill_tolerance: int = typer.Option(EvalConfig.fill_tolerance, help="Px around gaps where added pixels are not false fill."),
    harm_tolerance: int = typer.Option(EvalConfig.harm_tolerance, help="Px around gaps where added pixels are repair, not harm (spurs, thickening)."),
    traits: bool = typer.Option(True, "--traits/--no-traits", help="Compute root traits (length, tips, branches, hull)."),
) -> None:
    """Score a repaired mask (or a store of them) against the truth: pixel, topology, fill,
    harm and trait metrics, blind and tiled."""
    config = _config(halo, tile, workers, fill_tolerance, traits, harm_tolerance)
    single, batch = pred is not None or truth is not None, pred_store is not None or truth_store is not None
    if single == batch:
        raise ConfigError("give either --pred and --truth, or --pred-store and --truth-store")
    if single:
        if pred is None or truth is None:
            raise ConfigError("--pred and --truth are both required")
        if sample:
            raise ConfigError("--sample applies to batch mode (--pred-store/--truth-store)")
        _single(pred, truth, input, gaps, config, json_out)
    else:
        if pred_store is None or truth_store is None:
            raise ConfigError("--pred-store and --truth-store are both required")
        if input or gaps:
            raise ConfigError("--input/--gaps apply to single masks; in batch mode they come "
                              "from the reference store's mask/gaps layers")
        _batch(pred_store, truth_store, sample or None, config, json_out)


def compare(
    a: pathlib.Path = typer.Argument(..., help="Result JSON of method A (distpaint evaluate --json)."),
    b: pathlib.Path = typer.Argument(..., help="Result JSON of method B."),
    metric: list[str] | None = typer.Option(None, "--metric", help="Only these metrics (repeatable)."),
) -> None:
    """Paired two-tailed t-test per metric between two evaluation results, on shared samples."""
    samples_a, samples_b = read_samples(a), read_samples(b)
    shared = sorted(set(samples_a) & set(samples_b))
    if len(shared) < 2:
        raise InputError(f"{a} and {b} share {len(shared)} sample(s); a paired t-test needs at "
                         "least 2 (evaluate both methods on the same store)")
    if metric:
        for m in metric:
            metric_info(m)
            if not any(m in s for s in samples_a.values()) or not any(
                    m in s for s in samples_b.values()):
                raise ConfigError(f"--metric {m}: not in both result files")
    tests = compare_results({n: samples_a[n] for n in shared}, {n: samples_b[n] for n in shared},
                            metric or None)
    _console.print(compare_table(tests, str(a), str(b)))
    unmatched = len(set(samples_a) ^ set(samples_b))
    if unmatched:
        _console.print(f"[yellow]{unmatched} sample(s) present in only one file were skipped[/]")


def register(app: typer.Typer) -> None:
    """Add `evaluate` and `compare` to the distpaint CLI."""
    app.command("evaluate")(evaluate_command)
    app.command("compare")(compare)
