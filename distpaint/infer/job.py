"""Inference jobs: repair one giant mask or a whole archive, resumably, locally or on Ray.

`run_job(inputs, model, out, infer, config)` is what `distpaint infer` runs:

1. plan: expand INPUT into units and their outputs (`distpaint.infer.sources`); refuse outputs
   that would overwrite an input, and existing outputs unless `overwrite`;
2. load the model once (`distpaint.infer.model`; its down-sampling factor and receptive field
   fix the tiling) and open the work folder (`distpaint.infer.manifest`): a job killed earlier
   with the same model and settings is resumed, shard by shard; one with other settings is
   refused, naming them, before anything is touched (`overwrite` discards its progress);
3. check every unit (readable, binary, not empty); one bad mask of an archive is reported and
   skipped, a single bad mask is an error;
4. compute the missing shards into staging Zarr arrays, in this process (`engine.run_inference`)
   or on Ray (`distpaint.infer.ray_runner`, `config.ray`); the manifest records each written
   shard;
5. finalise each unit whose shards are all done: the repaired mask and the added pixels in the
   input's format (GeoTIFF keeps its CRS and transform), or a sample renamed into the output
   store, plus the preview PNG; every output is written atomically (temporary, then rename).

The pixels of a shard depend only on the input, the model and the settings (batches never
straddle shards), so a resumed job, or one spread over Ray actors, writes the same bytes as an
uninterrupted local one.

    report = run_job(["masks/"], "runs/x/checkpoints/step_00001000", "out/", InferConfig(), JobConfig())
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import dask.array as da
import zarr
from zarr.storage import LocalStore

from distpaint.data import location
from distpaint.data.files import check_writable, read_mask_file, write_mask_file
from distpaint.data.integrity import record_shards
from distpaint.data.store import MaskStore, jsonable
from distpaint.errors import ConfigError, DistpaintError, InputError
from distpaint.infer.engine import (
    EmptyWindows,
    InferConfig,
    ShardCounts,
    make_grid,
    output_layout,
    run_inference,
)
from distpaint.infer.manifest import JOB_FORMAT, JobDir, ManifestWriter, UnitState
from distpaint.infer.model import (
    ModelSpec,
    PredictorsByFactor,
    load_predictor,
    model_fingerprint,
    with_options,
)
from distpaint.infer.preview import write_preview
from distpaint.infer.ray_runner import RayOptions, run_shards
from distpaint.infer.sources import Unit, plan_units, work_dir
from distpaint.infer.staging import UnitSpec, create_staging, open_source, open_staging
from distpaint.infer.self_check import SelfCheck, choose_min_confidence
from distpaint.infer.upsample import check_upsample, choose_upsample

__all__ = [
    "JobConfig",
    "UnitResult",
    "JobReport",
    "JobProgress",
    "ModelSpec",
    "load_predictor",
    "model_fingerprint",
    "run_job",
]
# ModelSpec, load_predictor and model_fingerprint live in distpaint.infer.model (shared with
# the Ray actors of distpaint.infer.ray_runner); re-exported here for callers of run_job.


@dataclass
class JobConfig:
    """How a job runs (what does not change the pixels, plus the output options)."""

    overwrite: bool = False
    """Replace outputs that exist (never an input), and discard the progress an interrupted
    job with other settings left for this output (without it such a retry is refused)."""
    ray: bool = False
    """Spread the shards over a Ray actor pool (RAY_ADDRESS's cluster, or a local one)."""
    gpu: bool = False
    """Run the model on a GPU with bf16 autocast (one GPU per Ray actor)."""
    workers: int | None = None
    """Ray actors; None: one per GPU with `gpu`, else one per `cpus_per_worker` CPUs."""
    cpus_per_worker: float = 1.0
    """CPUs (and torch threads) per Ray actor."""
    threads: int | None = None
    """Torch CPU threads of a local run (None: torch's default)."""
    shard: int = 4096
    """Side of the output shards, the unit of work, of resuming and of Ray tasks; rounded
    down to whole tiles (at least one tile)."""
    preview_size: int = 2048
    """Longest side of the preview PNG (larger masks are reduced by an integer factor)."""
    input_threshold: float | None = None
    """Binarise non-binary inputs: foreground = value > this (None: inputs must be binary)."""
    upsample: int | None = 1
    """Run the model at this many times each mask's resolution (`InferConfig.upsample`);
    None (`distpaint infer`'s default, `--upsample auto`): 2 for masks of thin lines, else 1,
    chosen per mask from its line width (`distpaint.infer.upsample.choose_upsample`). The
    factor used is in the output's attributes (`inference.upsample`)."""
    self_check: bool = False
    """`--min-confidence auto`: choose the confidence floor (`InferConfig.min_confidence`) per
    mask by repairing new cuts made in it (`distpaint.infer.self_check`). The floor chosen and
    the gains behind it are in the output's attributes (`inference.min_confidence`,
    `inference.self_check`)."""

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"--cpus-per-worker must be > 0, got {self.cpus_per_worker}")
        if self.shard < 1:
            raise ConfigError(f"shard must be >= 1, got {self.shard}")
        if self.preview_size < 16:
            raise ConfigError(f"--preview-size must be >= 16, got {self.preview_size}")
        if self.upsample is not None:
            check_upsample(self.upsample)


