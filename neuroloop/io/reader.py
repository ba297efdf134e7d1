"""Open a session recording written by :class:`~neuroloop.io.recorder.SessionRecorder`.

``open_recording(path)`` validates ``meta.json`` and the block index once, then exposes the
streams as read-only ``numpy.memmap`` views (nothing is loaded into memory). A recording whose
writer was killed opens too: each binary stream keeps its whole rows, a partial last row is
ignored, and a partial last line of ``events.jsonl`` is skipped.

Every problem is a :class:`~neuroloop.errors.RecordingError` whose one-line message names the
file and, for corrupt data, the byte offset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordingError
from ..runtime.records import cycle_dtype
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
    dtype_from_json,
)

__all__ = ["Recording", "RecordedCycles", "open_recording"]

_INDEX_ROW_BYTES = INDEX_DTYPE.itemsize * len(INDEX_COLUMNS)
_CHECK_CHUNK_ROWS = 65536


def open_recording(path: str | os.PathLike[str]) -> Recording:
    """Open the session directory ``path`` (read-only).

    Raises
    ------
    RecordingError
        Missing directory or ``meta.json``, a ``meta.json`` that is not JSON or lacks a key,
        a newer format version, inconsistent sizes or a corrupt block index.
    """
    return Recording(path)


def _require(meta: dict[str, Any], dotted: str, file: Path, types: type | tuple[type, ...]) -> Any:
    """``meta[a][b]...`` or a RecordingError naming the missing/invalid key."""
    node: Any = meta
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node or node[part] is None:
            raise RecordingError(
                f"{file} is incomplete: missing key {dotted!r} (the writer stopped before it was "
                "known, or the file was edited); re-record the session")
        node = node[part]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(node, allowed) or (isinstance(node, bool) and bool not in allowed):
        raise RecordingError(f"{file}: key {dotted!r} has an invalid value {node!r}; "
                             "re-record the session")
    return node


class Recording:
    """A session recording on disk (read-only).

    Attributes
    ----------
    path : Path
    meta : dict
        The parsed ``meta.json``.
    channel_names, channel_types : tuple of str
    sampling_rate_hz : float
    unit : str
    intention_names : tuple of str
    n_channels, n_features, n_states, n_contacts : int
    cycle_dtype : numpy.dtype
        Row layout of ``cycles.rec`` as recorded.
    n_samples : int
        Sample rows covered by complete block-index rows.
    n_blocks : int
        Complete block-index rows (whose samples are all on disk).
    n_cycles : int
        Complete cycle rows.
    closed_cleanly : bool
        The writer reached ``on_stop`` (False after a crash or ``kill -9``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._samples: np.ndarray | None = None
        self._blocks: np.ndarray | None = None
        self._cycles: np.ndarray | None = None
        self._fds: dict[str, int] = {}
        if not self.path.exists():
            raise RecordingError(f"recording directory {self.path} does not exist; check the path "
                                 "(record one with `neuroloop run --record DIR`)")
        if not self.path.is_dir():
            raise RecordingError(f"{self.path} is not a recording directory (it is a file); pass "
                                 "the session directory that holds meta.json")
        self.meta = self._load_meta()
        meta_file = self.path / META_FILE
        channels = self.meta["channels"]
        self.channel_names: tuple[str, ...] = tuple(
            str(n) for n in _require(self.meta, "channels.names", meta_file, list))
        types = channels.get("types")
        self.channel_types: tuple[str, ...] = (tuple(str(t) for t in types) if isinstance(
            types, list) else ("misc",) * len(self.channel_names))
        self.sampling_rate_hz = float(_require(self.meta, "channels.sampling_rate_hz", meta_file,
                                               (int, float)))
        if not self.sampling_rate_hz > 0:
            raise RecordingError(f"{meta_file}: channels.sampling_rate_hz must be positive, got "
                                 f"{self.sampling_rate_hz}; the file is corrupt")
        self.unit = str(channels.get("unit") or "uV")
        self.intention_names: tuple[str, ...] = tuple(
            str(n) for n in (self.meta.get("intention_names") or ()))
        self.n_channels = int(_require(self.meta, "channels.n_channels", meta_file, int))
        if self.n_channels != len(self.channel_names) or len(self.channel_types) != self.n_channels:
            raise RecordingError(
                f"{meta_file}: sizes mismatch: channels.n_channels={self.n_channels} but "
                f"{len(self.channel_names)} names and {len(self.channel_types)} types; the file "
                "is corrupt")
        self.n_features = int(_require(self.meta, "sizes.n_features", meta_file, int))
        self.n_states = int(_require(self.meta, "sizes.n_states", meta_file, int))
        self.n_contacts = int(_require(self.meta, "sizes.n_contacts", meta_file, int))
        sample_dtype = _require(self.meta, "sample_dtype", meta_file, str)
        if np.dtype(sample_dtype) != SAMPLE_DTYPE:
            raise RecordingError(f"{meta_file}: sample_dtype {sample_dtype!r} is not supported "
                                 f"(only {SAMPLE_DTYPE.str!r}); the file is corrupt or foreign")
        self.cycle_dtype = self._cycle_dtype(meta_file)
        self.hop_samples: int | None = (int(self.meta["hop_samples"]) if isinstance(
            self.meta.get("hop_samples"), int) else None)
        self.closed_cleanly = self.meta.get("closed_cleanly") is True

        self._sample_row_bytes = SAMPLE_DTYPE.itemsize * self.n_channels
        sample_rows = self._rows(SAMPLES_FILE, self._sample_row_bytes)
        index_rows = self._rows(INDEX_FILE, _INDEX_ROW_BYTES)
        self.n_blocks, self.n_samples = self._check_index(index_rows, sample_rows)
        self.n_cycles = self._rows(CYCLES_FILE, self.cycle_dtype.itemsize)
        self._check_counts(sample_rows)
        if self.hop_samples is None and self.n_cycles >= 2:
            first = self.cycles["first_sample"][:2]
            step = int(first[1] - first[0])
            self.hop_samples = step if step > 0 else None

    # -- metadata ---------------------------------------------------------------------------
    def _load_meta(self) -> dict[str, Any]:
        meta_file = self.path / META_FILE
        if not meta_file.is_file():
            raise RecordingError(f"{self.path} holds no {META_FILE}; it is not a neuroloop "
                                 "recording (or the writer never started)")
        raw = meta_file.read_bytes()
        try:
            meta = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RecordingError(f"{meta_file} is not a neuroloop meta.json: not UTF-8 text at byte "
                                 f"offset {exc.start}; the file is corrupt or foreign") from exc
        except json.JSONDecodeError as exc:
            offset = len(exc.doc[:exc.pos].encode("utf-8"))
            raise RecordingError(f"{meta_file} is not valid JSON at byte offset {offset} "
                                 f"({exc.msg}); the file is corrupt or foreign") from exc
        if not isinstance(meta, dict):
            raise RecordingError(f"{meta_file} is not a neuroloop meta.json (top level is "
                                 f"{type(meta).__name__}, not an object)")
        if meta.get("format") != FORMAT_NAME:
            raise RecordingError(f"{meta_file} is not a neuroloop session (format="
                                 f"{meta.get('format')!r}, expected {FORMAT_NAME!r})")
        version = meta.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RecordingError(f"{meta_file}: format_version {version!r} is invalid; the file is "
                                 "corrupt")
        if version > FORMAT_VERSION:
            from .. import __version__

            raise RecordingError(
                f"{self.path} was written in recording format version {version}, newer than this "
                f"neuroloop {__version__} reads (up to {FORMAT_VERSION}); upgrade neuroloop")
        _require(meta, "channels", meta_file, dict)
        return meta

    def _cycle_dtype(self, meta_file: Path) -> np.dtype:
        expected = cycle_dtype(self.n_features, self.n_states, self.n_contacts)
        spec = self.meta.get("cycle_dtype")
        if spec is None:
            return expected
        try:
            recorded = dtype_from_json(spec)
        except (ValueError, TypeError) as exc:
            raise RecordingError(f"{meta_file}: cycle_dtype is invalid ({exc}); the file is "
                                 "corrupt") from exc
        for name, size in (("features", self.n_features), ("probabilities", self.n_states),
                           ("amplitude_ma", self.n_contacts)):
            fields = recorded.fields or {}
            if name in fields:
                shape = fields[name][0].shape
                width = int(shape[0]) if shape else 1
                if width != size:
                    raise RecordingError(
                        f"{meta_file}: sizes mismatch: cycle_dtype field {name!r} has {width} "
                        f"values but sizes say {size}; the file is corrupt")
        return recorded

    # -- stream sizes and consistency -------------------------------------------------------
    def _rows(self, name: str, row_bytes: int) -> int:
        """Whole rows in a stream (a partial last row, from a crash, is ignored)."""
        f = self.path / name
        try:
            size = f.stat().st_size
        except FileNotFoundError:
            return 0
        return size // row_bytes

    def _check_index(self, index_rows: int, sample_rows: int) -> tuple[int, int]:
        """Validate the block index in chunks; return (valid blocks, samples they cover)."""
        if index_rows == 0:
            return 0, 0
        f = self.path / INDEX_FILE
        expected_offset = 0
        prev_end_index = -1
        n_valid = 0
        with open(f, "rb") as fh:
            for start in range(0, index_rows, _CHECK_CHUNK_ROWS):
                count = min(_CHECK_CHUNK_ROWS, index_rows - start)
                fh.seek(start * _INDEX_ROW_BYTES)
                rows = np.fromfile(fh, dtype=INDEX_DTYPE, count=count * 3).reshape(count, 3)
                first, n, offset = rows[:, 0], rows[:, 1], rows[:, 2]
                ends = np.cumsum(n) + expected_offset
                starts = ends - n
                bad = (n <= 0) | (offset != starts) | (first < 0)
                # first_index never goes back: each block starts at or after the previous end.
                prev_ends = np.empty(count, dtype=np.int64)
                prev_ends[0] = prev_end_index
                prev_ends[1:] = first[:-1] + n[:-1]
                bad |= first < prev_ends
                if bad.any():
                    k = int(np.argmax(bad))
                    row = start + k
                    raise RecordingError(
                        f"{f}: block {row} at byte offset {row * _INDEX_ROW_BYTES} is corrupt "
                        f"(first_index={int(first[k])}, n_samples={int(n[k])}, "
                        f"row_offset={int(offset[k])}, expected row_offset "
                        f"{int(starts[k])}); the recording is damaged")
                # ends increase strictly, so the blocks whose samples are on disk are a prefix.
                n_backed = int(np.count_nonzero(ends <= sample_rows))
                n_valid = start + n_backed
                if n_backed < count:
                    expected_offset = int(starts[n_backed])
                    break
                expected_offset = int(ends[-1])
                prev_end_index = int(first[-1] + n[-1])
        return n_valid, expected_offset

    def _check_counts(self, sample_rows: int) -> None:
        """A cleanly closed recording must hold every row it counted."""
        counts = self.meta.get("counts")
        if not self.closed_cleanly or not isinstance(counts, dict):
            return
        for name, have, key, row_bytes in (
                (SAMPLES_FILE, self.n_samples, "samples", self._sample_row_bytes),
                (INDEX_FILE, self.n_blocks, "blocks", _INDEX_ROW_BYTES),
                (CYCLES_FILE, self.n_cycles, "cycles", self.cycle_dtype.itemsize)):
            want = counts.get(key)
            if isinstance(want, int) and have < want:
                raise RecordingError(
                    f"{self.path / name} is truncated: meta.json counts {want} {key} but the file "
                    f"ends at byte offset {have * row_bytes} ({have} complete); the recording "
                    "was damaged after it was closed")
        if isinstance(counts.get("samples"), int) and sample_rows > counts["samples"]:
            raise RecordingError(
                f"{self.path / SAMPLES_FILE} has {sample_rows} rows but meta.json counts "
                f"{counts['samples']}; sizes mismatch (foreign or appended file)")

    # -- streams ----------------------------------------------------------------------------
    def _memmap(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        if shape[0] == 0:
            return np.empty(shape, dtype=dtype)
        return np.memmap(self.path / name, dtype=dtype, mode="r", shape=shape)

    @property
    def samples(self) -> np.ndarray:
        """Raw samples, memmap (n_samples, n_channels) float64, microvolts, read-only."""
        if self._samples is None:
            self._samples = self._memmap(SAMPLES_FILE, SAMPLE_DTYPE,
                                         (self.n_samples, self.n_channels))
        return self._samples

    @property
    def blocks(self) -> np.ndarray:
        """Block index, memmap (n_blocks, 3) int64: first_index, n_samples, row_offset."""
        if self._blocks is None:
            self._blocks = self._memmap(INDEX_FILE, INDEX_DTYPE, (self.n_blocks, 3))
        return self._blocks

    @property
    def cycles(self) -> np.ndarray:
        """Cycle records, memmap (n_cycles,) of :attr:`cycle_dtype`, read-only."""
        if self._cycles is None:
            self._cycles = self._memmap(CYCLES_FILE, self.cycle_dtype, (self.n_cycles,))
        return self._cycles

    def read_samples(self, row: int, out: np.ndarray) -> int:
        """Copy sample rows ``[row, row + len(out))`` into ``out`` without a memory map.

        Parameters
        ----------
        row : int
            First row of ``samples.f64`` (not a stream index; see :attr:`blocks`).
        out : ndarray, shape (k, n_channels), float64, C-contiguous

        Returns
        -------
        int
            Rows copied (fewer at the end of the recording).
        """
        k = max(0, min(out.shape[0], self.n_samples - row))
        if k == 0:
            return 0
        return self._pread(SAMPLES_FILE, row * self._sample_row_bytes, out[:k],
                           k * self._sample_row_bytes) // self._sample_row_bytes

    def read_cycles(self, start: int, out: np.ndarray) -> int:
        """Copy cycle rows ``[start, start + len(out))`` into ``out`` (of :attr:`cycle_dtype`)
        without a memory map; return the number of rows copied."""
        k = max(0, min(out.shape[0], self.n_cycles - start))
        if k == 0:
            return 0
        size = self.cycle_dtype.itemsize
        return self._pread(CYCLES_FILE, start * size, out[:k], k * size) // size

    def read_blocks(self, start: int, out: np.ndarray) -> int:
        """Copy block-index rows ``[start, start + len(out))`` into ``out`` ((k, 3) int64)."""
        k = max(0, min(out.shape[0], self.n_blocks - start))
        if k == 0:
            return 0
        return self._pread(INDEX_FILE, start * _INDEX_ROW_BYTES, out[:k],
                           k * _INDEX_ROW_BYTES) // _INDEX_ROW_BYTES

    def _pread(self, name: str, offset: int, out: np.ndarray, nbytes: int) -> int:
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self.path / name, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        view = memoryview(out.reshape(-1).view(np.uint8))[:nbytes]
        done = 0
        while done < nbytes:
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:
                raise RecordingError(f"{self.path / name}: unexpected end of file at byte offset "
                                     f"{offset + done}; the recording changed while being read")
            done += got
        return done

    def cycle_stream(self, window_rows: int = 256) -> RecordedCycles:
        """The cycle records as a lazy, read-only sequence in constant memory (see
        :class:`RecordedCycles`); a drop-in for ``cycles[k]`` in a replay loop."""
        return RecordedCycles(self, window_rows)

    def events(self) -> Iterator[dict[str, Any]]:
        """Iterate over ``events.jsonl`` (one dict per line).

        A last line without its newline (the writer was killed mid-line) is skipped. A
        complete line that is not a JSON object raises :class:`RecordingError` with the line
        number and byte offset.
        """
        f = self.path / EVENTS_FILE
        if not f.is_file():
            return
        offset = 0
        with open(f, "rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    return  # truncated by a crash: ignore the partial line
                try:
                    event = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise RecordingError(
                        f"{f}: line {lineno} at byte offset {offset} is not JSON; the file is "
                        "corrupt or foreign") from exc
                if not isinstance(event, dict):
                    raise RecordingError(f"{f}: line {lineno} at byte offset {offset} is not a "
                                         "JSON object; the file is corrupt or foreign")
                offset += len(line)
                yield event

    def close(self) -> None:
        """Drop the memory maps and file descriptors (the object stays usable)."""
        self._samples = self._blocks = self._cycles = None
        fds = getattr(self, "_fds", {})
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass
        fds.clear()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return (f"Recording({str(self.path)!r}, {self.n_channels} ch x {self.sampling_rate_hz:g} "
                f"Hz, {self.n_samples} samples, {self.n_cycles} cycles, "
                f"closed_cleanly={self.closed_cleanly})")


class RecordedCycles:
    """Cycle records of a recording, read on demand through a small window.

    Behaves like a read-only 1-D array for the accesses a replay makes (``len``,
    ``shape``, ``dtype``, ``rows[k]`` with an int): sequential access reads
    ``window_rows`` rows per disk read and memory stays constant whatever the length of the
    recording (a memory map would keep every touched page resident). ``rows[k]`` is a
    structured scalar valid until the window moves; copy it to keep it.
    """

    def __init__(self, recording: Recording, window_rows: int = 256) -> None:
        if window_rows <= 0:
            raise ValueError(f"window_rows must be positive, got {window_rows}")
        self.recording = recording
        self.dtype = recording.cycle_dtype
        self.shape = (recording.n_cycles,)
        self._buf = np.zeros(int(window_rows), dtype=self.dtype)
        self._base = 0
        self._n = 0

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, k: int) -> np.void:
        n = self.shape[0]
        if not isinstance(k, int | np.integer):
            raise TypeError("RecordedCycles supports integer indexing only; use "
                            "Recording.cycles for slices")
        k = int(k)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"cycle {k} is outside the recording (0..{n - 1})")
        j = k - self._base
        if not 0 <= j < self._n:
            self._base = k
            self._n = self.recording.read_cycles(k, self._buf)
            j = 0
        return self._buf[j]

    def __iter__(self) -> Iterator[np.void]:
        for k in range(self.shape[0]):
            yield self[k]
