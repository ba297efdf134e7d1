"""EDF+/BDF+ recordings through pyEDFlib: a source, an offline reader and a session exporter.

* :class:`EdfSource` (``edf://file.edf?channels=C3..,C4..&labels=T0:rest,T1:left,T2:right``)
  streams the selected channels in microvolts; EDF+ annotations become
  :class:`Annotation` objects and, through a label map, per-sample intention labels usable
  for decoder training.
* :func:`read_edf` loads a whole file for offline work.
* :func:`export_edf` writes a recorded session (raw channels, plus annotations for true and
  decoded intention changes, stimulation on/off and program changes, supervisor state
  changes and interlock events) as EDF+ (16 bit) or BDF+ (24 bit, ``.bdf``), which
  MNE-Python and EDFbrowser open.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..acquisition.base import CHANNEL_TYPES, NO_LABEL, BaseSource, Block, SourceInfo
from ..errors import ConfigError, RecordingError
from ..progress import Progress
from .reader import open_recording

__all__ = ["Annotation", "EdfSource", "read_edf", "annotation_labels", "parse_label_map",
           "export_edf", "unit_to_uv", "session_annotations"]

#: Options a scenario hands to every source (meant for the synthetic patient): ignored here.
_GENERIC_OPTIONS = ("seed", "snr")
_MAX_ANNOTATION_CHARS = 40  # EDFlib truncates annotation texts to 40 characters
_MAX_ANNOTATION_SIGNALS = 64  # EDFlib: at most 64 annotation signals (one TAL each per record)


@dataclass(frozen=True)
class Annotation:
    """An EDF+ annotation.

    Attributes
    ----------
    onset_s : float
        Seconds from the start of the file.
    duration_s : float
        Seconds; ``-1`` (or 0) when the annotation marks an instant.
    text : str
    """

    onset_s: float
    duration_s: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "annotation", "onset_s": self.onset_s, "duration_s": self.duration_s,
                "text": self.text}


def unit_to_uv(dimension: str) -> float | None:
    """Factor that converts an EDF physical dimension to microvolts (None if not a voltage)."""
    d = dimension.strip().replace("\u00b5", "u").replace("\u03bc", "u")
    return {"uv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}.get(d.lower())


def parse_label_map(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"T0:rest,T1:left"`` (or a mapping) -> ``{"T0": "rest", "T1": "left"}``."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return {str(k): str(v) for k, v in spec.items()}
    out: dict[str, str] = {}
    for item in str(spec).split(","):
        item = item.strip()
        if not item:
            continue
        text, sep, name = item.rpartition(":")  # annotation texts may contain ':'; names not
        if not sep or not text.strip() or not name.strip():
            raise ConfigError(f"labels entry {item!r} is not ANNOTATION:NAME; write e.g. "
                              "labels=T0:rest,T1:left,T2:right")
        out[text.strip()] = name.strip()
    return out


def annotation_labels(annotations: Sequence[Annotation], label_map: Mapping[str, str],
                      n_samples: int, sampling_rate_hz: float,
                      intention_names: Sequence[str] | None = None
                      ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-sample intention labels from annotations.

    An annotation whose text is in ``label_map`` labels the samples
    ``[round(onset * fs), round((onset + duration) * fs))`` with the index of its name; an
    annotation without a duration (``<= 0``) lasts until the next mapped annotation. Names
    are numbered by their position in ``intention_names`` (a scenario's states: the order
    of ``label_map`` then does not matter) or, without it, in their order of first
    appearance in ``label_map``; other samples are
    :data:`~neuroloop.acquisition.base.NO_LABEL`.

    Returns
    -------
    labels : ndarray, shape (n_samples,), int8
    intention_names : tuple of str
    """
    intervals, names = _label_intervals(annotations, label_map, n_samples, sampling_rate_hz,
                                        intention_names)
    labels = np.full(n_samples, NO_LABEL, dtype=np.int8)
    for start, stop, label in intervals:
        labels[start:stop] = label
    return labels, names