@dataclass
class UnitResult:
    """One repaired mask."""

    key: str
    """The input (path, or STORE/SAMPLE)."""
    outputs: list[str]
    """Paths written (mask, added, preview)."""
    shape: tuple[int, int]
    """(H, W)."""
    tiles: int = 0
    """Tiles of the mask."""
    predicted: int = 0
    """Tiles sent to the model (the others had no foreground in tile plus halo)."""
    input_pixels: int = 0
    """Foreground pixels of the input."""
    output_pixels: int = 0
    """Foreground pixels of the repaired mask."""
    added_pixels: int = 0
    """Pixels the model added."""
    resumed_shards: int = 0
    """Shards taken from an interrupted earlier run."""
    min_confidence: float | None = None
    """The confidence floor the self-check chose for this mask (`--min-confidence auto`; 1 =
    NO_REPAIR: the mask returned as it came, no tile run), None without `auto`."""

    @classmethod
    def from_counts(cls, unit: Unit, shape: tuple[int, int],
                    shards: dict[Any, ShardCounts], resumed: int) -> UnitResult:
        total = ShardCounts()
        for counts in shards.values():
            for name in ("tiles", "predicted", "input_pixels", "output_pixels", "added_pixels"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
        return cls(unit.key, [str(p) for p in unit.outputs], tuple(shape), total.tiles,
                   total.predicted, total.input_pixels, total.output_pixels,
                   total.added_pixels, resumed)


@dataclass
class JobReport:
    """What `run_job` did."""

    done: list[UnitResult] = field(default_factory=list)
    """Masks repaired (including those finished by an interrupted earlier run)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(input, error message) of masks reported and skipped."""
    seconds: float = 0.0
    """Wall time."""
    pixels: int = 0
    """Pixels computed by this run."""
    work_dir: str | None = None
    """The work folder when it was kept (some masks failed: re-run to retry them)."""


class JobProgress(Protocol):
    """Progress reporting: `start` once with the totals, then `advance` as tiles finish."""

    def start(self, tiles: int, pixels: int) -> None: ...

    def advance(self, tiles: int, pixels: int) -> None: ...


def _job_key(model_fp: str, infer: InferConfig, grid_halo: int, config: JobConfig) -> tuple[str, dict]:
    """Hash of everything that changes the output bytes."""
    description = {
        "format": JOB_FORMAT, "model": model_fp, "tile": infer.tile, "halo": grid_halo,
        "batch": infer.batch, "threshold": infer.threshold, "sample": infer.sample,
        "seed": infer.seed, "keep_input": infer.keep_input, "skip_empty": infer.skip_empty,
        "shard": config.shard, "preview_size": config.preview_size,
        "input_threshold": config.input_threshold,
        "upsample": "auto" if config.upsample is None else config.upsample,
    }
    if (infer.views, infer.passes) != (1, 1):
        # only when used, so that jobs interrupted before these options existed still resume
        description.update(views=infer.views, passes=infer.passes)
    for option in ("drop_islands", "bridges_only"):  # likewise: only when used
        if getattr(infer, option):
            description[option] = True
    if infer.keep != "all":
        description["keep"] = infer.keep
    if config.self_check:  # the floor is chosen per mask, deterministically in it
        description["min_confidence"] = "auto"
    elif infer.min_confidence > 0:  # only when used, as above
        description["min_confidence"] = infer.min_confidence
    key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]
    return key, description


