"""Numbered checkpoints in a directory: rotation and "latest valid" lookup."""
from __future__ import annotations

import os
import pathlib
import re
import warnings
from typing import Any

from lifelong.checkpoint.atomic import remove_stale_temporaries
from lifelong.checkpoint.capture import save_model
from lifelong.checkpoint.members import verify
from lifelong.checkpoint.restore import load_model
from lifelong.errors import CheckpointError, CheckpointMismatchError, CheckpointUnsupportedError


class CheckpointManager:
    """Writes ``<prefix>_<step>.zip`` files into ``directory`` and keeps the newest ``keep``.

    >>> manager = CheckpointManager("runs/x/checkpoints", keep=3)     # doctest: +SKIP
    >>> manager.save(model, model.num_timesteps)                     # doctest: +SKIP
    >>> model = manager.load_latest(DistributionalPPO, env=env)      # doctest: +SKIP

    Every save is atomic (see :func:`lifelong.checkpoint.save_model`). :meth:`latest` returns the
    newest checkpoint that verifies; a corrupted, truncated or crafted newer one (any
    :class:`lifelong.CheckpointError`) is skipped with a ``RuntimeWarning`` naming it and the
    fault, and renamed ``<name>.corrupt`` so that it is no longer taken for the newest (it is not
    deleted: it is evidence). :meth:`load_latest` does the same for a file that verifies but
    fails while the model is rebuilt from it. A :class:`~lifelong.errors.CheckpointUnsupportedError`
    (a newer format version, a class that is not registered) is skipped but not renamed: the file
    need not be damaged.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3, prefix: str = "ckpt") -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
            raise ValueError(f"prefix must be a non-empty word of letters, digits, '_' or '-', got {prefix!r}")
        self.directory = pathlib.Path(directory)
        self.keep = keep
        self.prefix = prefix
        self._pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)\.zip$")

    def __repr__(self) -> str:
        return f"CheckpointManager({str(self.directory)!r}, keep={self.keep}, prefix={self.prefix!r})"

    def path_for(self, step: int) -> pathlib.Path:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        return self.directory / f"{self.prefix}_{step:012d}.zip"

    def paths(self) -> list[pathlib.Path]:
        """The numbered checkpoints present, oldest first (whether valid or not)."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = self._pattern.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry))
        return [p for _, p in sorted(found)]

    def save(self, model: Any, step: int | None = None) -> pathlib.Path:
        """Save ``model`` as checkpoint number ``step`` (default ``model.num_timesteps``), then
        delete all but the newest ``keep`` numbered checkpoints. Returns the new file's path."""
        if step is None:
            step = int(model.num_timesteps)
        path = save_model(model, self.path_for(step))
        self._rotate()
        self._remove_stale_temporaries()
        return path

    def _rotate(self) -> None:
        paths = self.paths()
        for old in paths[: max(0, len(paths) - self.keep)]:
            try:
                old.unlink()
            except FileNotFoundError:
                pass

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files left by saves killed mid-write (only ours: see
        :func:`lifelong.checkpoint.atomic.remove_stale_temporaries`)."""
        remove_stale_temporaries(self.directory, f".{self.prefix}_*.zip.*.tmp")

    def _set_aside(self, path: pathlib.Path, exc: CheckpointError) -> None:
        """Warn about a bad checkpoint and rename it ``*.corrupt`` (unless it is merely newer)."""
        unsupported = isinstance(exc, CheckpointUnsupportedError)
        target = path.with_name(path.name + ".corrupt")
        if not unsupported:
            try:
                os.replace(path, target)
            except OSError:  # read-only directory, or already renamed by another process
                target = path
        where = "" if target == path or unsupported else f"; renamed to {target.name}"
        warnings.warn(f"skipping corrupted checkpoint: {exc}{where}", RuntimeWarning, stacklevel=3)

    def latest(self) -> pathlib.Path | None:
        """The newest checkpoint that verifies, or ``None`` when there is none (bad newer ones
        are skipped with a warning and renamed ``*.corrupt``)."""
        for path in reversed(self.paths()):
            try:
                verify(path)
            except FileNotFoundError:
                continue  # rotated away meanwhile
            except CheckpointMismatchError:
                raise  # sound, but not for this model (another agent's): not corrupt
            except CheckpointError as exc:
                self._set_aside(path, exc)
                continue
            return path
        return None

    def load_latest(self, cls: type, env: Any = None, **kwargs: Any) -> Any:
        """``load_model(cls, path, env=env, **kwargs)`` for the newest checkpoint that loads;
        ``FileNotFoundError`` when none does. A file that fails with ``CheckpointError`` while
        loading is skipped and set aside as in :meth:`latest`; any other error (a checkpoint
        that does not fit ``env``, a bad argument) is raised."""
        for path in reversed(self.paths()):
            try:
                return load_model(cls, path, env=env, **kwargs)  # verifies as it reads
            except FileNotFoundError:
                continue  # rotated away meanwhile
            except CheckpointMismatchError:
                raise  # sound, but not for this model (another agent's): not corrupt
            except CheckpointError as exc:
                self._set_aside(path, exc)
        raise FileNotFoundError(f"no valid checkpoint in {self.directory}")