def _label_intervals(annotations: Sequence[Annotation], label_map: Mapping[str, str],
                     n_samples: int, fs: float, intention_names: Sequence[str] | None = None
                     ) -> tuple[list[tuple[int, int, int]], tuple[str, ...]]:
    names: list[str] = []
    if intention_names is not None:
        names = [str(n) for n in intention_names]
        _check_label_names(label_map, tuple(names))
    for name in label_map.values():
        if name not in names:
            names.append(name)
    if len(names) > 127:
        raise ConfigError(f"labels maps to {len(names)} names; at most 127 intentions fit int8")
    mapped = sorted((a for a in annotations if a.text in label_map), key=lambda a: a.onset_s)
    intervals: list[tuple[int, int, int]] = []
    for i, ann in enumerate(mapped):
        start = int(round(ann.onset_s * fs))
        if ann.duration_s > 0:
            stop = int(round((ann.onset_s + ann.duration_s) * fs))
        else:
            stop = int(round(mapped[i + 1].onset_s * fs)) if i + 1 < len(mapped) else n_samples
        start, stop = max(0, start), min(n_samples, stop)
        if stop > start:
            intervals.append((start, stop, names.index(label_map[ann.text])))
    return intervals, tuple(names)


def _check_label_names(label_map: Mapping[str, str], names: tuple[str, ...],
                       scenario: str = "") -> None:
    """Refuse a label that maps an annotation to a name outside ``names``."""
    for text, name in label_map.items():
        if name not in names:
            of = f"scenario {scenario}" if scenario else "the scenario"
            raise ConfigError(f"labels= maps {text} to {name!r}, which is not a state of {of} "
                              f"({', '.join(names)}); map each annotation to one of those names")


def _open_reader(path: Path) -> Any:
    import pyedflib

    if not path.exists():
        raise ConfigError(f"EDF/BDF file {path} does not exist; check the path")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not an EDF/BDF file (for a neuroloop session "
                          "use replay://DIR)")
    try:
        return pyedflib.EdfReader(str(path))
    except OSError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        detail = detail.removeprefix(f"{path}:").strip()
        raise RecordingError(f"{path} is not a readable EDF/BDF file ({detail}); check that it "
                             "is EDF, EDF+, BDF or BDF+") from exc


def _norm_label(label: str) -> str:
    return label.strip().rstrip(".").strip().lower()


def _select_channels(labels: Sequence[str], wanted: Sequence[str] | None, path: Path) -> list[int]:
    if not wanted:
        return list(range(len(labels)))
    exact = {lab.strip(): i for i, lab in reversed(list(enumerate(labels)))}
    loose = {_norm_label(lab): i for i, lab in reversed(list(enumerate(labels)))}
    out: list[int] = []
    for name in wanted:
        idx = exact.get(name.strip())
        if idx is None:
            idx = loose.get(_norm_label(name))
        if idx is None:
            sample = ", ".join(lab.strip() for lab in labels[:8])
            raise ConfigError(f"channel {name!r} is not in {path.name} (it has {len(labels)} "
                              f"channels: {sample}{', ...' if len(labels) > 8 else ''}); fix "
                              "channels=")
        if idx in out:
            raise ConfigError(f"channel {name!r} is selected twice; list each channel once")
        out.append(idx)
    return out


@dataclass(frozen=True)
class _Header:
    path: Path
    indices: tuple[int, ...]
    names: tuple[str, ...]
    sampling_rate_hz: float
    n_samples: int
    factors: np.ndarray  # physical unit -> uV, times scale, per selected channel
    annotations: tuple[Annotation, ...]
    start: _dt.datetime | None


def _read_header(reader: Any, path: Path, channels: Sequence[str] | None, scale: float,
                 unit: str | None) -> _Header:
    labels = list(reader.getSignalLabels())
    if not labels:
        raise RecordingError(f"{path} holds no signals (only annotations); nothing to read")
    idx = _select_channels(labels, channels, path)
    rates = [float(reader.getSampleFrequency(i)) for i in idx]
    if len({round(r, 9) for r in rates}) > 1:
        groups: dict[float, list[str]] = {}
        for i, r in zip(idx, rates, strict=True):
            groups.setdefault(r, []).append(labels[i].strip())
        desc = "; ".join(f"{r:g} Hz: {', '.join(n[:4])}{' ...' if len(n) > 4 else ''}"
                         for r, n in groups.items())
        raise ConfigError(f"selected channels of {path.name} have unequal sampling rates ({desc}); "
                          "select channels of one rate with channels=")
    n_samples = {int(reader.getNSamples()[i]) for i in idx}
    if len(n_samples) > 1:  # pragma: no cover - equal rates imply equal counts in EDF
        raise RecordingError(f"{path}: selected channels have unequal lengths {sorted(n_samples)}")
    factors = np.empty(len(idx))
    for j, i in enumerate(idx):
        dim = unit if unit is not None else reader.getPhysicalDimension(i)
        f = unit_to_uv(dim)
        if f is None:
            raise ConfigError(f"channel {labels[i].strip()!r} of {path.name} is in {dim!r}, not a "
                              "voltage; deselect it with channels= or override with unit=uV")
        factors[j] = f * scale
    onsets, durations, texts = reader.readAnnotations()
    annotations = tuple(Annotation(float(o), float(d), str(t))
                        for o, d, t in zip(onsets, durations, texts, strict=True))
    try:
        start = reader.getStartdatetime()
    except Exception:  # pragma: no cover - malformed header date
        start = None
    return _Header(path, tuple(idx), tuple(labels[i].strip() for i in idx), rates[0],
                   n_samples.pop(), factors, annotations, start)


