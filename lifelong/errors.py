"""Exceptions shared across lifelong."""


class CheckpointError(Exception):
    """A checkpoint file is unreadable: truncated, corrupted, foreign, unsafe or from a newer format.

    The message always names the path and what is wrong with it.
    """


class CheckpointMismatchError(ValueError):
    """A sound checkpoint that does not fit what it is loaded into: other spaces, architecture,
    ``n_envs``, optimizer class or algorithm. (A ``ValueError``: the caller's arguments decide.)"""


class CheckpointUnsupportedError(CheckpointError):
    """A checkpoint this lifelong will not load as it is, though it need not be damaged: a newer
    format version, or a class the file names that is neither registered nor passed in
    ``custom_objects``. (:class:`~lifelong.checkpoint.CheckpointManager` skips such a file but
    does not set it aside as corrupt.)"""


class CheckpointAgentError(CheckpointMismatchError, CheckpointError):
    """A sound checkpoint of another agent (a DistributionalRecurrentPPO file loaded by
    DistributionalPPO, or the other way round): both a mismatch (a ``ValueError``) and a
    :class:`CheckpointError`, whose message names both classes. A checkpoint manager does not set
    such a file aside as corrupt."""
