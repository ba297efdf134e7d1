"""The on-disk layout of a session recording (documented in ``docs/recording.md``).

A session is a directory::

    meta.json            configuration, versions, channel info, sizes, hashes (JSON, atomic)
    samples.f64          raw samples, rows of n_channels little-endian float64
    samples_index.i64    one row per received block: first_index, n_samples, row_offset (<i8)
    cycles.rec           one row of ``cycle_dtype(n_features, n_states, n_contacts, n_outputs)``
                         per cycle
    events.jsonl         one JSON object per line (interlock events, annotations, link errors)

The binary streams have no header: every row has a fixed size, so a stream cut short by a
crash is simply shorter and the reader keeps ``floor(size / row_size)`` rows.

This module holds the names, dtypes and small helpers shared by the writer and the reader.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..provenance import package_versions, sha256_file
from ..records import cycle_dtype

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "META_FILE", "SAMPLES_FILE", "INDEX_FILE", "CYCLES_FILE",
    "EVENTS_FILE", "SAMPLE_DTYPE", "INDEX_DTYPE", "INDEX_COLUMNS", "to_jsonable",
    "write_json_atomic", "sha256_file", "dtype_to_json", "dtype_from_json", "package_versions",
    "normalise_event", "config_sha256", "cycle_layout",
]

#: Value of ``meta.json["format"]``: tells a session directory from any other JSON file.
FORMAT_NAME = "neuroloop-session"
#: Layout version. A reader refuses a recording with a larger number (upgrade neuroloop)
#: and reads every older one.
#:
#: * 1 (neuroloop 0.1.0): ``cycles.rec`` rows without ``outputs``; ``sizes`` has
#:   ``n_features``, ``n_states``, ``n_contacts``.
#: * 2: rows carry ``outputs: float64[n_outputs]`` (the decoder's continuous outputs);
#:   ``sizes.n_outputs`` and ``outputs: {"names", "units"}`` in ``meta.json``.
FORMAT_VERSION = 2

META_FILE = "meta.json"
SAMPLES_FILE = "samples.f64"
INDEX_FILE = "samples_index.i64"
CYCLES_FILE = "cycles.rec"
EVENTS_FILE = "events.jsonl"

#: Raw samples: little-endian float64, rows of ``n_channels`` values, microvolts.
SAMPLE_DTYPE = np.dtype("<f8")
#: One row per block handed to ``on_samples``: [first_index, n_samples, row_offset].
INDEX_DTYPE = np.dtype("<i8")
INDEX_COLUMNS = ("first_index", "n_samples", "row_offset")


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` into plain JSON types (deterministically).

    Dataclasses become dicts, enums their name, tuples/sets lists, paths strings, NumPy
    scalars and arrays Python numbers and lists. Non-finite floats, which strict JSON cannot
    hold, become the strings ``"nan"``, ``"inf"`` and ``"-inf"``. Objects with a ``to_dict``
    method are converted through it; anything else becomes its ``repr``.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.dtype):
        return dtype_to_json(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v) for v in sorted(obj, key=repr)]
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_jsonable(to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return repr(obj)


def write_json_atomic(path: Path, obj: Any, *, fsync: bool = True) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``.

    A reader therefore sees either the old or the new file, never a half-written one.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if fsync:
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(dir_fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(dir_fd)


def config_sha256(config: Any) -> str:
    """Hex SHA-256 of a configuration as ``meta.json`` stores it (canonical JSON of
    :func:`to_jsonable`, sorted keys), so a reader can tell an edited ``config`` from the one
    the session ran with."""
    text = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cycle_layout(format_version: int, n_features: int, n_states: int, n_contacts: int,
                 n_outputs: int = 0) -> np.dtype:
    """The ``cycles.rec`` row layout of recording format ``format_version`` for these sizes.

    Format 1 has no ``outputs`` field (so ``n_outputs`` must be 0); format 2 is
    :func:`~neuroloop.records.cycle_dtype`.
    """
    current = cycle_dtype(n_features, n_states, n_contacts, n_outputs)
    if format_version >= 2:
        return current
    if n_outputs:
        raise ValueError(f"recording format {format_version} stores no outputs "
                         f"(n_outputs={n_outputs})")
    fields: Mapping[str, tuple[Any, ...]] = current.fields or {}
    return np.dtype([(name, fields[name][0]) for name in current.names or ()
                     if name != "outputs"], align=False)


def dtype_to_json(dtype: np.dtype) -> list[list[Any]]:
    """A structured dtype as JSON: ``[[name, format, shape], ...]`` (shape ``[]`` for scalars)."""
    out: list[list[Any]] = []
    for name in dtype.names or ():
        sub = dtype.fields[name][0]  # type: ignore[index]
        if sub.subdtype is not None:
            base, shape = sub.subdtype
            out.append([name, base.str, list(shape)])
        else:
            out.append([name, sub.str, []])
    return out


def dtype_from_json(spec: Any) -> np.dtype:
    """Inverse of :func:`dtype_to_json` (packed, like ``cycle_dtype``). Raises ``ValueError``."""
    if not isinstance(spec, list) or not spec:
        raise ValueError("expected a non-empty list of [name, format, shape]")
    fields: list[tuple[Any, ...]] = []
    for item in spec:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and isinstance(item[1], str) and isinstance(item[2], list)):
            raise ValueError(f"bad field entry {item!r}")
        name, fmt, shape = item
        if shape:
            fields.append((name, fmt, tuple(int(s) for s in shape)))
        else:
            fields.append((name, fmt))
    return np.dtype(fields, align=False)


def normalise_event(event: Any, cycle: int, now_ns: int) -> dict[str, Any]:
    """The JSON form of one event as stored in ``events.jsonl``.

    ``cycle``, ``time_ns`` and ``kind`` come first; ``cycle`` and ``time_ns`` are taken from
    the event when it has them, else from the arguments (the cycle in progress and the last
    cycle's ``now_ns``). ``kind`` is the event's own, else ``"interlock"`` when it has a
    ``reason`` and ``"other"`` otherwise.
    """
    body = to_jsonable(event)
    if not isinstance(body, dict):
        body = {"value": body}
    kind = body.get("kind") or ("interlock" if "reason" in body else "other")
    out: dict[str, Any] = {"cycle": body.get("cycle", int(cycle)),
                           "time_ns": body.get("time_ns", int(now_ns)), "kind": kind}
    for key, value in body.items():
        if key not in out:
            out[key] = value
    return out
