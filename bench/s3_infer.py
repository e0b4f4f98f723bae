"""Inference throughput with stores on object storage against local stores, side by side in one
run: `distpaint infer IN.zarr --out OUT.zarr` (run_job) with both stores local, then with both
at s3:// URLs on an S3-compatible server on this machine (moto's standalone server).

    python bench/s3_infer.py [--model general] [--size 2048] [--count 2] [--repeats 2] [--json]
    python bench/s3_infer.py --smoke-test          # 384 px, one repeat, seconds

Writes --count synthetic `roads` masks of --size px (seed 0) into a local store and the same
masks into a bucket, runs the same job on each --repeats times (local, S3, local, S3, ...; the
best of each kept: the cores are shared), checks that the two outputs hold the same bytes and
prints the seconds, Mpx/s and the ratio S3 / local. The model is loaded once and shared (the
jobs time reading, computing and writing); its card's threshold and keep policy are used, as
`distpaint infer` does. moto on localhost measures the cost of the
object-storage path (HTTP, per-object requests, the upload of finished samples, the local work
folder), not a real bucket's latency or bandwidth. --endpoint uses a running S3-compatible
server instead (AWS_* variables as for any boto client; the bucket must exist).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

from distpaint.data.store import MaskStore
from distpaint.data.synth import synth_array
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job
from distpaint.infer.model import model_fingerprint
from distpaint.infer.predictor import resolve_model
from distpaint.weights import inference_defaults


class _Loaded:
    """The model loaded once, as a factory run_job accepts: every job then times reading,
    computing and writing, not loading the model and measuring its receptive field."""

    def __init__(self, model: str) -> None:
        self.predictor = resolve_model(model)
        self.fingerprint = model_fingerprint(model)

    def __call__(self):
        return self.predictor


def _start_moto(log: pathlib.Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "moto_server"), "-H",
                                 "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"moto_server did not start: {log.read_text()[-500:]}")
            time.sleep(0.1)


def _arrays(store: MaskStore) -> dict:
    return {(n, layer): store.array(n, layer)[:].tobytes()
            for n in store.names() for layer in store.layers(n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="general")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shard", type=int, default=1024, help="output shard side (run_job's --shard)")
    parser.add_argument("--endpoint", help="a running S3-compatible server (default: start moto)")
    parser.add_argument("--bucket", default="distpaint-bench")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    size, repeats = (384, 1) if args.smoke_test else (args.size, args.repeats)
    work = pathlib.Path(tempfile.mkdtemp(prefix="s3-infer-"))
    os.environ["DISTPAINT_WORK_CACHE"] = str(work / "work-cache")
    proc = None
    if args.endpoint is None:
        proc, endpoint = _start_moto(work / "moto.log")
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
                          AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        import boto3  # deferred: only to make the bucket on our own server

        boto3.client("s3").create_bucket(Bucket=args.bucket)
    try:
        prefix = f"s3://{args.bucket}/{uuid.uuid4().hex[:8]}"
        local_in, remote_in = MaskStore.create(work / "in.zarr"), MaskStore.create(f"{prefix}/in.zarr")
        for i in range(args.count):
            mask = synth_array("roads", (size, size), i)
            mask[::37] = False  # gaps across the roads: work for the model
            for store in (local_in, remote_in):
                store.write(f"roads-{i}", {"mask": mask})
        chosen = inference_defaults(args.model)  # what `distpaint infer --model M` uses
        infer = InferConfig(threshold=chosen["threshold"], keep=chosen["keep"])
        job, model = JobConfig(shard=args.shard), _Loaded(args.model)
        best = {"local": float("inf"), "s3": float("inf")}
        for r in range(repeats):
            for where, src, out in (("local", work / "in.zarr", work / f"out-{r}.zarr"),
                                    ("s3", f"{prefix}/in.zarr", f"{prefix}/out-{r}.zarr")):
                start = time.perf_counter()
                run_job([src], model, out, infer, job)
                best[where] = min(best[where], time.perf_counter() - start)
        same = _arrays(MaskStore.open(work / "out-0.zarr")) == _arrays(MaskStore.open(f"{prefix}/out-0.zarr"))
        mpx = args.count * size * size / 1e6
        result = {"model": args.model, "size": size, "count": args.count, "repeats": repeats,
                  "shard": args.shard, "local_s": round(best["local"], 2), "s3_s": round(best["s3"], 2),
                  "local_mpx_s": round(mpx / best["local"], 3), "s3_mpx_s": round(mpx / best["s3"], 3),
                  "s3_over_local_time": round(best["s3"] / best["local"], 3),
                  "s3_over_local_throughput": round(best["local"] / best["s3"], 3), "byte_equal": same}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.count} x {size}^2 px, model {args.model}, best of {repeats}:")
    print(f"  local -> local : {result['local_s']:.2f} s ({result['local_mpx_s']:.3f} Mpx/s)")
    print(f"  s3    -> s3    : {result['s3_s']:.2f} s ({result['s3_mpx_s']:.3f} Mpx/s)")
    print(f"  S3 throughput / local: {result['s3_over_local_throughput']:.3f}  (outputs byte-equal: {same})")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
