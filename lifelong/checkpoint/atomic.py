"""Atomic file replacement (standard library only, so a crash test can import it alone)."""
from __future__ import annotations

import os
import pathlib
import socket
import tempfile
import time

__all__ = ["write_atomic", "remove_stale_temporaries"]

#: this machine, as temporary file names carry it (dots would be ambiguous there)
_HOST = socket.gethostname().replace(".", "-") or "host"
#: a temporary whose writer cannot be checked (another machine, an older name) is stale after this
STALE_AFTER_S = 3600.0


def write_atomic(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` so that a crash at any moment leaves either the old or the new file.

    The bytes go to a temporary file beside the target, are flushed and fsynced, the file is
    renamed over the target (``os.replace``, atomic on POSIX and Windows), and the directory is
    fsynced so the rename itself survives a power cut. Temporaries of earlier writes of the same
    target that were killed mid-write are then removed (:func:`remove_stale_temporaries`).
    """
    path = pathlib.Path(path)
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files; give the usual permissions
            os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)
    remove_stale_temporaries(directory, f".{path.name}.*.tmp")
    return path


def _writer_is_gone(name: str) -> bool | None:
    """For a temporary ``.<target>.<host>.<pid>.<random>.tmp``: True when its writer was a
    process of this machine that no longer exists, False when it still runs (or is this very
    process), None when the name does not say (another machine, another naming)."""
    parts = name[: -len(".tmp")].rsplit(".", 3)
    if len(parts) != 4 or parts[1] != _HOST or not parts[2].isdigit():
        return None
    pid = int(parts[2])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError, OverflowError):
        return False
    return False


def remove_stale_temporaries(directory: str | os.PathLike, pattern: str) -> list[pathlib.Path]:
    """Remove the temporary files matching ``pattern`` in ``directory`` that a killed write left
    behind: those whose writer (named in the file name: this host, a pid) no longer runs, and any
    older than :data:`STALE_AFTER_S`. A write still in progress is never touched. Returns them."""
    removed = []
    now = time.time()
    for entry in pathlib.Path(directory).glob(pattern):
        try:
            gone = _writer_is_gone(entry.name)
            if gone or (gone is None and now - entry.stat().st_mtime > STALE_AFTER_S):
                entry.unlink()
                removed.append(entry)
        except FileNotFoundError:
            pass
    return removed


def _file_mode(path: pathlib.Path) -> int:
    """The replaced file's permissions, or 0666 minus the process umask for a new file."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        pass
    umask = 0o022
    try:
        with open("/proc/self/status", encoding="ascii") as fh:  # Linux: read without changing it
            for line in fh:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o666 & ~umask


def _fsync_dir(directory: pathlib.Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; the rename is still atomic
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
