"""The one secret scrubber: replaces known secret values in a text.

Pure: holds no state. `mdbackup.logs` keeps the process's registry of secrets
for log lines; `mdbackup.git` passes the credentials' secrets explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each non-empty secret replaced by `***`.

    Longer secrets are replaced first, so a secret that contains another one is
    masked whole. Empty strings are ignored. Never raises; `text` without any
    secret is returned unchanged.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
