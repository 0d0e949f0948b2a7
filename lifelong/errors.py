"""Exceptions shared across lifelong."""


class CheckpointError(Exception):
    """A checkpoint file is unreadable: truncated, corrupted, foreign, unsafe or from a newer format.

    The message always names the path and what is wrong with it.
    """