def read_edf(path: str | os.PathLike[str], channels: Sequence[str] | None = None, *,
             scale: float = 1.0, unit: str | None = None
             ) -> tuple[np.ndarray, float, tuple[str, ...], list[Annotation]]:
    """Read an EDF/EDF+/BDF/BDF+ file.

    Parameters
    ----------
    path : str or Path
    channels : sequence of str, optional
        Labels to keep, in this order (exact, or ignoring case and trailing dots); all
        signals by default. They must share one sampling rate.
    scale : float
        Extra factor applied after the conversion to microvolts.
    unit : str, optional
        Physical dimension to assume instead of the file's (e.g. ``"uV"``).

    Returns
    -------
    data : ndarray, shape (n_samples, n_channels), float64, microvolts
    sampling_rate_hz : float
    channel_names : tuple of str
    annotations : list of Annotation
    """
    p = Path(path)
    reader = _open_reader(p)
    try:
        hdr = _read_header(reader, p, channels, float(scale), unit)
        data = np.empty((hdr.n_samples, len(hdr.indices)))
        col = np.empty(hdr.n_samples)
        for j, i in enumerate(hdr.indices):
            reader.readsignal(i, 0, hdr.n_samples, col)
            data[:, j] = col * hdr.factors[j]
    finally:
        reader.close()
    return data, hdr.sampling_rate_hz, hdr.names, list(hdr.annotations)


