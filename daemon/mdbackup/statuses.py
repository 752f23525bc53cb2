"""The one definition of path and push statuses (used by the schema and by `status`)."""

from enum import StrEnum


class PathStatus(StrEnum):
    """Where one store path stands; see the contract's "Path statuses"."""

    PENDING = "pending"
    QUEUED = "queued"
    SUCCESS = "success"
    FAILED = "failed"
    DISABLED = "disabled"


class PushStatus(StrEnum):
    """Where the repository's push stands, tracked apart from the paths."""

    DISABLED = "disabled"
    SUCCESS = "success"
    PENDING = "pending"
    FAILED = "failed"
