"""Quality report: repair methods scored on the real benchmark and the synthetic benchmark sets.

The same as `distpaint quality` (distpaint/commands/quality.py holds the code and the full
description), kept as a script for the commands in docs and notes that name it:

    python bench/quality.py --real runs/real --real-levels val test --no-synthetic --models roads
    python bench/quality.py --data runs/benchset-seed0 --models roads --kinds roads
    python bench/quality.py --smoke-test --out /tmp/q     # tiny sets, every code path, seconds
"""

from __future__ import annotations

import sys

from rich.console import Console

from distpaint.commands.quality import main
from distpaint.errors import DistpaintError

if __name__ == "__main__":
    try:
        sys.exit(main())
    except DistpaintError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