# ---- units ---------------------------------------------------------------------------------
@dataclass
class _Prepared:
    """A unit checked and staged, with its progress."""

    unit: Unit
    spec: UnitSpec
    meta: dict
    """Metadata of the input file (format, values, georeferencing) for writing outputs."""
    source: Any
    """The input, read in this process (lazy)."""
    origins: list[tuple[int, int]]
    """Every shard origin of the mask."""
    state: UnitState
    tiles_per_shard: dict[tuple[int, int], int]
    infer: InferConfig
    """The job's InferConfig with this mask's up-sampling factor."""

    @property
    def missing(self) -> list[tuple[int, int]]:
        return [o for o in self.origins if o not in self.state.shards]


def _unit_uid(unit: Unit, fp: str) -> str:
    return hashlib.sha256(f"{unit.key}\0{fp}".encode()).hexdigest()[:20]


def _read_unit(unit: Unit, config: JobConfig) -> tuple[Any, dict]:
    """(lazy bool input, metadata) after checking the input is usable; InputError otherwise."""
    if unit.sample is not None:
        store = MaskStore.open(unit.path)
        array = store.array(unit.sample)
        attrs = store.attrs(unit.sample)
        if array.dtype != bool:
            raise InputError(f"{unit.key}: layer 'mask' is {array.dtype}, not a bool mask")
        foreground = attrs.get("foreground")
        if not isinstance(foreground, int):
            foreground = int(store.dask(unit.sample).sum().compute())
        if foreground == 0:
            raise InputError(f"{unit.key}: empty mask (every pixel is 0); nothing to repair")
        return array, attrs
    try:
        mask, meta = read_mask_file(unit.path, config.input_threshold)
    except InputError as exc:
        # files.py speaks of ingest's --threshold; here that is --input-threshold
        raise InputError(str(exc).replace("(--threshold T)", "(--input-threshold T)")
                         .replace("nothing to ingest", "nothing to repair")) from None
    return mask, meta


def _attrs_for(unit: Unit, meta: dict, model_label: str, infer: InferConfig,
               halo: int, check: SelfCheck | None = None) -> dict:
    """The output sample's attributes: the input's, plus how it was repaired."""
    how = {"model": model_label, "tile": infer.tile, "halo": halo, "keep_input": infer.keep_input,
           "skip_empty": infer.skip_empty, "upsample": infer.upsample, "source": unit.key}
    if check is not None:
        how.update(min_confidence=infer.min_confidence, self_check=check.as_attrs())
    how.update({"sample": True, "seed": infer.seed} if infer.sample else
               {"threshold": infer.threshold})
    return jsonable({**(meta if unit.sample is not None else {}), "inference": how})


def _recorded_check(staging: pathlib.Path) -> SelfCheck | None:
    """The self-check an interrupted attempt recorded in the unit's staging group, if any."""
    if not (staging / "zarr.json").is_file():
        return None
    try:
        record = zarr.open_group(LocalStore(staging), mode="r").attrs.asdict()["inference"]["self_check"]
        return SelfCheck.from_attrs(record)
    except (KeyError, TypeError, ValueError, OSError):  # a half-written group of a killed attempt,
        return None                                      # or one without a record: check again


def _prepare(unit: Unit, fp: str, state: UnitState, job: JobDir, predictors: PredictorsByFactor,
             config: JobConfig, model_label: str) -> _Prepared:
    source, meta = _read_unit(unit, config)
    shape = tuple(int(n) for n in source.shape)
    # deterministic in the input, so a resumed job chooses as the interrupted one did
    factor = config.upsample or choose_upsample(source)
    infer = predictors.infer_for(factor)
    uid = _unit_uid(unit, fp)
    check = None
    if config.self_check:
        # a resumed unit takes the floor its interrupted attempt chose and recorded: its shards
        # were written with it (the check is deterministic, but need not run twice, and a
        # distpaint upgraded in between must not mix two floors in one mask)
        check = _recorded_check(job.staging_dir / f"{uid}.zarr") or choose_min_confidence(
            source, predictors[factor], infer)
        infer = replace(infer, min_confidence=check.floor)
    grid = make_grid(shape, predictors[factor], infer)
    chunks, shards = output_layout(shape, infer.tile, shards=max(infer.tile, config.shard))
    spec = UnitSpec(uid, str(unit.path), unit.sample,
                    None if unit.sample is not None else config.input_threshold,
                    str(job.staging_dir / f"{uid}.zarr"), shape, chunks, shards,
                    _attrs_for(unit, meta, model_label, infer, grid.halo, check), upsample=factor,
                    min_confidence=None if check is None else check.floor)
    origins, tiles_per = [], {}
    for y0 in range(0, shape[0], shards[0]):
        for x0 in range(0, shape[1], shards[1]):
            origins.append((y0, x0))
            tiles_per[(y0, x0)] = len(list(grid.tiles_in(
                y0, min(y0 + shards[0], shape[0]), x0, min(x0 + shards[1], shape[1]))))
    _, reused = create_staging(spec)
    if not reused:  # no staging arrays of an earlier attempt: its shard records mean nothing
        state.shards.clear()
    return _Prepared(unit, spec, meta, source, origins, state, tiles_per, infer)


