"""Small helpers shared by the OSM loader and the graph cache (no heavy imports)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[str, int], None]  # (stage, items done so far)


def file_sha256(path: Path) -> str:
    """SHA-256 hex of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
