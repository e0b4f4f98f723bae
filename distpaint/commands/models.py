"""`distpaint models`: list the trained models shipped with distpaint (and the architectures).

    distpaint models                  # shipped models: what they repair, speed, scores
    distpaint models --architectures  # registered networks (G, D_L, D_G variants), parameters
    distpaint models --json           # the model cards as JSON

A shipped model is used with `distpaint infer ... --model NAME`; its card (in
distpaint/weights/NAME/card.json) records the exact command, config and seed that trained it.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from distpaint.weights import model_card, shipped_models

__all__ = ["register", "models"]


def _score(card: dict, key: str) -> str:
    """`key` on the whole-mask benchmark set of the model's first kind (the cards written by
    `distpaint.weights.ship --scores` hold {"whole/<kind>": {metric: mean}, ...})."""
    scores = card.get("scores", {})
    kinds = card.get("kinds") or [""]
    value = scores.get(f"whole/{kinds[0]}", {}).get(key, scores.get(key))
    return "-" if value is None else f"{value:.3f} ({kinds[0]})"


def _shipped_table() -> Table:
    table = Table(title="shipped models (use with --model NAME)")
    for column in ("name", "repairs", "generator", "params", "Mpx/s (2 CPU)", "rel. comp. diff (whole masks)",
                   "clDice (whole masks)", "description"):
        table.add_column(column, justify="left" if column in ("name", "repairs", "generator", "description")
                         else "right")
    for name in shipped_models():
        card = model_card(name)
        speed = card.get("mpx_per_s_cpu2")
        table.add_row(name, ", ".join(card.get("kinds", [])), card.get("generator", "?"),
                      f"{card['params'] / 1e6:.2f} M" if "params" in card else "-",
                      "-" if speed is None else f"{speed:.2f}",
                      _score(card, "rel_component_diff"), _score(card, "cldice"), card.get("description", ""))
    return table


def _architecture_table() -> Table:
    # deferred (torch): `distpaint` imports every command module when it starts
    from distpaint.models import get_entry, list_models
    from distpaint.models.layers import count_parameters

    table = Table(title="registered architectures (model.generator / local_disc / global_disc in a config)")
    for column in ("name", "role", "params", "description"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for name in list_models():
        entry = get_entry(name)
        params = count_parameters(entry.model_cls(entry.default))
        table.add_row(name, entry.role, f"{params / 1e6:.2f} M", entry.description)
    return table


def models(
    architectures: bool = typer.Option(False, "--architectures", help="List the registered networks instead."),
    as_json: bool = typer.Option(False, "--json", help="Print the shipped models' cards as JSON."),
) -> None:
    """List the trained models shipped with distpaint."""
    console = Console()
    if as_json:
        print(json.dumps({name: model_card(name) for name in shipped_models()}, indent=2))
    elif architectures:
        console.print(_architecture_table())
    else:
        console.print(_shipped_table())
        if not shipped_models():
            console.print("no shipped models found in distpaint/weights/", style="yellow")


def register(app: typer.Typer) -> None:
    """Add `distpaint models` to the CLI."""
    app.command("models")(models)
