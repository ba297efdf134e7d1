"""Session recorder: a :class:`~neuroloop.records.LoopListener` that writes a session
directory (layout in :mod:`neuroloop.io.format` and ``docs/recording.md``).

Cost inside the control cycle: ``on_samples`` and ``on_cycle`` only copy into preallocated
ring buffers (a few microseconds). A background writer thread drains the rings to the files
every ``flush_interval_s`` (and earlier when a ring is half full), so a crash, even
``kill -9``, loses at most the last flush interval. The writer thread spends its time in
``write`` system calls, which release the GIL; ``os.fsync`` is optional (``fsync=True``) and
also runs in the writer thread.

Crash consistency: the writer snapshots the cycle ring, then the block index, then the
samples, and writes them in the opposite order, so on disk every index row refers to
samples that are there and every cycle's samples are there.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import math
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordingError
from ..records import LoopListener, cycle_dtype
from .format import (
    CYCLES_FILE,
    EVENTS_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_COLUMNS,
    INDEX_DTYPE,
    INDEX_FILE,
    META_FILE,
    SAMPLE_DTYPE,
    SAMPLES_FILE,
    dtype_to_json,
    normalise_event,
    package_versions,
    sha256_file,
    to_jsonable,
    write_json_atomic,
)

__all__ = ["SessionRecorder", "bench_recorder"]

_F8 = np.dtype(np.float64)
if _F8 != SAMPLE_DTYPE:  # pragma: no cover - big-endian hosts take the checked path
    _F8 = None  # type: ignore[assignment]
#: One block-index row: first_index, n_samples, row_offset (little-endian int64).
_INDEX_ROW = struct.Struct("<qqq")

# Keys of the loop's on_start meta that the recorder maps into its own meta.json layout;
# every other key is kept verbatim under meta["run"].
_CONSUMED_KEYS = frozenset({
    "info", "channel_names", "channel_types", "sampling_rate_hz", "unit", "intention_names",
    "n_channels", "n_features", "n_states", "n_contacts", "n_outputs", "output_names",
    "output_units", "sizes", "cycle_dtype", "decoder_path", "decoder_file", "decoder_sha256",
    "scenario", "config", "hop_samples", "versions", "channels",
})
#: Keys of meta.json written by the recorder itself (a loop key with one of these names is
#: kept under meta["run"] instead).
_RESERVED_KEYS = frozenset({
    "format", "format_version", "created_utc", "closed_cleanly", "versions", "scenario",
    "config", "channels", "intention_names", "hop_samples", "decoder", "sizes", "outputs",
    "sample_dtype", "cycle_dtype", "streams", "flush_interval_s", "counts", "summary",
    "stopped_utc", "recorder", "writer_error", "run",
})


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


class _Ring:
    """Single-producer single-consumer ring of fixed-size rows (GIL-atomic head/tail ints).

    The producer (control thread) copies rows in and then advances ``head``; the consumer
    (writer thread) writes ``[tail, head)`` to a file and then advances ``tail``. The
    producer only ever writes into free space, so the two never touch the same rows.
    """

    __slots__ = ("capacity", "buf", "row_bytes", "bytes", "head", "tail")

    def __init__(self, capacity: int, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.capacity = int(capacity)
        self.buf = np.empty((self.capacity, *row_shape), dtype=dtype)
        flat = self.buf.reshape(-1).view(np.uint8)
        flat.fill(0)  # touch every page now, not in the control cycle
        self.row_bytes = int(flat.shape[0] // self.capacity)
        self.bytes = flat.data  # memoryview(flat); numpy's stubs make arrays Buffers only on 3.12+
        self.head = 0
        self.tail = 0

    def free(self) -> int:
        return self.capacity - (self.head - self.tail)

    def used(self) -> int:
        return self.head - self.tail

    def push(self, src: memoryview, n: int) -> None:
        """Copy ``n`` rows given as a flat byte view; the caller checked :meth:`free`.

        A ``memoryview`` slice assignment is a plain ``memcpy`` that keeps the GIL, so the
        writer thread cannot slip in and delay the control thread in the middle of a copy
        (NumPy releases the GIL for large copies).
        """
        rb = self.row_bytes
        i = self.head % self.capacity
        first = self.capacity - i
        if n <= first:
            self.bytes[i * rb:(i + n) * rb] = src
        else:
            self.bytes[i * rb:] = src[:first * rb]
            self.bytes[:(n - first) * rb] = src[first * rb:]
        self.head += n

    def drain(self, fd: int, upto: int) -> int:
        """Write rows ``[tail, upto)`` to ``fd``; return the number of bytes written."""
        start = self.tail
        if upto <= start:
            return 0
        total = 0
        while start < upto:
            i = start % self.capacity
            n = min(upto - start, self.capacity - i)
            total += _write_all(fd, self.bytes[i * self.row_bytes:(i + n) * self.row_bytes])
            start += n
        self.tail = upto
        return total


def _write_all(fd: int, view: memoryview) -> int:
    """``os.write`` until every byte of ``view`` is written (regular files rarely need more
    than one call)."""
    done = 0
    size = len(view)
    while done < size:
        done += os.write(fd, view[done:])
    return size


class SessionRecorder(LoopListener):
    """Record a session: samples, cycle records, events and metadata.

    Parameters
    ----------
    directory : str or Path
        Session directory; created if needed. It must not already hold a recording.
    flush_interval_s : float
        The writer thread flushes the rings to the files at least this often, s. A crash
        loses at most this much. Must be in (0, 1].
    fsync : bool
        Also ``os.fsync`` the files after each flush (survives power loss, costs disk
        bandwidth; done in the writer thread, never in the control cycle).
    buffer_s : float or None
        Capacity of the in-memory rings in seconds of signal (default: ``max(4 s,
        4 * flush_interval_s)``). When the disk falls this far behind, the control thread
        waits for it (counted in :attr:`stats` as ``producer_waits``).
    clock_ns : callable
        Monotonic clock (ns) used only to time flushes in :attr:`stats`.
    created_utc : str or None
        Creation time written to ``meta.json`` (default: now). Fixed in tests for
        byte-identical metadata.

    Notes
    -----
    Keys understood in the ``on_start`` metadata (all optional; anything else is kept
    under ``meta["run"]``): ``info`` (a :class:`~neuroloop.acquisition.base.SourceInfo` or
    a dict with its fields) or the flat keys ``channel_names``, ``channel_types``,
    ``sampling_rate_hz``, ``unit``, ``intention_names``; ``n_features``, ``n_states``,
    ``n_contacts``, ``n_outputs`` (or ``cycle_dtype``; otherwise taken from the first cycle
    record); ``output_names`` and ``output_units``, the decoder's continuous outputs (their
    number is ``n_outputs``, 0 when neither is given; without names the outputs are called
    ``output0``, ``output1``, ... with unit ``""``, unknown);
    ``scenario``, ``config``, ``hop_samples``; ``decoder_path`` (hashed with SHA-256) or
    ``decoder_sha256``; ``channels`` as ``{"names", "types", "unit", "sampling_rate_hz"}``.
    Any other key is stored at the top level of ``meta.json`` as given (in JSON form).

    Events passed to :meth:`on_events` are handed over: the recorder serialises them in the
    writer thread, so do not mutate them afterwards.
    """

    def __init__(self, directory: str | os.PathLike[str], *, flush_interval_s: float = 0.5,
                 fsync: bool = False, buffer_s: float | None = None,
                 clock_ns: Callable[[], int] = time.monotonic_ns,
                 created_utc: str | None = None) -> None:
        if not (0.0 < float(flush_interval_s) <= 1.0):
            raise ValueError(f"flush_interval_s must be in (0, 1] s, got {flush_interval_s}")
        self.directory = Path(directory)
        self.flush_interval_s = float(flush_interval_s)
        self.fsync = bool(fsync)
        self.buffer_s = float(buffer_s) if buffer_s is not None else max(
            4.0, 4.0 * self.flush_interval_s)
        if not self.buffer_s > 0:
            raise ValueError(f"buffer_s must be positive, got {buffer_s}")
        self._clock_ns = clock_ns
        self._created_utc = created_utc
        self.meta: dict[str, Any] = {}
        self.stats: dict[str, Any] = {"flushes": 0, "bytes_written": 0, "producer_waits": 0,
                                      "max_flush_us": 0.0}
        self._samples: _Ring | None = None
        self._index: _Ring | None = None
        self._cycles: _Ring | None = None
        self._ready = False  # started, not stopped, no writer error: fast paths allowed
        self._n_channels = -1
        self._last_record: np.ndarray | None = None
        self._last_record_bytes: memoryview | None = None
        self._events: collections.deque[tuple[int, int, list[Any]]] = collections.deque()
        self._fds: dict[str, int] = {}
        self._started = False
        self._stopped = False
        self._next_first_index = 0
        self._n_samples = 0
        self._n_blocks = 0
        self._n_events = 0
        self._meta_dirty = False
        self._start_cycle_dtype: np.dtype | None = None
        self._output_names: list[str] | None = None  # as the loop gave them (on_start)
        self._output_units: list[str] | None = None
        self._wake = threading.Event()
        self._drained = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._io_lock = threading.Lock()

    # -- LoopListener -----------------------------------------------------------------------
    def on_start(self, meta: dict) -> None:
        """Create the directory, write ``meta.json`` and start the writer thread."""
        if self._started:
            raise RecordingError(f"recorder for {self.directory} was already started; use a new "
                                 "SessionRecorder per session")
        d = self.directory
        if (d / META_FILE).exists():
            raise RecordingError(f"{d} already holds a recording ({META_FILE}); record into a "
                                 "new directory or remove the old one")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"cannot create recording directory {d}: "
                                 f"{exc.strerror or exc}; choose a writable path") from exc
        self.meta = self._build_meta(meta)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_BINARY", 0)
            for key, name in (("samples", SAMPLES_FILE), ("index", INDEX_FILE),
                              ("cycles", CYCLES_FILE), ("events", EVENTS_FILE)):
                self._fds[key] = os.open(d / name, flags, 0o644)
            write_json_atomic(d / META_FILE, self.meta, fsync=self.fsync)
        except OSError as exc:
            self._close_fds()
            raise RecordingError(f"cannot write recording in {d}: {exc.strerror or exc}; "
                                 "check the path and free disk space") from exc
        self._started = True
        self._allocate_from_meta()
        self._ready = True
        self._thread = threading.Thread(target=self._writer_main, name="neuroloop-recorder",
                                        daemon=True)
        self._thread.start()

    def on_armed(self, armed_ns: int) -> None:
        """Keep the arming time replay repeats; ``meta.json`` is rewritten by the writer
        thread at its next flush (nothing slow in the control thread before cycle 0)."""
        if self._started and not self._stopped:
            self.meta["armed_ns"] = int(armed_ns)  # an existing key: the dict keeps its size
            self._meta_dirty = True

    def on_samples(self, data: np.ndarray, first_index: int) -> None:
        """Copy one block of raw samples (n, n_channels) into the ring (no allocation)."""
        ring = self._samples
        index = self._index
        if self._ready and ring is not None and index is not None and data.dtype is _F8:
            # Fast path (every cycle of a normal run): one memcpy and a packed index row.
            mv = data.data  # memoryview(data)
            shape = data.shape
            n = shape[0] if mv.ndim == 2 else 0
            cap = ring.capacity
            if (mv.c_contiguous and n and shape[1] == self._n_channels
                    and first_index >= self._next_first_index and n <= cap // 2
                    and cap - (ring.head - ring.tail) >= n
                    and index.capacity - (index.head - index.tail) >= 1):
                src = mv.cast("B")
                rb = ring.row_bytes
                i = ring.head % cap
                room = cap - i
                if n <= room:
                    ring.bytes[i * rb:(i + n) * rb] = src
                else:
                    ring.bytes[i * rb:] = src[:room * rb]
                    ring.bytes[:(n - room) * rb] = src[room * rb:]
                ring.head += n
                row_offset = self._n_samples
                _INDEX_ROW.pack_into(index.bytes, (index.head % index.capacity) * index.row_bytes,
                                     first_index, n, row_offset)
                index.head += 1
                self._n_samples = row_offset + n
                self._n_blocks += 1
                self._next_first_index = first_index + n
                if (ring.head - ring.tail) * 2 > cap:
                    self._wake.set()
                return
        self._on_samples_slow(data, first_index)

    def _on_samples_slow(self, data: np.ndarray, first_index: int) -> None:
        """Checks, conversions, first-block allocation and waiting for room."""
        if self._error is not None:
            self._raise_writer_error()
        if not self._started or self._stopped:
            return
        if data.dtype != SAMPLE_DTYPE or not data.flags.c_contiguous or data.ndim != 2:
            data = np.ascontiguousarray(data, dtype=SAMPLE_DTYPE).reshape(data.shape[0], -1)
        n = data.shape[0]
        if n == 0:
            return
        ring = self._samples
        if ring is None:
            ring = self._allocate_samples(data.shape[1])
        elif data.shape[1] != ring.buf.shape[1]:
            raise RecordingError(f"recording {self.directory}: a block has {data.shape[1]} "
                                 f"channels, the session has {ring.buf.shape[1]}")
        if first_index < self._next_first_index:
            raise RecordingError(f"recording {self.directory}: samples out of order (block starts "
                                 f"at {first_index}, previous ended at {self._next_first_index})")
        row_offset = self._n_samples
        src = data.data.cast("B")
        rb = ring.row_bytes
        # Blocks larger than half the ring go in pieces (each waits for room if needed).
        half = max(1, ring.capacity // 2)
        start = 0
        while start < n:
            stop = min(n, start + half)
            if ring.free() < stop - start:
                self._wait_for_room(ring, stop - start)
            ring.push(src[start * rb:stop * rb], stop - start)
            start = stop
        index = self._index
        assert index is not None
        if index.free() < 1:
            self._wait_for_room(index, 1)
        _INDEX_ROW.pack_into(index.bytes, (index.head % index.capacity) * index.row_bytes,
                             first_index, n, row_offset)
        index.head += 1
        self._n_samples = row_offset + n
        self._n_blocks += 1
        self._next_first_index = first_index + n
        if ring.used() * 2 > ring.capacity:
            self._wake.set()

    def on_cycle(self, record: np.ndarray) -> None:
        """Copy one cycle record into the ring (no allocation)."""
        ring = self._cycles
        last = self._last_record_bytes
        if (self._ready and record is self._last_record and ring is not None and last is not None
                and ring.capacity - (ring.head - ring.tail) >= 1):
            # Fast path: the loop hands the same reused record view every cycle.
            rb = ring.row_bytes
            i = ring.head % ring.capacity
            ring.bytes[i * rb:(i + 1) * rb] = last
            ring.head += 1
            if (ring.head - ring.tail) * 2 > ring.capacity:
                self._wake.set()
            return
        self._on_cycle_slow(record)

    def _on_cycle_slow(self, record: np.ndarray) -> None:
        if self._error is not None:
            self._raise_writer_error()
        if not self._started or self._stopped:
            return
        if not isinstance(record, np.ndarray):
            record = np.asarray(record)
        ring = self._cycles
        if ring is None:
            ring = self._allocate_cycles(record.dtype)
        elif record.dtype != ring.buf.dtype:
            if self.n_cycles == 0:
                have, want = _sizes_text(record.dtype), _sizes_text(ring.buf.dtype)
                raise RecordingError(f"recording {self.directory}: the first cycle record has "
                                     f"sizes {have} but the session said {want} at start")
            raise RecordingError(f"recording {self.directory}: cycle record dtype changed during "
                                 "the session")
        if record.flags.c_contiguous:
            # Cache the byte view of the loop's reused record: later cycles take the fast path.
            self._last_record = record
            self._last_record_bytes = record.reshape(1).view(np.uint8).data
            data = self._last_record_bytes
        else:
            self._last_record = None
            data = np.ascontiguousarray(record).reshape(1).view(np.uint8).data
        if ring.free() < 1:
            self._wait_for_room(ring, 1)
        ring.push(data, 1)
        if ring.used() * 2 > ring.capacity:
            self._wake.set()

    def on_events(self, events: list) -> None:
        """Queue interlock events, annotations or link errors (dicts or objects with
        ``to_dict``) for ``events.jsonl``. Missing ``cycle``/``time_ns`` are filled with the
        index of the cycle in progress and the last cycle's ``now_ns``."""
        if self._error is not None:
            self._raise_writer_error()
        if not self._started or self._stopped or not events:
            return
        cycle = self._cycles.head if self._cycles is not None else 0
        now_ns = -1
        ring = self._cycles
        if ring is not None and ring.head > 0 and "now_ns" in (ring.buf.dtype.names or ()):
            now_ns = int(ring.buf[(ring.head - 1) % ring.capacity]["now_ns"])
        self._events.append((cycle, now_ns, list(events)))
        self._n_events += len(events)

    def on_stop(self, summary: dict) -> None:
        """Flush everything, close the files and rewrite ``meta.json`` with the summary and
        ``closed_cleanly: true``."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._ready = False
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        error = self._error
        if error is None:
            try:
                self._flush()
            except BaseException as exc:  # disk full at the very end
                error = exc
        self._close_fds()
        meta = dict(self.meta)
        meta["closed_cleanly"] = error is None
        meta["stopped_utc"] = _utc_now()
        meta["counts"] = {"samples": self._n_samples, "blocks": self._n_blocks,
                          "cycles": self._cycles.head if self._cycles is not None else 0,
                          "events": self._n_events}
        meta["summary"] = to_jsonable(summary)
        meta["recorder"] = {"flush_interval_s": self.flush_interval_s, "fsync": self.fsync,
                            "producer_waits": self.stats["producer_waits"],
                            "flushes": self.stats["flushes"]}
        if error is not None:
            meta["writer_error"] = f"{type(error).__name__}: {error}"
        self.meta = meta
        try:
            write_json_atomic(self.directory / META_FILE, meta, fsync=self.fsync)
        except OSError as exc:
            raise RecordingError(f"cannot finish recording {self.directory}: "
                                 f"{exc.strerror or exc}") from exc
        if error is not None:
            self._raise_writer_error(error)

    def close(self, summary: dict | None = None) -> None:
        """Stop recording outside a loop (same as ``on_stop(summary or {})``)."""
        self.on_stop(summary or {})

    # -- counters ---------------------------------------------------------------------------
    @property
    def n_cycles(self) -> int:
        """Cycle records received so far."""
        return self._cycles.head if self._cycles is not None else 0

    @property
    def n_samples(self) -> int:
        """Sample rows received so far."""
        return self._n_samples

    # -- metadata ---------------------------------------------------------------------------
    def _build_meta(self, loop_meta: Mapping[str, Any]) -> dict[str, Any]:
        loop_meta = dict(loop_meta or {})
        info = loop_meta.get("info")
        info_d: dict[str, Any] = {}
        if info is not None:
            info_d = dict(to_jsonable(info)) if not isinstance(info, Mapping) else dict(info)
        chan_in = loop_meta.get("channels")
        if isinstance(chan_in, Mapping):  # {"names", "types", "unit", "sampling_rate_hz"}
            for src, dst in (("names", "channel_names"), ("types", "channel_types"),
                             ("unit", "unit"), ("sampling_rate_hz", "sampling_rate_hz"),
                             ("n_channels", "n_channels")):
                if src in chan_in and dst not in info_d:
                    info_d[dst] = chan_in[src]

        def pick(key: str, default: Any = None) -> Any:
            if key in loop_meta:
                return loop_meta[key]
            return info_d.get(key, default)

        names = pick("channel_names")
        types = pick("channel_types")
        rate = pick("sampling_rate_hz")
        n_channels = pick("n_channels")
        channels: dict[str, Any] = {
            "names": [str(n) for n in names] if names is not None else None,
            "types": [str(t) for t in types] if types is not None else None,
            "unit": str(pick("unit", "uV")),
            "sampling_rate_hz": float(rate) if rate is not None else None,
            "n_channels": (int(n_channels) if n_channels is not None
                           else (len(names) if names is not None else None)),
        }
        sizes: dict[str, Any] = {"n_features": None, "n_states": None, "n_contacts": None,
                                 "n_outputs": None}
        sizes_in = loop_meta.get("sizes")
        given = sizes_in if isinstance(sizes_in, Mapping) else {}
        for key in sizes:
            value = loop_meta.get(key, given.get(key))
            sizes[key] = int(value) if value is not None else None
        out_names = loop_meta.get("output_names")
        out_units = loop_meta.get("output_units")
        self._output_names = [str(n) for n in out_names] if out_names is not None else None
        self._output_units = [str(u) for u in out_units] if out_units is not None else None
        if sizes["n_outputs"] is None:
            sizes["n_outputs"] = len(self._output_names) if self._output_names is not None else 0
        cdt = loop_meta.get("cycle_dtype")
        cycle_descr = None
        if isinstance(cdt, np.dtype):
            sizes.update(_sizes_from_dtype(cdt))
            self._start_cycle_dtype = cdt
        elif all(v is not None for v in sizes.values()):
            self._start_cycle_dtype = cycle_dtype(sizes["n_features"], sizes["n_states"],
                                                  sizes["n_contacts"], sizes["n_outputs"])
        if self._start_cycle_dtype is not None:
            cycle_descr = dtype_to_json(self._start_cycle_dtype)
        decoder_path = loop_meta.get("decoder_path", loop_meta.get("decoder_file"))
        decoder: dict[str, Any] | None = None
        if decoder_path is not None or loop_meta.get("decoder_sha256") is not None:
            digest = loop_meta.get("decoder_sha256")
            if digest is None and decoder_path is not None and Path(decoder_path).is_file():
                digest = sha256_file(decoder_path)
            decoder = {"path": str(decoder_path) if decoder_path is not None else None,
                       "sha256": digest}
        hop = loop_meta.get("hop_samples")
        config = to_jsonable(loop_meta.get("config"))
        if hop is None and isinstance(config, Mapping):
            dsp = config.get("dsp")
            if isinstance(dsp, Mapping) and isinstance(dsp.get("hop_samples"), int):
                hop = dsp["hop_samples"]
        versions = package_versions()
        if isinstance(loop_meta.get("versions"), Mapping):
            versions.update({str(k): str(v) for k, v in loop_meta["versions"].items()})
        own: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_utc": self._created_utc or _utc_now(),
            "closed_cleanly": False,
            "versions": versions,
            "scenario": to_jsonable(loop_meta.get("scenario")),
            "config": config,
            "channels": channels,
            "intention_names": [str(n) for n in (pick("intention_names", ()) or ())],
            "hop_samples": int(hop) if hop is not None else None,
            "decoder": decoder,
            "sizes": sizes,
            "outputs": self._outputs_meta(sizes["n_outputs"]),
            "sample_dtype": SAMPLE_DTYPE.str,
            "cycle_dtype": cycle_descr,
            "streams": {"samples": SAMPLES_FILE, "samples_index": INDEX_FILE,
                        "samples_index_columns": list(INDEX_COLUMNS), "cycles": CYCLES_FILE,
                        "events": EVENTS_FILE},
            "flush_interval_s": self.flush_interval_s,
        }
        # Every other key of the loop's metadata is kept at the top level, as given (JSON
        # form); one that collides with a key of the format goes under "run".
        extra = {k: v for k, v in loop_meta.items() if k not in _CONSUMED_KEYS}
        meta: dict[str, Any] = {}
        run: dict[str, Any] = {}
        for key, value in extra.items():
            if key in _RESERVED_KEYS:
                run[key] = value
            else:
                meta[key] = value
        meta = {**own, **to_jsonable(meta)}
        if run:
            meta["run"] = to_jsonable(run)
        return meta

    def _outputs_meta(self, n_outputs: int) -> dict[str, list[str]]:
        """``meta.json["outputs"]``: the names and units of the ``n_outputs`` values of the
        records' ``outputs`` field."""
        names, units = self._output_names, self._output_units
        if names is None:
            names = [f"output{k}" for k in range(n_outputs)]
        if units is None:
            units = [""] * len(names)
        if len(names) != n_outputs or len(units) != n_outputs:
            raise RecordingError(
                f"recording {self.directory}: {len(names)} output names and {len(units)} "
                f"units for {n_outputs} outputs in each cycle record; pass one name and one "
                "unit per decoder output")
        return {"names": list(names), "units": list(units)}

    def _cycles_per_s(self) -> float:
        rate = self.meta["channels"].get("sampling_rate_hz")
        hop = self.meta.get("hop_samples")
        if rate and hop:
            return float(rate) / float(hop)
        return 100.0

    def _allocate_from_meta(self) -> None:
        n_ch = self.meta["channels"].get("n_channels")
        if n_ch:
            self._allocate_samples(int(n_ch))
        if self._start_cycle_dtype is not None:
            self._allocate_cycles(self._start_cycle_dtype, first_time=True)

    def _allocate_samples(self, n_channels: int) -> _Ring:
        rate = self.meta["channels"].get("sampling_rate_hz") or 1000.0
        cap = max(4096, math.ceil(float(rate) * self.buffer_s))
        self._samples = _Ring(cap, (n_channels,), SAMPLE_DTYPE)
        self._n_channels = int(n_channels)
        n_index = max(1024, math.ceil(self._cycles_per_s() * self.buffer_s * 4))
        self._index = _Ring(n_index, (len(INDEX_COLUMNS),), INDEX_DTYPE)
        if self.meta["channels"].get("n_channels") is None:
            self.meta["channels"]["n_channels"] = int(n_channels)
            self._meta_dirty = True
        return self._samples

    def _allocate_cycles(self, dtype: np.dtype, first_time: bool = False) -> _Ring:
        cap = max(64, math.ceil(self._cycles_per_s() * self.buffer_s * 2))
        self._cycles = _Ring(cap, (), dtype)
        if not first_time and self.meta.get("cycle_dtype") is None:
            sizes = _sizes_from_dtype(dtype)
            self.meta["sizes"].update(sizes)
            self.meta["outputs"] = self._outputs_meta(sizes["n_outputs"])
            self.meta["cycle_dtype"] = dtype_to_json(dtype)
            self._meta_dirty = True
        return self._cycles

    # -- writer thread ----------------------------------------------------------------------
    def _writer_main(self) -> None:
        # A live loop may run under SCHED_FIFO, which this thread would inherit: disk I/O
        # must never compete with the control thread, so drop back to the normal scheduler.
        if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_OTHER"):
            try:
                if os.sched_getscheduler(0) != os.SCHED_OTHER:
                    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            except OSError:  # pragma: no cover - not permitted: keep the inherited policy
                pass
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self._flush()
            except BaseException as exc:
                self._error = exc
                self._ready = False
                self._drained.set()
                return
            self._drained.set()
            if self._stopping:
                return

    def _flush(self) -> None:
        """Drain every ring to its file (writer thread, or the control thread at stop)."""
        with self._io_lock:
            t0 = self._clock_ns()
            if self._meta_dirty:
                self._meta_dirty = False
                write_json_atomic(self.directory / META_FILE, self.meta, fsync=self.fsync)
            # Snapshot heads: cycles, then index, then samples (see module docstring).
            c_head = self._cycles.head if self._cycles is not None else 0
            i_head = self._index.head if self._index is not None else 0
            s_head = self._samples.head if self._samples is not None else 0
            n_events = len(self._events)
            written = 0
            if self._samples is not None:
                written += self._samples.drain(self._fds["samples"], s_head)
            if self._index is not None:
                written += self._index.drain(self._fds["index"], i_head)
            if self._cycles is not None:
                written += self._cycles.drain(self._fds["cycles"], c_head)
            if n_events:
                lines: list[str] = []
                for _ in range(n_events):
                    cycle, now_ns, events = self._events.popleft()
                    lines.extend(_event_line(ev, cycle, now_ns) for ev in events)
                data = "".join(lines).encode("utf-8")
                written += _write_all(self._fds["events"], memoryview(data))
            if self.fsync and written:
                for fd in self._fds.values():
                    os.fsync(fd)
            self.stats["flushes"] += 1
            self.stats["bytes_written"] += written
            dt_us = (self._clock_ns() - t0) / 1000.0
            if dt_us > self.stats["max_flush_us"]:
                self.stats["max_flush_us"] = dt_us

    def _wait_for_room(self, ring: _Ring, n: int) -> None:
        """The disk fell ``buffer_s`` behind: wake the writer and wait until it drained."""
        self.stats["producer_waits"] += 1
        while ring.free() < n:
            if self._error is not None:
                self._raise_writer_error()
            self._drained.clear()
            self._wake.set()
            self._drained.wait(1.0)

    def _raise_writer_error(self, error: BaseException | None = None) -> None:
        exc = error or self._error
        assert exc is not None
        if isinstance(exc, RecordingError):
            raise exc
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RecordingError(f"recording {self.directory} failed while writing: {detail}; "
                             "check free disk space and permissions") from exc

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass
        self._fds.clear()


