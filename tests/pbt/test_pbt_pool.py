"""The local backend's worker pool: results, exceptions and dead workers, per start method."""
import os
import signal

import pytest

from lifelong.pbt.local import START_METHODS, WorkerPool


def _task(payload):
    kind, arg = payload
    if kind == "square":
        return arg * arg
    if kind == "pid":
        return os.getpid()
    if kind == "exit":
        os._exit(arg)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "raise":
        raise ValueError(arg)
    raise AssertionError(kind)


def _run(pool):
    return {o.key: o for o in pool.outcomes()}


@pytest.mark.parametrize("start_method", START_METHODS)
def test_pool_reports_results_errors_and_deaths(start_method):
    # A spawned worker imports torch (seconds): the spawn variant dies only once.
    cheap = start_method == "forkserver"
    with WorkerPool(_task, 1, start_method=start_method) as pool:
        pool.submit("a", ("square", 3))
        pool.submit("c", ("raise", "boom"))
        pool.submit("b", ("exit", 9))
        if cheap:
            pool.submit("d", ("square", 4))
        out = _run(pool)
        assert out["a"].status == "ok" and out["a"].value == 9
        assert out["c"].status == "error" and "ValueError: boom" in out["c"].value  # worker lives on
        assert out["b"].status == "died" and "exited with code 9" in out["b"].value
        if cheap:
            assert out["d"].status == "ok" and out["d"].value == 16  # a fresh worker took over
            pool.submit("e", ("kill", None))
            out = _run(pool)
            assert out["e"].status == "died" and "signal 9" in out["e"].value
    with WorkerPool(_task, 2, start_method="forkserver" if "forkserver" in START_METHODS else "spawn") as pool:
        for i in range(4):
            pool.submit(i, ("pid", None))
        pids = {o.value for o in pool.outcomes()}
        assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_pool_validates_arguments():
    with pytest.raises(ValueError, match="workers=0"):
        WorkerPool(_task, 0)
    with pytest.raises(ValueError, match="start_method='fork'"):
        WorkerPool(_task, 1, start_method="fork")
