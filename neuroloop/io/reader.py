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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks as B
from .._checks import Range, check_number
from ..errors import RecordingError
from ..records import FLAG_SAMPLES_LOST, FLAG_SOURCE_STALL
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
    config_sha256,
    cycle_layout,
    dtype_from_json,
    sha256_file,
)

__all__ = ["Recording", "RecordedCycles", "open_recording"]

_INDEX_ROW_BYTES = INDEX_DTYPE.itemsize * len(INDEX_COLUMNS)
_CHECK_CHUNK_ROWS = 65536
#: Largest meta.json read (a 4096-channel session's is well under 1 MiB).
_META_MAX_BYTES = 64 << 20
#: Name of the decoder file a recording carries (written by ``neuroloop run --record``).
DECODER_FILE = "decoder.npz"
#: Cycles read at the start and at the end to check hop and rate against the data.
_PROBE_ROWS = 64
#: Allowed ranges of the metadata sizes (cycle_dtype holds states as int8).
_N_FEATURES = Range(1, 1 << 20, integer=True)
_N_STATES = Range(1, 127, integer=True)
_N_CONTACTS = Range(1, 4096, integer=True)
_N_OUTPUTS = Range(0, 4096, integer=True)
_COUNT = Range(0, 1 << 62, integer=True)
#: Units of the stored samples: microvolts, or the counts of an implant's bins (binned
#: intracortical: threshold crossings and spike-band power per bin, ``intracortical://binned``).
SAMPLE_UNITS = ("uV", "count")
_FLUSH_INTERVAL_S = Range(0.0, 1.0, lo_open=True, unit="s")
#: Top-level keys of the format and the JSON types they may hold (docs/recording.md).
_META_TYPES: dict[str, tuple[type, ...]] = {
    "created_utc": (str,), "stopped_utc": (str,), "closed_cleanly": (bool,),
    "versions": (dict,), "scenario": (str, type(None)), "config": (dict, type(None)),
    "intention_names": (list,), "hop_samples": (int, type(None)),
    "decoder": (dict, type(None)), "sizes": (dict,), "sample_dtype": (str,),
    "cycle_dtype": (list, type(None)), "streams": (dict,), "flush_interval_s": (int, float),
    "counts": (dict,), "summary": (dict,), "recorder": (dict,), "writer_error": (str,),
    "run": (dict,),
}


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
        raise RecordingError(f"{file}: key {dotted!r} has an invalid value "
                             f"{B.show_value(node)}; re-record the session")
    return node


def _is_sha256(text: Any) -> bool:
    return (isinstance(text, str) and len(text) == 64
            and all(c in "0123456789abcdef" for c in text))


