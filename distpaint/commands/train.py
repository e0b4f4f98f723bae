"""`distpaint train`: train the inpainting networks from a YAML recipe.

    distpaint train --config cpu_small --local --max-steps 200 --out runs/dev

`--config` is a YAML file or the name of a recipe shipped in distpaint/configs/ (tiny,
cpu_small, paper, paper_faithful). `--local` runs the single-process loop in this process;
without it the distributed trainer (Ray) runs the same config when it is installed. Re-running
with the same `--out` resumes from the newest checkpoint there.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import typer
from rich.console import Console

from distpaint.errors import ConfigError

__all__ = ["register"]


def _resolve_config(config: str):
    from distpaint.train.config import load_config, packaged_config

    path = Path(config)
    return load_config(path if path.suffix in (".yaml", ".yml") or path.exists() else packaged_config(config))


def train(
    config: str = typer.Option(..., "--config", "-c", help="YAML recipe, or a shipped one: tiny, cpu_small, paper"),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (checkpoints, metrics.jsonl); resumed if present"),
    local: bool = typer.Option(False, "--local", help="Train in this process (no Ray)"),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps (default: the config's)"),
    device: str = typer.Option("cpu", "--device", help="torch device of the local run: cpu or cuda"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)"),
) -> None:
    """Train G (and its discriminators) on synthetic masks with gaps."""
    cfg = _resolve_config(config)
    if max_steps is not None and max_steps < 0:
        raise ConfigError("--max-steps must be >= 0")
    console = Console()
    if not local:
        try:
            distributed = importlib.import_module("distpaint.train.distributed")
        except ModuleNotFoundError as exc:
            if exc.name not in ("distpaint.train.distributed", "ray"):
                raise
            raise ConfigError("distributed training is not available here; pass --local") from None
        distributed.train_distributed(cfg, out, max_steps=max_steps)
        return
    import torch

    from distpaint.train.local import train_local

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if threads > 0:
        torch.set_num_threads(threads)

    def log(step: int, metrics: dict) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step")
        console.print(f"step {step}: {shown}", highlight=False)

    metrics = train_local(cfg, out, max_steps=max_steps, device=device, log=log)
    console.print(f"[green]done[/]: {metrics.get('step', 0)} steps, checkpoints in {out / 'checkpoints'}")


def register(app: typer.Typer) -> None:
    """Add `distpaint train` to the CLI."""
    app.command("train")(train)
