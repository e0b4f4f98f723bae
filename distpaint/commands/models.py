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


def _scored_set(card: dict) -> tuple[str, dict]:
    """The benchmark set a card's scores are shown for: the real test split of the first kind
    the model repairs that has one (real masks are the judge), else its synthetic whole-mask
    set. Cards written by `distpaint.weights.ship --scores` hold {"test/<kind>": {...},
    "whole/<kind>": {...}, ...}."""
    scores = card.get("scores", {})
    kinds = card.get("kinds") or []
    for prefix, label in (("test", "real test"), ("whole", "synthetic")):
        for kind in kinds:
            if f"{prefix}/{kind}" in scores:
                return f"{kind}, {label}", scores[f"{prefix}/{kind}"]
    return "-", {}


def _value(scores: dict, key: str) -> str:
    value = scores.get(key)
    return "-" if value is None else f"{value:.3f}"


def _shipped_table() -> Table:
    table = Table(title="shipped models (use with --model NAME)")
    columns = ("name", "repairs", "generator", "params", "Mpx/s (2 CPU)", "scored on", "rel. comp. diff",
               "gap recall", "false fill", "no-harm share", "description")
    for column in columns:
        left = column in ("name", "repairs", "generator", "scored on", "description")
        table.add_column(column, justify="left" if left else "right")
    for name in shipped_models():
        card = model_card(name)
        speed = card.get("mpx_per_s_cpu2")
        scored_on, scores = _scored_set(card)
        table.add_row(name, ", ".join(card.get("kinds", [])), card.get("generator", "?"),
                      f"{card['params'] / 1e6:.2f} M" if "params" in card else "-",
                      "-" if speed is None else f"{speed:.2f}", scored_on,
                      _value(scores, "rel_component_diff"), _value(scores, "skeleton_recall_gaps"),
                      _value(scores, "false_fill"), _value(scores, "no_harm_share"),
                      card.get("description", ""))
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
