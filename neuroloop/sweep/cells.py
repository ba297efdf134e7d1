"""A sweep cell and its content hash: parameters + input file digests + code version.

The hash is the cell's identity: a rerun skips a cell whose hash already has a finished row,
and a change to any parameter, to any byte of an input file (a recording, an EDF file, a
decoder, a scenario file) or to the code gives a new cell.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..provenance import package_versions, sha256_file

__all__ = ["Cell", "cell_hash", "code_version", "path_digest"]


@dataclass(frozen=True)
class Cell:
    """One task of a sweep.

    Attributes
    ----------
    index : int
        Position in the spec's expansion (rows are written in this order).
    mode : str
        Registered mode name (:mod:`neuroloop.sweep.modes`).
    params : dict
        Parameters as the spec wrote them (paths relative to the spec file), including the
        scenario overrides (dotted keys); these are the row's parameter columns.
    resolved : dict
        The same parameters with paths made absolute: what the runner receives.
    inputs : dict
        Parameter name -> SHA-256 digest of the file or recording it names.
    cell_id : str
        Hex SHA-256 of mode, parameters, input digests and code version.
    inputs_sha256 : str
        Hex SHA-256 of the input digests alone.
    time_limit_s : float
        Wall-clock limit of the cell on its worker.
    """

    index: int
    mode: str
    params: Mapping[str, Any]
    resolved: Mapping[str, Any]
    inputs: Mapping[str, str]
    cell_id: str
    inputs_sha256: str
    time_limit_s: float

    def task(self) -> dict[str, Any]:
        """What is shipped to a worker (plain data)."""
        return {"index": self.index, "mode": self.mode, "params": dict(self.resolved),
                "cell_id": self.cell_id, "time_limit_s": self.time_limit_s}


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def cell_hash(mode: str, params: Mapping[str, Any], inputs: Mapping[str, str],
              code: str) -> tuple[str, str]:
    """``(cell_id, inputs_sha256)`` of a cell (hex SHA-256 each).

    Path parameters enter by their digest, not by where the file is: a recording moved to
    another directory (or seen from another machine) keeps its cells.
    """
    inputs_sha = hashlib.sha256(_canonical(dict(inputs))).hexdigest()
    plain = {k: v for k, v in params.items() if k not in inputs}
    cid = hashlib.sha256(_canonical({"mode": mode, "params": plain, "inputs": inputs_sha,
                                     "code": code})).hexdigest()
    return cid, inputs_sha


@lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def path_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, or of a directory's regular files (relative names and digests,
    sorted); cached per (path, size, mtime) within a process."""
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(p).as_posix()}\0"
                     f"{_file_digest(str(f), st.st_size, st.st_mtime_ns)}\n".encode())
        return h.hexdigest()
    st = p.stat()
    return _file_digest(str(p), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``"<version>+<12 hex>"``: the package version and a digest of every source and
    scenario file of the installed ``neuroloop`` package and of the versions of the
    libraries a result depends on (NumPy, Numba, SciPy, ...). Two machines that print the
    same code version compute the same cells."""
    import neuroloop

    root = Path(neuroloop.__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.suffix in (".py", ".toml") and f.is_file() and "__pycache__" not in f.parts:
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    versions = package_versions()
    h.update(_canonical(versions))
    return f"{versions['neuroloop']}+{h.hexdigest()[:12]}"
