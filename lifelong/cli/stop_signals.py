"""Stopping training on SIGINT (Ctrl-C) or SIGTERM (what SLURM and Kubernetes send before
SIGKILL) without losing work.

While :class:`StopSignals` is active, both signals only *record* that a stop was asked: nothing
is raised in the middle of an update or of a checkpoint write. Training checks
:attr:`StopSignals.received` at every env step, stops there, writes its checkpoint atomically and
exits with ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM). Further signals, however
many and however fast (a double Ctrl-C), are deferred: they are acknowledged on stderr and change
nothing, so the checkpoint is always completed. (SIGKILL cannot be caught; the atomic write still
leaves the previous checkpoint intact.)
"""
from __future__ import annotations

import os
import signal
from typing import Any

__all__ = ["StopSignals"]


class StopSignals:
    """Context manager recording SIGINT/SIGTERM instead of acting on them (main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, prog: str = "lifelong") -> None:
        self.prog = prog
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    @property
    def exit_code(self) -> int:
        """``128 + signum``, the shell's convention for a process ended by a signal."""
        return 128 + int(self.received or 0)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            text = (f"\n{self.prog}: {name} received: stopping at the next step and saving a checkpoint "
                    "(further signals are deferred until it is written)\n")
        else:
            text = f"{self.prog}: {name} received again: deferred until the checkpoint is written\n"
        try:
            os.write(2, text.encode())  # async-signal-safe enough: no buffered stream touched
        except OSError:
            pass

    def __enter__(self) -> StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        """Restore the previous handlers; once a stop was asked, ignore further signals instead
        (the process is on its way out: a late Ctrl-C must not turn into a traceback at exit)."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if self.received is None else signal.SIG_IGN)
        self._previous.clear()
