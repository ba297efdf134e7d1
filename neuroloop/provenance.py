"""Provenance of a session: file digests and the versions a replay depends on.

Ground floor: the runtime records them when a session starts, the recording reader checks
them, and neither needs the other for it.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

__all__ = ["sha256_file", "package_versions"]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages whose behaviour a replay depends on."""
    import platform

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("numba", "scipy", "pyedflib", "serial"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "unknown"))
        except Exception:  # pragma: no cover - optional package missing
            versions[name] = "not installed"
    from . import __version__

    versions["neuroloop"] = __version__
    return versions
