"""The one definition of path, push and sync statuses (used by the schema and by `status`)."""

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


class SyncStatus(StrEnum):
    """Where the repository's sync with the remote stands; see the contract's "Sync status"."""

    DISABLED = "disabled"
    IDLE = "idle"
    BEHIND = "behind"
    MERGING = "merging"
    BLOCKED = "blocked"
    FAILED = "failed"
