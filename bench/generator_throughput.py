"""CPU inference throughput of the registered generators (Mpx/s), side by side in one run.

    python bench/generator_throughput.py [--size 1024] [--threads 2] [--repeats 3] [--json]

Each model runs in eval + inference mode on one (1, 1, size, size) input after a warm-up;
the best of `repeats` timings is reported (the machine is shared, the best is the least noisy).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from distpaint.models import create_model
from distpaint.models.layers import count_parameters


def throughput(name: str, size: int, repeats: int) -> dict:
    model = create_model(name, "generator").eval()
    x = (torch.rand(1, 1, size, size) > 0.95).float()
    with torch.inference_mode():
        model(x)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            tic = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - tic)
    return {"model": name, "params": count_parameters(model), "seconds": round(best, 3),
            "mpx_per_s": round(size * size / best / 1e6, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["unet_paper", "unet_small", "unet_cpu"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [throughput(name, args.size, args.repeats) for name in args.models]
    ratio = rows[-1]["mpx_per_s"] / rows[0]["mpx_per_s"]
    result = {"size": args.size, "threads": args.threads, "results": rows,
              f"speedup_{rows[-1]['model']}_vs_{rows[0]['model']}": round(ratio, 2)}
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
