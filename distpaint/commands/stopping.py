"""How long-running commands stop on a scheduler's SIGTERM: as on Ctrl-C.

Python's default SIGTERM ends the process at once, skipping every `finally`: a training driver
then leaves its run's lease behind (a re-run elsewhere waits for it to expire) and an inference
job its progress bar. Inside `sigterm_as_interrupt()` SIGTERM raises KeyboardInterrupt instead,
so the command unwinds the way Ctrl-C unwinds it (leases released, Ray shut down, outputs never
half-published, exit 130); a second SIGTERM after that stops at once.

    with sigterm_as_interrupt():
        run_the_job()
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["sigterm_as_interrupt"]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread for the `with` block (module
    docstring); elsewhere (signal handlers belong to the main thread) the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_: object) -> None:
        signal.signal(signal.SIGTERM, previous)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # installed outside Python: the default is the closest
        previous = signal.SIG_DFL
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