def _size(meta: dict[str, Any], dotted: str, file: Path, rng: Range) -> int:
    """An integer size of ``meta`` within ``rng``, else a RecordingError naming file and key."""
    value = _require(meta, dotted, file, int)
    return int(check_number(f"{file}: {dotted}", value, rng, error=RecordingError,
                            hint="the file is corrupt; re-record the session"))


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
    format_version : int
        The recording format the session was written in (1: neuroloop 0.1.0).
    n_channels, n_features, n_states, n_contacts : int
    n_outputs : int
        The decoder's continuous outputs stored per cycle (0 in format 1, which stores none).
    output_names, output_units : tuple of str
        Name and unit of each value of the records' ``outputs`` field (empty in format 1).
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
        self.format_version: int = self.meta["format_version"]
        meta_file = self.path / META_FILE
        self._check_meta_types(meta_file)
        channels = self.meta["channels"]
        names = _require(self.meta, "channels.names", meta_file, list)
        if not all(isinstance(n, str) for n in names):
            raise RecordingError(f"{meta_file}: channels.names must be a list of strings; the "
                                 "file is corrupt")
        self.channel_names: tuple[str, ...] = tuple(names)
        types = channels.get("types")
        if types is not None and not (isinstance(types, list)
                                      and all(isinstance(t, str) for t in types)):
            raise RecordingError(f"{meta_file}: channels.types must be a list of strings; the "
                                 "file is corrupt")
        self.channel_types: tuple[str, ...] = (tuple(types) if types is not None
                                               else ("misc",) * len(self.channel_names))
        self.sampling_rate_hz = float(check_number(
            f"{meta_file}: channels.sampling_rate_hz",
            _require(self.meta, "channels.sampling_rate_hz", meta_file, (int, float)),
            B.SAMPLING_RATE_HZ, error=RecordingError,
            hint="the file is corrupt; re-record the session"))
        unit = channels.get("unit", "uV")
        if unit not in (*SAMPLE_UNITS, None):
            raise RecordingError(f"{meta_file}: channels.unit = {B.show_value(unit)}, but format "
                                 f"version {self.format_version} stores samples in 'uV' (or "
                                 "'count': an implant's bins); the file is corrupt or was edited")
        self.unit = unit or "uV"
        intentions = self.meta.get("intention_names") or []
        if not all(isinstance(n, str) for n in intentions):
            raise RecordingError(f"{meta_file}: intention_names must be a list of strings; the "
                                 "file is corrupt")
        self.intention_names: tuple[str, ...] = tuple(intentions)
        self.n_channels = _size(self.meta, "channels.n_channels", meta_file, B.N_CHANNELS)
        if self.n_channels != len(self.channel_names) or len(self.channel_types) != self.n_channels:
            raise RecordingError(
                f"{meta_file}: sizes mismatch: channels.n_channels={self.n_channels} but "
                f"{len(self.channel_names)} names and {len(self.channel_types)} types; the file "
                "is corrupt")
        self.n_features = _size(self.meta, "sizes.n_features", meta_file, _N_FEATURES)
        self.n_states = _size(self.meta, "sizes.n_states", meta_file, _N_STATES)
        self.n_contacts = _size(self.meta, "sizes.n_contacts", meta_file, _N_CONTACTS)
        self.n_outputs = 0
        self.output_names: tuple[str, ...] = ()
        self.output_units: tuple[str, ...] = ()
        if self.format_version >= 2:
            self._read_outputs(meta_file)
        sample_dtype = _require(self.meta, "sample_dtype", meta_file, str)
        if sample_dtype != SAMPLE_DTYPE.str:
            raise RecordingError(f"{meta_file}: sample_dtype {B.show_value(sample_dtype)} is not "
                                 f"supported (only {SAMPLE_DTYPE.str!r}); the file is corrupt or "
                                 "foreign")
        self.cycle_dtype = self._cycle_dtype(meta_file)
        hop = self.meta.get("hop_samples")
        self.hop_samples: int | None = (None if hop is None else _size(
            self.meta, "hop_samples", meta_file, B.HOP_SAMPLES))
        self.closed_cleanly = self.meta.get("closed_cleanly") is True
        self._check_config(meta_file)
        self._check_decoder(meta_file)

        self._sample_row_bytes = SAMPLE_DTYPE.itemsize * self.n_channels
        sample_rows = self._rows(SAMPLES_FILE, self._sample_row_bytes)
        index_rows = self._rows(INDEX_FILE, _INDEX_ROW_BYTES)
        self.n_blocks, self.n_samples = self._check_index(index_rows, sample_rows)
        self.n_cycles = self._rows(CYCLES_FILE, self.cycle_dtype.itemsize)
        self._check_counts(sample_rows, meta_file)
        self._check_timing(meta_file)

    # -- metadata ---------------------------------------------------------------------------
    def _load_meta(self) -> dict[str, Any]:
        meta_file = self.path / META_FILE
        if not meta_file.is_file():
            raise RecordingError(f"{self.path} holds no {META_FILE}; it is not a neuroloop "
                                 "recording (or the writer never started)")
        try:
            size = meta_file.stat().st_size
            if size > _META_MAX_BYTES:
                raise RecordingError(f"{meta_file} is {size} bytes, more than a meta.json may "
                                     f"have ({_META_MAX_BYTES >> 20} MiB); the file is corrupt "
                                     "or foreign")
            raw = meta_file.read_bytes()
        except OSError as exc:
            raise RecordingError(f"cannot read {meta_file}: {exc.strerror or exc}; check its "
                                 "permissions") from exc
        try:
            meta = json.loads(raw.decode("utf-8"))
        except RecursionError:
            raise RecordingError(f"{meta_file} nests too deeply for a neuroloop meta.json; the "
                                 "file is corrupt or foreign") from None
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

    def _read_outputs(self, meta_file: Path) -> None:
        """Format 2: ``sizes.n_outputs`` and ``outputs.names``/``outputs.units``, one distinct
        name and one unit per output."""
        self.n_outputs = _size(self.meta, "sizes.n_outputs", meta_file, _N_OUTPUTS)
        _require(self.meta, "outputs", meta_file, dict)
        got: dict[str, tuple[str, ...]] = {}
        for key in ("names", "units"):
            values = _require(self.meta, f"outputs.{key}", meta_file, list)
            if not all(isinstance(v, str) for v in values):
                raise RecordingError(f"{meta_file}: outputs.{key} must be a list of strings; "
                                     "the file is corrupt or was edited")
            if len(values) != self.n_outputs:
                raise RecordingError(
                    f"{meta_file}: sizes mismatch: outputs.{key} has {len(values)} entries but "
                    f"sizes.n_outputs = {self.n_outputs}; the file is corrupt or was edited")
            got[key] = tuple(values)
        names = got["names"]
        if len(set(names)) != len(names) or not all(names):
            raise RecordingError(f"{meta_file}: outputs.names {B.show_value(list(names))} must "
                                 "be distinct non-empty names; the file is corrupt or was edited")
        self.output_names, self.output_units = names, got["units"]

    def _cycle_dtype(self, meta_file: Path) -> np.dtype:
        expected = cycle_layout(self.format_version, self.n_features, self.n_states,
                                self.n_contacts, self.n_outputs)
        spec = self.meta.get("cycle_dtype")
        if spec is None:
            return expected
        try:
            recorded = dtype_from_json(spec)
        except (ValueError, TypeError) as exc:
            raise RecordingError(f"{meta_file}: cycle_dtype is invalid "
                                 f"({B.show_value(str(exc))[1:-1]}); the file is corrupt") from None
        checked = [("features", self.n_features), ("probabilities", self.n_states),
                   ("amplitude_ma", self.n_contacts)]
        if self.format_version >= 2:
            checked.append(("outputs", self.n_outputs))
        for name, size in checked:
            fields: Mapping[str, tuple[Any, ...]] = recorded.fields or {}
            if name in fields:
                shape = fields[name][0].shape
                width = int(shape[0]) if shape else 1
                if width != size:
                    raise RecordingError(
                        f"{meta_file}: sizes mismatch: cycle_dtype field {name!r} has {width} "
                        f"values but sizes say {size}; the file is corrupt")
        if recorded != expected:  # each format version has exactly one record layout
            raise RecordingError(f"{meta_file}: cycle_dtype is not the record layout of format "
                                 f"version {self.format_version} for these sizes; the file is "
                                 "corrupt")
        return recorded

    def _check_meta_types(self, meta_file: Path) -> None:
        """Every top-level key of the format holds the JSON type it documents."""
        for key, types in _META_TYPES.items():
            if key not in self.meta:
                continue
            value = self.meta[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                want = " or ".join("null" if t is type(None) else {
                    str: "a string", dict: "an object", list: "a list", bool: "true/false",
                    int: "an integer", float: "a number"}[t] for t in types)
                raise RecordingError(f"{meta_file}: {key} = {B.show_value(value)} must be "
                                     f"{want}; the file is corrupt or was edited")
        if "flush_interval_s" in self.meta:
            check_number(f"{meta_file}: flush_interval_s", self.meta["flush_interval_s"],
                         _FLUSH_INTERVAL_S, error=RecordingError,
                         hint="the file is corrupt; re-record the session")
        streams = self.meta.get("streams")
        if streams is not None:
            expected = {"samples": SAMPLES_FILE, "samples_index": INDEX_FILE,
                        "samples_index_columns": list(INDEX_COLUMNS), "cycles": CYCLES_FILE,
                        "events": EVENTS_FILE}
            for key, stored in expected.items():
                if streams.get(key) != stored:
                    raise RecordingError(
                        f"{meta_file}: streams.{key} = {B.show_value(streams.get(key))}, but "
                        f"format version {self.format_version} stores {stored!r}; the file is "
                        "corrupt or foreign")

    def _check_config(self, meta_file: Path) -> None:
        """The recorded configuration agrees with the channels and the hop it recorded."""
        config = self.meta.get("config")
        options = self.meta.get("options")
        digest = options.get("config_sha256") if isinstance(options, dict) else None
        if digest is not None:  # written by `neuroloop run` (older recordings have none)
            if not _is_sha256(digest):
                raise RecordingError(f"{meta_file}: options.config_sha256 = "
                                     f"{B.show_value(digest)} is not a SHA-256 hex digest; the "
                                     "file is corrupt or was edited")
            if config_sha256(config) != digest:
                raise RecordingError(
                    f"{meta_file}: config does not match options.config_sha256 (the "
                    "configuration was edited after the session ran); restore it, or replay "
                    "with --config FILE to run another configuration on purpose")
        if not isinstance(config, dict):
            return
        source, dsp = config.get("source"), config.get("dsp")
        if isinstance(dsp, dict) and dsp.get("kind") == "spike-band":
            # intracortical: the recorded stream is the implant's bins (or a raw-channel
            # subset), not the electrodes x ADC rate of [source]; replay checks the stream
            source = None
        if isinstance(source, dict):
            rate = source.get("sampling_rate_hz")
            if (isinstance(rate, int | float) and not isinstance(rate, bool)
                    and not abs(float(rate) - self.sampling_rate_hz) <= 1e-6):
                raise RecordingError(
                    f"{meta_file}: channels.sampling_rate_hz = {self.sampling_rate_hz:g} but "
                    f"config.source.sampling_rate_hz = {B.show_value(rate)}; the run checked "
                    "they agree, so the file is corrupt or was edited")
            n_ch = source.get("n_channels")
            if isinstance(n_ch, int) and not isinstance(n_ch, bool) and n_ch != self.n_channels:
                raise RecordingError(
                    f"{meta_file}: channels.n_channels = {self.n_channels} but "
                    f"config.source.n_channels = {n_ch}; the file is corrupt or was edited")
        if isinstance(dsp, dict) and "hop_samples" in dsp and self.hop_samples is not None:
            if dsp["hop_samples"] != self.hop_samples or isinstance(dsp["hop_samples"], bool):
                raise RecordingError(
                    f"{meta_file}: hop_samples = {self.hop_samples} but config.dsp.hop_samples "
                    f"= {B.show_value(dsp['hop_samples'])}; the file is corrupt or was edited")

    def _check_decoder(self, meta_file: Path) -> None:
        """``decoder.sha256`` is a SHA-256 digest and matches the recording's decoder file."""
        decoder = self.meta.get("decoder")
        digest = decoder.get("sha256") if isinstance(decoder, dict) else None
        if isinstance(decoder, dict) and not isinstance(decoder.get("path"), str | None):
            raise RecordingError(f"{meta_file}: decoder.path = "
                                 f"{B.show_value(decoder.get('path'))} must be a path or null; "
                                 "the file is corrupt or was edited")
        if digest not in (None, "") and not _is_sha256(digest):
            raise RecordingError(f"{meta_file}: decoder.sha256 = {B.show_value(digest)} is not a "
                                 "SHA-256 hex digest; the file is corrupt or was edited")
        path = self.path / DECODER_FILE
        if not path.is_file():
            return
        if not digest:
            raise RecordingError(f"{meta_file} has no decoder.sha256 to verify {path} against; "
                                 "the file was edited; re-record the session")
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
        if actual != digest:
            raise RecordingError(
                f"{path} does not match {meta_file} decoder.sha256 ({digest[:12]}..., the file "
                f"hashes to {actual[:12]}...): the decoder or meta.json was replaced; restore "
                "them or replay with --decoder FILE after re-recording")

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

    def _check_counts(self, sample_rows: int, meta_file: Path) -> None:
        """A cleanly closed recording holds exactly the rows its ``counts`` say."""
        counts = self.meta.get("counts")
        if not self.closed_cleanly:
            return
        if not isinstance(counts, dict):
            raise RecordingError(f"{meta_file} is incomplete: missing key 'counts' although "
                                 "closed_cleanly is true; the file was edited; re-record the "
                                 "session")
        want = {key: _size(self.meta, f"counts.{key}", meta_file, _COUNT)
                for key in ("samples", "blocks", "cycles", "events")}
        cycles_file = self.path / CYCLES_FILE
        cycle_bytes = cycles_file.stat().st_size if cycles_file.exists() else 0
        for name, have, key, row_bytes in (
                (SAMPLES_FILE, self.n_samples, "samples", self._sample_row_bytes),
                (INDEX_FILE, self.n_blocks, "blocks", _INDEX_ROW_BYTES),
                (CYCLES_FILE, self.n_cycles, "cycles", self.cycle_dtype.itemsize)):
            if have < want[key]:
                cause = "the recording was damaged after it was closed"
                if key == "cycles" and cycle_bytes % row_bytes:
                    cause += (f", or meta.json's sizes ({self._sizes_text()}) were edited and "
                              "no longer give the recorded row size")
                raise RecordingError(
                    f"{self.path / name} is truncated: meta.json counts {want[key]} {key} but "
                    f"the file ends at byte offset {have * row_bytes} ({have} complete); "
                    f"{cause}")
        if (self.n_cycles == want["cycles"]
                and cycle_bytes != want["cycles"] * self.cycle_dtype.itemsize):
            raise RecordingError(
                f"{cycles_file} is {cycle_bytes} bytes, not the {want['cycles']} records of "
                f"{self.cycle_dtype.itemsize} bytes that meta.json describes ({self._sizes_text()}"
                "); sizes mismatch (meta.json or the file was edited)")
        if sample_rows > want["samples"]:
            raise RecordingError(
                f"{self.path / SAMPLES_FILE} has {sample_rows} rows but meta.json counts "
                f"{want['samples']}; sizes mismatch (foreign or appended file)")
        lines = self._count_event_lines()
        for name, have, key in ((INDEX_FILE, self.n_blocks, "blocks"),
                                (CYCLES_FILE, self.n_cycles, "cycles"),
                                (EVENTS_FILE, lines, "events")):
            if have != want[key] and (have > want[key] or key == "events"):
                raise RecordingError(
                    f"{meta_file}: counts.{key} = {want[key]} but {name} holds {have} complete "
                    f"{'lines' if key == 'events' else 'rows'}; sizes mismatch (the file was "
                    "edited or appended to)")

    def _sizes_text(self) -> str:
        text = (f"n_features={self.n_features}, n_states={self.n_states}, "
                f"n_contacts={self.n_contacts}")
        if self.format_version >= 2:
            text += f", n_outputs={self.n_outputs}"
        return text

    def _count_event_lines(self) -> int:
        """Complete lines of ``events.jsonl`` (read in chunks; 0 when absent)."""
        f = self.path / EVENTS_FILE
        count = 0
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    count += chunk.count(b"\n")
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise RecordingError(f"cannot read {f}: {exc.strerror or exc}") from None
        return count

    def _check_timing(self, meta_file: Path) -> None:
        """``hop_samples`` and ``channels.sampling_rate_hz`` agree with the recorded cycles.

        Between two consecutive cycles that both read fresh samples without a gap, the
        stream advanced by exactly one hop; and over the recording the cycles' availability
        times advance by ``samples / rate`` (exactly for a simulated or sample-paced clock,
        within the jitter of a device's receive times otherwise). Only the first and last
        :data:`_PROBE_ROWS` cycles are read.
        """
        n = self.n_cycles
        if n < 2:
            return
        head = np.zeros(min(n, _PROBE_ROWS), dtype=self.cycle_dtype)
        self.read_cycles(0, head)
        tail = head
        if n > head.shape[0]:
            tail = np.zeros(min(n, _PROBE_ROWS), dtype=self.cycle_dtype)
            self.read_cycles(n - tail.shape[0], tail)
        first = head["first_sample"].astype(np.int64)
        flags = head["flags"]
        fresh = (flags & FLAG_SOURCE_STALL) == 0
        pair = fresh[:-1] & fresh[1:] & ((flags[1:] & FLAG_SAMPLES_LOST) == 0)
        steps = np.diff(first)[pair]
        steps = steps[steps != 0]  # rows a test or a tool wrote without times: nothing to check
        if self.hop_samples is None:
            if steps.size and steps[0] > 0:
                self.hop_samples = int(steps[0])
        elif steps.size and not (steps == self.hop_samples).all():
            bad = int(steps[steps != self.hop_samples][0])
            raise RecordingError(
                f"{meta_file}: hop_samples = {self.hop_samples} but the recorded cycles advance "
                f"by {bad} samples per cycle ({CYCLES_FILE}); the file is corrupt or was edited")
        # rate: first and last fresh cycles
        a = np.flatnonzero(fresh)
        b = np.flatnonzero((tail["flags"] & FLAG_SOURCE_STALL) == 0)
        if a.size == 0 or b.size == 0:
            return
        ra, rb = head[a[0]], tail[b[-1]]
        dt_s = (int(rb["available_ns"]) - int(ra["available_ns"])) / 1e9
        dn = int(rb["first_sample"]) - int(ra["first_sample"])
        if dt_s <= 0 or dn <= 0:
            return  # too short to tell (or times not recorded)
        measured = dn / dt_s
        tolerance = 0.02 + 0.05 / dt_s  # a device's receive-time jitter, tens of ms
        if abs(measured / self.sampling_rate_hz - 1.0) > tolerance:
            raise RecordingError(
                f"{meta_file}: channels.sampling_rate_hz = {self.sampling_rate_hz:g} but the "
                f"recorded cycles advance at {measured:.6g} samples/s ({CYCLES_FILE}); the file "
                "is corrupt or was edited")

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
        view = out.reshape(-1).view(np.uint8).data[:nbytes]  # memoryview of out's bytes
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
