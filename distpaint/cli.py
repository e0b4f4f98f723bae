"""The `distpaint` command line.

Each sub-command lives in its own module under `distpaint.commands` and exposes
`register(app)`; this module only assembles them and turns `DistpaintError` into a clear
one-line message (exit status 2) instead of a traceback.

Run `distpaint --help` to list the commands.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from distpaint.errors import DistpaintError

# Modules under distpaint.commands, each with `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "ingest",
    "rasterize",
    "realdata",
    "synth",
    "corrupt",
    "evaluate",
    "baseline",
    "benchset",
    "quality",
    "models",
    "train",
    "average",
    "reproduce",
    "infer",
    "tune",
    "demo",
)

app = typer.Typer(
    name="distpaint",
    help="Repair gaps in huge binary masks of thin structures (roads, vessels, roots, drawings).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root() -> None:
    """Repair gaps in huge binary masks of thin structures (roads, vessels, roots, drawings)."""
    # An explicit callback keeps sub-commands as sub-commands even when only one is registered.


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"distpaint.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command not built yet must not break the others
        if exc.name != f"distpaint.commands.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Entry point of the console script: run the app, report user errors in one line."""
    try:
        # With standalone_mode=False click returns the code of typer.Exit instead of exiting.
        code = app(standalone_mode=False)
    except DistpaintError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code and message
        # Duck-typed: typer >= 0.2x vendors click (typer._click), whose usage errors (a missing
        # option, "abc" for an int) are not click.ClickException, and would end in a traceback.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if isinstance(exit_code, int) and not isinstance(exit_code, bool):
            if callable(show):
                show()
            sys.exit(exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
