"""A small pool of spawned worker processes that survives the death of any of them.

``concurrent.futures.ProcessPoolExecutor`` marks the whole pool broken when one worker dies and
cannot say which task killed it. Here each worker has its own pipe, the coordinator knows which
task each worker runs, and a worker that dies (``os._exit``, SIGKILL, out of memory) is reported
as a ``"died"`` outcome for exactly that task and replaced by a fresh process.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator

__all__ = ["WorkerPool", "Outcome", "START_METHODS", "default_start_method"]

START_METHODS = tuple(m for m in ("spawn", "forkserver") if m in mp.get_all_start_methods())


def default_start_method() -> str:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn`` (Windows)."""
    return "forkserver" if "forkserver" in START_METHODS else "spawn"


def _worker_main(conn, func: Callable[[Any], Any]) -> None:  # pragma: no cover - in a child
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # coordinator gone: leave quietly
            return
        if task is None:
            return
        key, payload = task
        try:
            result = func(payload)
        except BaseException as exc:  # noqa: BLE001 - reported to the coordinator
            message = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            try:
                conn.send((key, "error", message))
            except (OSError, EOFError):
                return
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return
            continue
        try:
            conn.send((key, "ok", result))
        except (OSError, EOFError):
            return


@dataclass
class Outcome:
    key: Any
    status: str  # "ok", "error" (an exception, with its traceback) or "died" (the process ended)
    value: Any


class _Slot:
    def __init__(self, ctx, func) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn = parent
        self.proc = ctx.Process(target=_worker_main, args=(child, func), daemon=True)
        self.proc.start()
        child.close()
        self.key: Any = None

    @property
    def busy(self) -> bool:
        return self.key is not None


class WorkerPool:
    """``submit(key, payload)`` then iterate ``outcomes()``; ``func`` must be importable
    (spawned children import it by name)."""

    def __init__(
        self,
        func: Callable[[Any], Any],
        workers: int,
        start_method: str = "spawn",
        preload: tuple[str, ...] = ("lifelong.pbt.member", "lifelong.agent.ppo", "lifelong.checkpoint"),
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers={workers!r}: expected an int >= 1")
        if start_method not in START_METHODS:
            raise ValueError(f"start_method={start_method!r}: expected one of {list(START_METHODS)}")
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            # The server imports torch and lifelong once; each worker is then a cheap fork of it
            # (the server is single-threaded, so forking it is safe, unlike forking the caller).
            self._ctx.set_forkserver_preload(list(preload))
        self._func = func
        self._n = workers
        self._slots: list[_Slot] = []
        self._queue: deque = deque()
        self._closed = False

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc.pid is not None]

    def busy_pids(self) -> dict[Any, int]:
        return {s.key: s.proc.pid for s in self._slots if s.busy}

    def submit(self, key: Any, payload: Any) -> None:
        if self._closed:
            raise RuntimeError("WorkerPool is closed")
        self._queue.append((key, payload))

    def pending(self) -> int:
        return len(self._queue) + sum(1 for s in self._slots if s.busy)

    def _dispatch(self) -> None:
        # Start workers lazily, up to the number of queued tasks (no idle spawns).
        while self._queue:
            slot = next((s for s in self._slots if not s.busy and s.proc.is_alive()), None)
            if slot is None:
                self._slots = [s for s in self._slots if s.busy or s.proc.is_alive()]
                if len(self._slots) >= self._n:
                    return
                slot = _Slot(self._ctx, self._func)
                self._slots.append(slot)
            key, payload = self._queue.popleft()
            try:
                slot.conn.send((key, payload))
            except (OSError, EOFError):
                self._queue.appendleft((key, payload))
                self._retire(slot)
                continue
            slot.key = key

    def _retire(self, slot: _Slot) -> None:
        try:
            slot.conn.close()
        except OSError:
            pass
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join(timeout=5)
        if slot in self._slots:
            self._slots.remove(slot)

    def outcomes(self) -> Iterator[Outcome]:
        """Yield outcomes as tasks finish, until nothing is queued or running. Tasks submitted
        while iterating are picked up."""
        while True:
            self._dispatch()
            busy = [s for s in self._slots if s.busy]
            if not busy:
                if self._queue:
                    continue
                return
            ready = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy])
            for slot in busy:
                if slot.conn in ready:
                    try:
                        key, status, value = slot.conn.recv()
                    except (EOFError, OSError):
                        key, status, value = slot.key, "died", self._death_note(slot)
                        slot.key = None
                        self._retire(slot)
                        yield Outcome(key, status, value)
                        continue
                    slot.key = None
                    if status == "error" and not slot.proc.is_alive():
                        self._retire(slot)
                    yield Outcome(key, status, value)
                elif slot.proc.sentinel in ready:
                    key = slot.key
                    slot.key = None
                    note = self._death_note(slot)
                    self._retire(slot)
                    yield Outcome(key, "died", note)

    @staticmethod
    def _death_note(slot: _Slot) -> str:
        slot.proc.join(timeout=5)
        code = slot.proc.exitcode
        if code is not None and code < 0:
            return f"worker process {slot.proc.pid} was killed by signal {-code}"
        return f"worker process {slot.proc.pid} exited with code {code}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            if not slot.busy:
                try:
                    slot.conn.send(None)
                except (OSError, EOFError):
                    pass
        for slot in self._slots:
            if slot.busy:
                slot.proc.kill()
            slot.proc.join(timeout=10)
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(timeout=5)
            try:
                slot.conn.close()
            except OSError:
                pass
        self._slots = []
        self._queue.clear()


def default_workers() -> int:
    return os.cpu_count() or 1