class EdfSource(BaseSource):
    """An EDF/EDF+/BDF/BDF+ file as a source (schemes ``edf`` and ``bdf``).

    Parameters
    ----------
    path : str or Path
    channels : sequence of str, optional
        Channel labels to stream (see :func:`read_edf`); all by default.
    scale : float
        Extra factor after the conversion to microvolts.
    label_map : str or mapping, optional
        Annotation text -> intention name, e.g. ``"T0:rest,T1:left,T2:right"``; gives
        per-sample labels and ``info.intention_names`` (names in their order in the map; a
        session translates them to its scenario's states by name, see
        :meth:`~neuroloop.acquisition.base.BaseSource.map_intentions`).
    channel_type : str
        Type reported for every channel (``eeg`` by default; ``ecog``, ``lfp``, ...).
    unit : str, optional
        Physical dimension to assume instead of the file's.
    chunk_s : float
        Seconds read from the file at a time (memory stays bounded by this).

    Attributes
    ----------
    annotations : list of Annotation
    n_samples : int
    """

    scheme: ClassVar[str] = "edf"
    paced_by_device: ClassVar[bool] = False

    def __init__(self, path: str | os.PathLike[str], *, channels: Sequence[str] | None = None,
                 scale: float = 1.0, label_map: str | Mapping[str, str] | None = None,
                 channel_type: str = "eeg", unit: str | None = None,
                 chunk_s: float = 1.0) -> None:
        super().__init__()
        if channel_type not in CHANNEL_TYPES:
            raise ConfigError(f"type={channel_type!r} is not a channel type; use one of "
                              f"{', '.join(CHANNEL_TYPES)}")
        if not (math.isfinite(scale) and scale != 0):
            raise ConfigError(f"scale={scale!r} must be a finite, non-zero number")
        self.path = Path(path)
        reader = _open_reader(self.path)
        try:
            self._hdr = _read_header(reader, self.path, channels, float(scale), unit)
        finally:
            reader.close()
        self._setup(self._hdr, label_map, (channel_type,) * len(self._hdr.names), chunk_s)

    def _setup(self, hdr: _Header, label_map: str | Mapping[str, str] | None,
               channel_types: tuple[str, ...], chunk_s: float) -> None:
        """Labels, info and buffers from a file's header (shared with other file readers,
        e.g. :class:`~neuroloop.io.mne_source.MneSource`)."""
        self._hdr = hdr
        self.label_map = parse_label_map(label_map)
        self.annotations: list[Annotation] = list(hdr.annotations)
        self._intervals, names = _label_intervals(self.annotations, self.label_map,
                                                  hdr.n_samples, hdr.sampling_rate_hz)
        if self.label_map and not self._intervals:
            texts = sorted({a.text for a in self.annotations})[:8]
            raise ConfigError(f"no annotation of {self.path.name} matches labels= (its "
                              f"annotations: {', '.join(texts) or 'none'}); fix the label map")
        self.info = SourceInfo(channel_names=hdr.names,
                               channel_types=channel_types,
                               sampling_rate_hz=hdr.sampling_rate_hz, unit="uV",
                               intention_names=names)
        self.n_samples = hdr.n_samples
        self._chunk = max(1, int(round(chunk_s * hdr.sampling_rate_hz)))
        self._reader: Any = None
        self._buf = np.zeros((0, len(hdr.names)))
        self._col = np.zeros(0)
        self._buf_start = 0
        self._buf_n = 0
        self._pos = 0
        self._interval = 0
        self._cap = 0
        self._data = np.zeros((0, len(hdr.names)))
        self._labels = np.zeros(0, dtype=np.int8)
        self._full: Block | None = None

    @classmethod
    def from_url(cls, scheme: str, location: str, options: dict[str, Any]) -> EdfSource:
        """``edf://FILE?channels=A,B&scale=1&labels=T0:rest,T1:left&type=ecog&unit=uV``."""
        opts = dict(options)
        for key in _GENERIC_OPTIONS:  # passed to every source by a scenario; a file has no use
            opts.pop(key, None)
        channels = opts.pop("channels", None)
        chan_list = ([c for c in str(channels).split(",") if c.strip()]
                     if channels is not None else None)
        try:
            scale = float(opts.pop("scale", 1.0))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{scheme} option scale must be a number; e.g. scale=1.0") from exc
        labels = opts.pop("labels", opts.pop("label_map", None))
        channel_type = str(opts.pop("type", "eeg"))
        unit = opts.pop("unit", None)
        if opts:
            raise ConfigError(f"unknown {scheme} option(s) {', '.join(sorted(opts))}; use "
                              "channels=, scale=, labels=, type=, unit=")
        if not location:
            raise ConfigError(f"{scheme} URL has no file; use {scheme}://PATH/TO/FILE.{scheme}")
        return cls(location, channels=chan_list, scale=scale, label_map=labels,
                   channel_type=channel_type, unit=None if unit is None else str(unit))

    @property
    def exhausted(self) -> bool:
        return self._pos >= self.n_samples

    def annotation_events(self) -> list[dict[str, Any]]:
        """Annotations as event dicts (``onset_s``, ``duration_s``, ``text``, ``sample``,
        ``label``: intention index or -1)."""
        names = self.info.intention_names
        fs = self.info.sampling_rate_hz
        lut = self._label_lut  # set by map_intentions: labels are then the scenario's
        out = []
        for a in self.annotations:
            name = self.label_map.get(a.text)
            label = names.index(name) if name is not None else NO_LABEL
            out.append({**a.to_dict(), "sample": int(round(a.onset_s * fs)),
                        "label": int(lut[label]) if lut is not None else label})
        return out

    def map_intentions(self, names: Sequence[str], scenario: str = "") -> None:
        """Label samples with indices into ``names`` (see
        :meth:`BaseSource.map_intentions`); a label naming a state outside ``names`` is a
        :class:`ConfigError` that names the annotation."""
        _check_label_names(self.label_map, tuple(names), scenario)
        super().map_intentions(names, scenario)

    def missing_intention_message(self, name: str, where: str) -> str | None:
        """Why calibration data from this file has no sample labelled ``name``: labels=
        maps no annotation to it, or maps only annotations the file does not have."""
        given = ", ".join(f"{t}:{n}" for t, n in self.label_map.items()) or "nothing"
        texts = sorted({a.text for a in self.annotations})
        if name not in self.label_map.values():
            unmapped = [t for t in texts if t not in self.label_map]
            eg = f", e.g. {unmapped[0]}:{name}" if unmapped else ""
            return (f"calibration data of {self.path.name} has no hops labelled {name!r} "
                    f"(labels= gives {given}); add an annotation mapped to {name}{eg}")
        mapped = [t for t, n in self.label_map.items() if n == name]
        if not any(a.text in mapped for a in self.annotations):
            shown = ", ".join(texts[:8]) + (", ..." if len(texts) > 8 else "")
            return (f"calibration data of {self.path.name} has no hops labelled {name!r}: "
                    f"labels= maps {', '.join(mapped)} to {name} but the file has no such "
                    f"annotation (its annotations: {shown or 'none'}); fix labels=")
        return None

    def _open(self) -> None:
        self._reader = _open_reader(self.path)
        self._pos = 0
        self._buf_start = 0
        self._buf_n = 0
        self._interval = 0
        n_ch = len(self._hdr.names)
        self._buf = np.zeros((self._chunk, n_ch))
        self._col = np.zeros(self._chunk)

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _fill(self, start: int) -> None:
        hdr = self._hdr
        n = min(self._chunk, hdr.n_samples - start)
        for j, i in enumerate(hdr.indices):
            self._reader.readsignal(i, start, n, self._col)
            np.multiply(self._col[:n], hdr.factors[j], out=self._buf[:n, j])
        self._buf_start = start
        self._buf_n = n

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        if self._pos >= self.n_samples:
            return None
        if max_samples != self._cap:
            self._cap = max_samples
            self._data = np.zeros((max_samples, len(self._hdr.names)))
            self._labels = np.full(max_samples, NO_LABEL, dtype=np.int8)
            self._full = Block(data=self._data, labels=self._labels)
        k = min(max_samples, self.n_samples - self._pos)
        done = 0
        while done < k:
            pos = self._pos + done
            if not (self._buf_start <= pos < self._buf_start + self._buf_n):
                self._fill(pos)
            j = pos - self._buf_start
            m = min(k - done, self._buf_n - j)
            self._data[done:done + m] = self._buf[j:j + m]
            done += m
        s0 = self._pos
        self._fill_labels(s0, k)
        self._pos += k
        if k == max_samples:
            block = self._full
            assert block is not None
            block.first_index = s0
            return block
        return Block(data=self._data[:k], first_index=s0, labels=self._labels[:k])

    def _fill_labels(self, s0: int, k: int) -> None:
        labels = self._labels
        labels[:k] = NO_LABEL
        s1 = s0 + k
        iv = self._intervals
        i = self._interval
        while i < len(iv) and iv[i][1] <= s0:
            i += 1
        self._interval = i
        while i < len(iv) and iv[i][0] < s1:
            start, stop, label = iv[i]
            if stop > s0:
                labels[max(start, s0) - s0:min(stop, s1) - s0] = label
            i += 1


