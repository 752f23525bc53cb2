"""mdbackup: keeps a markdown store backed up in git."""

__version__ = "0.1.0"