# ---- outputs -------------------------------------------------------------------------------
def _existing_outputs(units: list[Unit]) -> list[pathlib.Path]:
    found = []
    for unit in units:
        if isinstance(unit.out_mask, str):  # object storage: a sample's output and its preview
            found += [p for p in unit.outputs if location.list_names(p) or location.is_file(p)]
            if location.list_names(unit.out_mask) and not location.is_file(
                    location.join(unit.out_mask, "zarr.json")):
                raise InputError(f"{unit.out_mask}: exists and is not a mask store")
            continue
        for path in unit.outputs:
            if path.exists():
                found.append(path)
        if unit.sample is not None and unit.out_mask.exists() and not (
            unit.out_mask / "zarr.json"
        ).is_file():
            raise InputError(f"{unit.out_mask}: exists and is not a mask store")
    return found


def _check_writable(units: list[Unit], work: pathlib.Path) -> None:
    """Refuse, before any work, outputs and a work folder that cannot be written (a read-only
    output store, previews folder or leftover work folder inside a writable OUT)."""
    check_writable(work, "job's work folder")
    for unit in units:
        for path in (unit.out_mask, unit.out_added, unit.out_preview):
            if path is not None and not isinstance(path, str):  # a URL: its bucket was checked
                check_writable(path, "output")