def _sizes_text(dtype: np.dtype) -> str:
    """``n_features=.., n_states=.., ...`` of a record dtype (for messages), or its fields."""
    try:
        return ", ".join(f"{k}={v}" for k, v in _sizes_from_dtype(dtype).items())
    except RecordingError:
        return f"(fields {', '.join(dtype.names or ())})"


def _sizes_from_dtype(dtype: np.dtype) -> dict[str, int]:
    """``n_features``, ``n_states``, ``n_contacts``, ``n_outputs`` of a cycle record dtype."""
    fields: Mapping[str, tuple[Any, ...]] = dtype.fields or {}

    def width(name: str) -> int:
        if name not in fields:
            raise RecordingError(f"cycle record has no field {name!r}; it is not a neuroloop "
                                 "cycle_dtype")
        sub = fields[name][0]
        return int(sub.shape[0]) if sub.shape else 1

    return {"n_features": width("features"), "n_states": width("probabilities"),
            "n_contacts": width("amplitude_ma"), "n_outputs": width("outputs")}


def _event_line(event: Any, cycle: int, now_ns: int) -> str:
    """One ``events.jsonl`` line (see :func:`~neuroloop.io.format.normalise_event`)."""
    return json.dumps(normalise_event(event, cycle, now_ns), allow_nan=False) + "\n"


