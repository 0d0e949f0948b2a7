"""Exceptions shared across lifelong."""


class CheckpointError(Exception):
    """A checkpoint file is unreadable: truncated, corrupted, foreign, unsafe or from a newer format.

    The message always names the path and what is wrong with it.
    """


class CheckpointMismatchError(ValueError):
    """A sound checkpoint that does not fit what it is loaded into: other spaces, architecture,
    ``n_envs``, optimizer class or algorithm. (A ``ValueError``: the caller's arguments decide.)"""