def _rename_into(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Rename `src` to `dst` atomically (an existing `dst` is replaced whole: readers see the
    old or the new output, never a mix)."""
    try:
        location.rename_replacing(src, dst, dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}"))
    except OSError as exc:  # a read-only output store or folder: the user's to fix
        raise InputError(f"{dst}: cannot write the output: {exc.strerror or exc}") from None


def _finalise(p: _Prepared, writer: ManifestWriter, infer: InferConfig,
              config: JobConfig, resumed: int) -> UnitResult:
    unit, staging = p.unit, pathlib.Path(p.spec.staging)
    result = UnitResult.from_counts(unit, p.spec.shape, p.state.shards, resumed)
    result.min_confidence = p.spec.min_confidence
    output = None if infer.keep_input else "mask"
    if unit.sample is not None and staging.is_dir():  # the output sample's shard record
        for array in open_staging(p.spec, mode="r+").values():
            record_shards(array)
    if unit.sample is not None and isinstance(unit.out_mask, str):
        _publish_remote(p, staging, output, config)
    elif unit.sample is not None:
        final = unit.out_mask / unit.sample
        if staging.is_dir():
            targets = open_staging(p.spec, mode="r")
            write_preview(unit.out_preview, p.source, targets["added"],
                          targets[output] if output else None, config.preview_size)
            MaskStore.create(unit.out_mask, exist_ok=True)  # the store root, if new
            _rename_into(staging, final)
        elif not (final / "zarr.json").is_file():  # staging lost without being renamed
            raise InputError(f"{unit.key}: staging data of the interrupted run is missing; "
                             "re-run to compute it again")
    else:
        targets = open_staging(p.spec, mode="r")
        meta = {k: v for k, v in p.meta.items() if k != "padded_from"}
        unit.out_mask.parent.mkdir(parents=True, exist_ok=True)
        write_mask_file(unit.out_mask, da.from_zarr(targets["mask"]), meta)
        write_mask_file(unit.out_added, da.from_zarr(targets["added"]), meta)
        write_preview(unit.out_preview, p.source, targets["added"],
                      targets[output] if output else None, config.preview_size)
    writer.final(p.spec.uid, asdict(result))
    if staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
    return result


# ---- execution -----------------------------------------------------------------------------
def _publish_remote(p: _Prepared, staging: pathlib.Path, output: str | None,
                    config: JobConfig) -> None:
    """A finished sample into an output store on object storage: the preview, then the staging
    group uploaded object by object (whole shards, its zarr.json last) as the sample."""
    unit = p.unit
    final = location.join(unit.out_mask, unit.sample)
    if staging.is_dir():
        targets = open_staging(p.spec, mode="r")
        preview = staging.parent / f"{staging.name}.preview.png"
        write_preview(preview, p.source, targets["added"], targets[output] if output else None,
                      config.preview_size)
        location.put_file(preview, unit.out_preview)
        preview.unlink()
        MaskStore.create(unit.out_mask, exist_ok=True)  # the store root, if new
        location.remove_tree(final)  # an old output (--overwrite was checked when planning)
        location.upload_group(staging, final)
    elif not location.is_file(location.join(final, "zarr.json")):
        raise InputError(f"{unit.key}: staging data of the interrupted run is missing; "
                         "re-run to compute it again")


def _run_local(prepared: list[_Prepared], predictors: PredictorsByFactor,
               config: JobConfig, writer: ManifestWriter, report: JobReport,
               progress: JobProgress | None, single: bool) -> None:
    empties: dict[int, EmptyWindows] = {}
    for p in prepared:
        factor = p.infer.upsample
        predictor = predictors[factor]
        empty = empties.setdefault(factor, EmptyWindows(predictor, p.infer))
        resumed = len(p.state.shards)
        missing = p.missing
        area = p.spec.shape[0] * p.spec.shape[1]
        px_per_tile = area / max(1, sum(p.tiles_per_shard.values()))
        seen = [0]

        def tick(done: int, total: int, seen=seen, px=px_per_tile) -> None:
            if progress is not None:
                progress.advance(done - seen[0], int(round((done - seen[0]) * px)))
            seen[0] = done

        def on_shard(origin, counts, p=p) -> None:
            writer.shard(p.spec.uid, origin, counts)
            p.state.shards[tuple(origin)] = counts

        try:
            if missing:
                try:
                    run_inference(p.source, predictor, open_staging(p.spec), p.infer, tick,
                                  shards=missing, on_shard=on_shard, empty=empty)
                except OSError as exc:  # zarr's shard writes name no file: name the array
                    if exc.filename is None:
                        exc.filename = p.spec.staging
                    raise
            report.done.append(_finalise(p, writer, p.infer, config, resumed))
        except InputError as exc:
            if single:
                raise
            report.failed.append((p.unit.key, str(exc)))


def _run_ray(prepared: list[_Prepared], model: ModelSpec, infer: InferConfig,
             config: JobConfig, job: JobDir, writer: ManifestWriter, report: JobReport,
             progress: JobProgress | None, single: bool) -> None:
    by_uid = {p.spec.uid: p for p in prepared}
    resumed = {p.spec.uid: len(p.state.shards) for p in prepared}
    failed: dict[str, str] = {}
    for p in prepared:  # units finished by an earlier run but not finalised
        if not p.missing:
            report.done.append(_finalise(p, writer, p.infer, config, resumed[p.spec.uid]))
    tasks = [(p.spec, origin) for p in prepared for origin in p.missing]
    options = RayOptions(workers=config.workers, cpus_per_worker=config.cpus_per_worker,
                         gpu=config.gpu)
    for result in run_shards(tasks, model, infer, str(job.manifest_dir), options):
        uid = result["uid"]
        p = by_uid[uid]
        if result.get("error"):
            if uid not in failed:
                failed[uid] = result["error"]
                if single:
                    raise InputError(result["error"])
                report.failed.append((p.unit.key, result["error"]))
            continue
        counts = ShardCounts(**result["counts"])
        p.state.shards[tuple(result["shard"])] = counts
        if progress is not None:
            progress.advance(counts.tiles, int(result["pixels"]))
        if uid not in failed and not p.missing:
            try:
                report.done.append(_finalise(p, writer, p.infer, config, resumed[uid]))
            except InputError as exc:
                if single:
                    raise
                failed[uid] = str(exc)
                report.failed.append((p.unit.key, str(exc)))


def run_job(inputs: list[str | os.PathLike], model: ModelSpec, out: str | os.PathLike,
            infer: InferConfig | None = None, config: JobConfig | None = None,
            progress: JobProgress | None = None) -> JobReport:
    """Repair every mask named by `inputs` with `model` into `out`; see the module docstring.

    Raises InputError/ConfigError for bad options, a missing model, outputs that exist
    (without `overwrite`) or would overwrite an input, and a single bad mask; bad masks among
    several are reported in `JobReport.failed` and the others finish.
    """
    infer, config = infer or InferConfig(), config or JobConfig()
    start = time.perf_counter()
    units, is_file = plan_units(list(inputs), out)
    base = load_predictor(model, gpu=config.gpu and not config.ray, threads=config.threads)
    grid = make_grid((1, 1), with_options(base, infer), infer)  # refuses a bad --tile / --halo now
    # name the tile actually used (auto_tile's when None) in the job key, layouts and attributes
    infer, halo = replace(infer, tile=grid.tile), grid.halo
    predictors = PredictorsByFactor(base, infer)
    key, description = _job_key(model_fingerprint(model), infer, halo, config)
    label = str(model) if isinstance(model, (str, os.PathLike)) else model_fingerprint(model)
    remote = location.is_url(out)  # object storage: outputs there, the work folder local
    out_path = os.fspath(out).rstrip("/") if remote else pathlib.Path(out).absolute()
    _check_writable(units, work_dir(out_path, is_file))
    created = not remote and not out_path.exists() and not is_file
    out_path.mkdir(parents=True, exist_ok=True) if not is_file and not remote else None
    job = JobDir(work_dir(out_path, is_file), key, description, discard=config.overwrite,
                 labels={"model": label})
    with job:
        resuming = bool(job.registered)
        try:
            report = _run(job, units, predictors, model, label, infer, config, progress)
        except (DistpaintError, OSError) as exc:
            # a user error in a fresh job before any shard was done: nothing worth resuming
            # (an interrupt, an error while resuming, or one after some shards were written,
            # such as a full disk while writing the outputs, keeps the folder)
            kept = resuming or bool(job.state())
            if not kept:
                job.remove()
                if created and out_path.is_dir() and not any(out_path.iterdir()):
                    out_path.rmdir()
            if isinstance(exc, OSError):  # disk full, quota, I/O error: one line, no traceback
                raise InputError(_os_error_message(exc, out_path, job.path if kept else None)) \
                    from None
            raise
    report.seconds = time.perf_counter() - start
    return report


def _os_error_message(exc: OSError, out: Any, work: pathlib.Path | None) -> str:
    """One line for an OSError of the job (a full disk while writing a shard or an output):
    the file, what went wrong, and whether the progress is kept for a re-run."""
    where = exc.filename if exc.filename is not None else out
    what = exc.strerror or type(exc).__name__
    how = (f"; the finished shards are kept in {work}: re-run the same command to resume"
           if work is not None else "")
    return f"{where}: cannot write: {what}{how}"


def _run(job: JobDir, units: list[Unit], predictors: PredictorsByFactor, model: ModelSpec, label: str,
         infer: InferConfig, config: JobConfig, progress: JobProgress | None) -> JobReport:
    single = len(units) == 1
    report = JobReport()
    states = job.state()
    fps = {u.key: u.fingerprint() for u in units}
    new = [u for u in units if job.registered.get(u.key) != fps[u.key]]
    existing = _existing_outputs(new)
    if existing and not config.overwrite:
        shown = ", ".join(str(p) for p in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise InputError(f"output exists: {shown}{more}; pass --overwrite to replace it")
    job.register({u.key: fps[u.key] for u in units})
    writer = job.writer()
    prepared: list[_Prepared] = []
    for unit in units:
        state = states.get(_unit_uid(unit, fps[unit.key])) or UnitState()
        if state.final is not None:  # finished by an interrupted earlier run
            report.done.append(UnitResult(**{**state.final, "shape": tuple(state.final["shape"])}))
            continue
        try:
            prepared.append(_prepare(unit, fps[unit.key], state, job, predictors, config, label))
        except InputError as exc:
            if single:
                raise
            report.failed.append((unit.key, str(exc)))
    report.pixels = sum(_shard_pixels(p, o) for p in prepared for o in p.missing)
    if progress is not None:
        progress.start(sum(p.tiles_per_shard[o] for p in prepared for o in p.missing),
                       report.pixels)
    if config.ray and prepared:
        _run_ray(prepared, model, infer, config, job, writer, report, progress, single)
    else:
        _run_local(prepared, predictors, config, writer, report, progress, single)
    if report.failed:
        report.work_dir = str(job.path)  # re-running the command retries the failed masks
    else:
        job.remove()
    return report


def _shard_pixels(p: _Prepared, origin: tuple[int, int]) -> int:
    (h, w), (sh, sw) = p.spec.shape, p.spec.shards
    return (min(origin[0] + sh, h) - origin[0]) * (min(origin[1] + sw, w) - origin[1])
