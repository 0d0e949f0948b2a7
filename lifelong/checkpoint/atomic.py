"""Atomic file replacement (standard library only, so a crash test can import it alone)."""
from __future__ import annotations

import os
import pathlib
import tempfile

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` so that a crash at any moment leaves either the old or the new file.

    The bytes go to a temporary file beside the target, are flushed and fsynced, the file is
    renamed over the target (``os.replace``, atomic on POSIX and Windows), and the directory is
    fsynced so the rename itself survives a power cut.
    """
    path = pathlib.Path(path)
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
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
    return path


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