# -- export -----------------------------------------------------------------------------------
def _edf_number(value: float, outward: int) -> float:
    """``value`` rounded outward (``outward`` = -1 down, +1 up) to at most 8 characters, the
    width of an EDF header number field."""
    for decimals in range(6, -1, -1):
        q = 10.0 ** decimals
        v = (math.floor(value * q) if outward < 0 else math.ceil(value * q)) / q
        text = f"{v:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{v:.0f}"
        if len(text) <= 8:
            return float(text)
    raise RecordingError(f"signal range {value:g} uV does not fit an EDF header; the samples are "
                         "corrupt")


def _physical_range(rec: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel (min, max) of the finite samples, read in chunks; and the non-finite count."""
    n_ch = rec.n_channels
    lo = np.full(n_ch, np.inf)
    hi = np.full(n_ch, -np.inf)
    bad = 0
    buf = np.empty((65536, n_ch))
    for row in range(0, rec.n_samples, buf.shape[0]):
        k = rec.read_samples(row, buf)
        chunk = buf[:k]
        finite = np.isfinite(chunk)
        bad += int(chunk.size - np.count_nonzero(finite))
        lo = np.minimum(lo, np.where(finite, chunk, np.inf).min(axis=0))
        hi = np.maximum(hi, np.where(finite, chunk, -np.inf).max(axis=0))
    return lo, hi, bad


class _Annotations:
    """Collects export annotations; coalesces runs of identical interlock events."""

    def __init__(self) -> None:
        self.items: list[tuple[float, float, str, int]] = []  # onset, duration, text, priority

    def add(self, onset_s: float, text: str, duration_s: float = -1.0, priority: int = 0) -> None:
        self.items.append((float(onset_s), float(duration_s), text[:_MAX_ANNOTATION_CHARS],
                           priority))


def _cycle_annotations(rec: Any, first_index0: int, ann: _Annotations) -> dict[int, float]:
    """Intention, stimulation and supervisor-state changes; returns cycle -> onset_s."""
    from ..safety.events import SupervisorState
    from ..stimulation.command import PROGRAM_OFF

    names = rec.intention_names
    fs = rec.sampling_rate_hz
    hop = rec.hop_samples or 1
    dtype_names = rec.cycle_dtype.names or ()

    def state_name(s: int) -> str:
        return names[s] if 0 <= s < len(names) else str(s)

    cycle_time: dict[int, float] = {}
    prev: dict[str, Any] = {"true": None, "decoded": None, "stim": None, "sup": None}
    buf = np.zeros(4096, dtype=rec.cycle_dtype)
    for start in range(0, rec.n_cycles, buf.shape[0]):
        k = rec.read_cycles(start, buf)
        for row in buf[:k]:
            first = int(row["first_sample"]) if "first_sample" in dtype_names else -1
            if first < 0:
                continue
            t = (first + hop - first_index0) / fs
            cycle_time[int(row["cycle"]) if "cycle" in dtype_names else start] = t
            if "true_state" in dtype_names:
                ts = int(row["true_state"])
                if ts != prev["true"] and ts >= 0:
                    ann.add(t, f"true: {state_name(ts)}", priority=2)
                prev["true"] = ts
            if "state" in dtype_names:
                ds = int(row["state"])
                if ds != prev["decoded"]:
                    ann.add(t, f"decoded: {state_name(ds)}", priority=2)
                prev["decoded"] = ds
            if "program_id" in dtype_names and "amplitude_ma" in dtype_names:
                pid = int(row["program_id"])
                on = pid != PROGRAM_OFF and bool(np.any(row["amplitude_ma"] != 0))
                stim = (on, pid if on else PROGRAM_OFF)
                if stim != prev["stim"] and not (prev["stim"] is None and not on):
                    ann.add(t, f"stim on: {state_name(pid)}" if on else "stim off", priority=3)
                prev["stim"] = stim
            if "supervisor_state" in dtype_names:
                sup = int(row["supervisor_state"])
                if sup != prev["sup"]:
                    try:
                        label = SupervisorState(sup).name
                    except ValueError:
                        label = str(sup)
                    ann.add(t, f"supervisor: {label}", priority=1)
                prev["sup"] = sup
    return cycle_time


def _event_annotations(rec: Any, cycle_time: Mapping[int, float], ann: _Annotations) -> None:
    """Interlock events (runs of the same reason merged), notes and link errors."""
    run: list[Any] | None = None  # [reason, onset, last_time, count, last_cycle]

    def close_run() -> None:
        if run is not None:
            reason, onset, last, count, _ = run
            text = f"interlock: {reason}" + (f" x{count}" if count > 1 else "")
            ann.add(onset, text, duration_s=max(0.0, last - onset) if count > 1 else -1.0,
                    priority=1)

    for ev in rec.events():
        cycle = ev.get("cycle")
        t = cycle_time.get(cycle) if isinstance(cycle, int) else None
        if t is None:
            continue
        kind = ev.get("kind")
        if kind == "interlock":
            reason = str(ev.get("reason", "?"))
            if run is not None and run[0] == reason and cycle - run[4] <= 1:
                run[2], run[3], run[4] = t, run[3] + 1, cycle
                continue
            close_run()
            run = [reason, t, t, 1, cycle]
        elif kind == "annotation":
            ann.add(t, f"note: {ev.get('text', '')}", priority=2)
        else:
            what = ev.get("reason") or ev.get("error") or ev.get("type") or kind
            ann.add(t, f"{kind}: {what}", priority=0)
    close_run()


def export_edf(session_dir: str | os.PathLike[str], out_path: str | os.PathLike[str],
               *, as_json: bool = False) -> dict[str, Any]:
    """Write a recorded session as EDF+ (or BDF+ when ``out_path`` ends in ``.bdf``).

    Every channel is written with its physical range taken from the data (finite samples,
    1 % margin) on 16 bits (EDF+) or 24 bits (BDF+). Samples lost by the device (gaps in
    the recording) and non-finite samples are written as 0 and annotated. Annotations mark
    true and decoded intention changes, stimulation on/off (with the program), supervisor
    state changes and interlock events (a run of the same reason is one annotation with a
    duration and a count). The last data record is padded with zeros, and a ``padding: N zero
    samples`` annotation spans the padding. A progress bar with an ETA is drawn on a terminal
    (:class:`neuroloop.progress.Progress`; never with ``as_json``).

    Returns
    -------
    dict
        ``path``, ``n_channels``, ``n_samples`` (including gaps), ``duration_s`` (whole
        records), ``sampling_rate_hz``, ``annotations`` (written), ``annotations_dropped``,
        ``gap_samples``, ``nonfinite_samples``, ``padding_samples``.
    """
    import pyedflib

    rec = open_recording(session_dir)
    out = Path(out_path)
    bdf = out.suffix.lower() == ".bdf"
    if rec.n_samples == 0:
        raise RecordingError(f"{rec.path} holds no samples; nothing to export")
    fs = rec.sampling_rate_hz
    blocks_buf = np.zeros((4096, 3), dtype=np.int64)
    rec.read_blocks(0, blocks_buf[:1])
    first_index0 = int(blocks_buf[0, 0])
    rec.read_blocks(rec.n_blocks - 1, blocks_buf[:1])
    span = int(blocks_buf[0, 0] + blocks_buf[0, 1]) - first_index0

    lo, hi, nonfinite = _physical_range(rec)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 0.0)
    if nonfinite or span > rec.n_samples:  # zeros are written for gaps and non-finite samples
        lo = np.minimum(lo, 0.0)
        hi = np.maximum(hi, 0.0)
    margin = np.maximum((hi - lo) * 0.01, 1e-3)
    flat = hi - lo < 1e-9
    lo = np.where(flat, lo - 1.0, lo - margin)
    hi = np.where(flat, hi + 1.0, hi + margin)
    dmin, dmax = (-8388608, 8388607) if bdf else (-32768, 32767)
    headers: list[dict[str, str | int | float | None]] = []
    for j, name in enumerate(rec.channel_names):
        headers.append({"label": name[:16], "dimension": "uV", "sample_frequency": fs,
                        "physical_min": _edf_number(float(lo[j]), -1),
                        "physical_max": _edf_number(float(hi[j]), +1),
                        "digital_min": dmin, "digital_max": dmax,
                        "transducer": rec.channel_types[j], "prefilter": ""})

    ann = _Annotations()
    gap_samples = _gap_annotations(rec, first_index0, ann)
    cycle_time = _cycle_annotations(rec, first_index0, ann)
    _event_annotations(rec, cycle_time, ann)

    file_type = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    try:
        writer = pyedflib.EdfWriter(str(out), rec.n_channels, file_type=file_type)
    except OSError as exc:
        raise RecordingError(f"cannot write {out}: {exc}; check the path") from exc
    try:
        writer.setSignalHeaders(headers)
        writer.setEquipment("neuroloop")
        scenario = rec.meta.get("scenario")
        if scenario:
            safe = "".join(c if c.isascii() and c.isalnum() or c in "-_." else "_"
                           for c in str(scenario))
            writer.setRecordingAdditional(f"scenario={safe}"[:30])
        created = rec.meta.get("created_utc")
        if isinstance(created, str):
            try:
                start = _dt.datetime.fromisoformat(created).replace(tzinfo=None)
                writer.setStartdatetime(start.replace(microsecond=0))
            except ValueError:
                pass
        writer.update_header()
        spr = int(writer.get_smp_per_record(0))
        record_s = spr / fs
        n_records = max(1, math.ceil(span / spr))
        # writeAnnotation is stored one TAL per record and annotation signal: size the signals.
        # Three slots are kept for the notes about padding, non-finite samples and dropped
        # annotations.
        needed = math.ceil((len(ann.items) + 3) / n_records)
        n_signals = max(1, min(_MAX_ANNOTATION_SIGNALS, needed))
        capacity = n_signals * n_records - 3
        items = sorted(ann.items, key=lambda a: a[0])
        dropped = 0
        if len(items) > capacity:
            keep = sorted(range(len(items)), key=lambda i: (-items[i][3], items[i][0]))
            keep_set = set(keep[:max(0, capacity)])
            dropped = len(items) - len(keep_set)
            items = [a for i, a in enumerate(items) if i in keep_set]
        writer.set_number_of_annotation_signals(n_signals)
        with Progress(n_records, "export EDF", unit="record", as_json=as_json) as bar:
            _write_records(rec, writer, spr, first_index0, span, bar)
        padding = n_records * spr - span
        if padding:
            items.append((span / fs, padding / fs,
                          f"padding: {padding} zero samples", 0))
        if nonfinite:
            items.append((0.0, -1.0, f"{nonfinite} non-finite samples written as 0", 0))
        if dropped:
            items.append((0.0, -1.0, f"{dropped} annotations dropped (EDF capacity)", 0))
        for onset, duration, text, _ in items:
            writer.writeAnnotation(onset, duration, text)
    finally:
        writer.close()
    return {"path": str(out), "n_channels": rec.n_channels, "n_samples": span,
            "duration_s": n_records * record_s, "sampling_rate_hz": fs,
            "annotations": len(items), "annotations_dropped": dropped,
            "gap_samples": gap_samples, "nonfinite_samples": nonfinite,
            "padding_samples": padding}


def session_annotations(rec: Any) -> tuple[list[tuple[float, float, str, int]], int, int, int]:
    """The annotations :func:`export_edf` writes for a recording (gaps, intention,
    stimulation and supervisor changes, interlock runs, notes), before EDF's capacity rules.

    Returns
    -------
    items : list of (onset_s, duration_s, text, priority)
        Onsets in seconds from the recording's first sample; duration -1 for an instant.
    first_index0 : int
        Stream index of the first recorded sample.
    span : int
        Samples from the first to the last recorded one, gaps included.
    gap_samples : int
        Samples lost by the source.
    """
    blocks = np.zeros((1, 3), dtype=np.int64)
    rec.read_blocks(0, blocks)
    first_index0 = int(blocks[0, 0])
    rec.read_blocks(rec.n_blocks - 1, blocks)
    span = int(blocks[0, 0] + blocks[0, 1]) - first_index0
    ann = _Annotations()
    gap_samples = _gap_annotations(rec, first_index0, ann)
    cycle_time = _cycle_annotations(rec, first_index0, ann)
    _event_annotations(rec, cycle_time, ann)
    return ann.items, first_index0, span, gap_samples


def _gap_annotations(rec: Any, first_index0: int, ann: _Annotations) -> int:
    """Annotate every recorded gap (samples lost by the device); return the lost count."""
    fs = rec.sampling_rate_hz
    idx = np.zeros((4096, 3), dtype=np.int64)
    expected = first_index0
    lost = 0
    for b0 in range(0, rec.n_blocks, idx.shape[0]):
        nb = rec.read_blocks(b0, idx)
        for first, n, _row in idx[:nb]:
            if int(first) > expected:
                gap = int(first) - expected
                ann.add((expected - first_index0) / fs, f"samples lost: {gap}",
                        duration_s=gap / fs, priority=3)
                lost += gap
            expected = int(first) + int(n)
    return lost


def _write_records(rec: Any, writer: Any, spr: int, first_index0: int, span: int,
                   bar: Progress | None = None) -> None:
    """Stream the samples into data records of ``spr`` samples (gaps and non-finite values
    are written as 0; the last record is zero-padded)."""
    n_ch = rec.n_channels
    record = np.zeros((spr, n_ch))
    out = np.zeros(n_ch * spr)
    rec_start = 0  # stream position (relative to first_index0) of the current record

    def emit() -> None:
        np.nan_to_num(record, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        out[:] = record.T.reshape(-1)
        if writer.blockWritePhysicalSamples(out) < 0:
            raise RecordingError(f"pyEDFlib failed to write a data record of {rec.path}")
        record[:] = 0.0
        if bar is not None:
            bar.update(1)

    idx = np.zeros((4096, 3), dtype=np.int64)
    tmp = np.zeros((spr, n_ch))
    for b0 in range(0, rec.n_blocks, idx.shape[0]):
        nb = rec.read_blocks(b0, idx)
        for first, n, row in idx[:nb]:
            pos = int(first) - first_index0
            left, src = int(n), int(row)
            while left > 0:
                while pos >= rec_start + spr:
                    emit()
                    rec_start += spr
                j = pos - rec_start
                m = min(left, spr - j)
                got = rec.read_samples(src, tmp[:m])
                record[j:j + got] = tmp[:got]
                pos += m
                src += m
                left -= m
    while rec_start < span:
        emit()
        rec_start += spr