def bench_recorder(n_hops: int = 2000, warmup_hops: int = 200, *, speedup: float = 50.0,
                   n_channels: int = 64, sampling_rate_hz: float = 586.0,
                   hop_samples: int = 59, n_features: int = 512, n_states: int = 7,
                   n_contacts: int = 16, n_outputs: int = 3, fsync: bool = False,
                   directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Cost the recorder adds to one control cycle (``on_samples`` + ``on_cycle``).

    The bsi workload by default: 64 channels x 59-sample hops at 586 Hz, 512 features, 7
    states, 16 contacts, 3 decoder outputs (LDA's). Time is compressed by ``speedup`` (hop period and flush interval
    both divided by it), so each flush writes as much as in a live run while the writer
    thread competes for the GIL as it would. Between hops the control thread waits with the
    live loop's own :class:`~neuroloop.runtime.clock.WallClock` (coarse sleep, then a short
    spin), and a "source" refills the block before each hop, since in the loop the samples
    are fresh in the cache when the listeners see them.

    Returns
    -------
    dict
        ``{"workload", "n_hops", "neuroloop_us": {"p50","p99","p999","max"},
        "bytes_per_hop", "flushes", "producer_waits", "max_flush_us"}``.
    """
    rng = np.random.default_rng(0)
    pool = rng.normal(0.0, 50.0, (8, hop_samples, n_channels))
    block = np.zeros((hop_samples, n_channels))
    dt = cycle_dtype(n_features, n_states, n_contacts, n_outputs)
    row = np.zeros(1, dtype=dt)
    row["features"] = rng.normal(size=(1, n_features))
    hop_s = hop_samples / sampling_rate_hz / speedup
    tmp = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="neuroloop-bench-rec-")
        directory = tmp.name
    out_dir = Path(directory) / "session"
    rec = SessionRecorder(out_dir, flush_interval_s=min(1.0, 0.5 / speedup), fsync=fsync,
                          buffer_s=max(4.0, 4.0 * 0.5 / speedup))
    rec.on_start({"channel_names": [f"E{i}" for i in range(n_channels)],
                  "channel_types": ["ecog"] * n_channels, "sampling_rate_hz": sampling_rate_hz,
                  "n_features": n_features, "n_states": n_states, "n_contacts": n_contacts,
                  "n_outputs": n_outputs, "hop_samples": hop_samples, "scenario": "bench"})
    total = warmup_hops + n_hops
    times = np.zeros(total, dtype=np.int64)
    from ..runtime.clock import WallClock

    clock = WallClock()
    perf = time.perf_counter_ns
    next_t = perf()
    period_ns = int(hop_s * 1e9)
    try:
        for k in range(total):
            np.copyto(block, pool[k % 8])  # the source fills its block, as in the loop
            row["cycle"] = k
            row["first_sample"] = k * hop_samples
            t0 = perf()
            rec.on_samples(block, k * hop_samples)
            rec.on_cycle(row)
            times[k] = perf() - t0
            next_t += period_ns
            clock.sleep_until(next_t)
        rec.on_stop({})
        stats = dict(rec.stats)
    finally:
        if not rec._stopped:
            rec.on_stop({})
        if tmp is not None:
            tmp.cleanup()
    from ..stats import latency_stats_us

    return {
        "workload": "recorder",
        "n_hops": int(n_hops),
        "neuroloop_us": latency_stats_us(times[warmup_hops:]),
        "bytes_per_hop": int(block.nbytes + dt.itemsize + INDEX_DTYPE.itemsize * 3),
        "flushes": int(stats["flushes"]),
        "producer_waits": int(stats["producer_waits"]),
        "max_flush_us": float(stats["max_flush_us"]),
    }
