"""Reading the small text files of ``/proc`` and the cgroup file system.

Every reader of the kernel's bookkeeping (CPU times, mounts, quotas, socket
tables) goes through :func:`read_text`, which returns None instead of
raising when a file is missing or unreadable (another OS, a process that
ended, a container without the file).
"""

from __future__ import annotations

__all__ = ["read_text"]


def read_text(path: str) -> str | None:
    """The whole text of *path*, or None when it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as src:
            return src.read()
    except OSError:
        return None
