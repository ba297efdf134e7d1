"""What a report draws, read from a recording in one chunked pass (constant memory per row).

:func:`load_session` reads the per-cycle fields the figures need out of ``cycles.rec`` with
:meth:`~neuroloop.io.reader.Recording.read_cycles` (``os.preadv`` into one reused buffer, so a
one-hour recording costs the memory of its compact columns, not of its 512 features), and the
events out of ``events.jsonl``. It is written against the recording format
(``docs/recording.md``), not against one scenario: any number of states, contacts and
continuous outputs, a recording killed mid-run (no summary), a format-1 recording (no outputs).

:func:`bucket_edges` and :func:`envelope` decimate long series for plotting: each bucket keeps
its minimum, maximum and mean, so a one-cycle spike survives the decimation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io.reader import Recording
from ..records import FLAG_DEADLINE_MISSED, FLAG_SOURCE_STALL

__all__ = ["SessionData", "load_session", "bucket_edges", "envelope", "MAX_POINTS"]

#: Points per plotted series above which series are decimated (min/max/mean per bucket).
MAX_POINTS = 2000
_CHUNK_ROWS = 4096


@dataclass
class SessionData:
    """The compact columns of a recording (one entry per recorded cycle).

    Attributes
    ----------
    t_s : ndarray (n_cycles,)
        Time of each cycle from the first one, s (from the hop's last sample index and the
        sampling rate, so it is the stream's time in live, ``--fast`` and replayed runs alike).
    cycle, flags : ndarray (n_cycles,) int64 / uint32
    true_state, state, raw_state : ndarray (n_cycles,) int8
    confidence : ndarray (n_cycles,) float64
    outputs : ndarray (n_cycles, n_outputs) float64
    amplitude_ma, request_amplitude_ma : ndarray (n_cycles, n_contacts) float64
        The safe command and the policy's request, mA (cathodic negative).
    program_id : ndarray (n_cycles,) int16
    supervisor_state : ndarray (n_cycles,) uint8
    compute_us, e2e_us : ndarray (n_cycles,) float64
    events : list of dict
    """

    recording: Recording
    t_s: np.ndarray
    cycle: np.ndarray
    flags: np.ndarray
    true_state: np.ndarray
    state: np.ndarray
    raw_state: np.ndarray
    confidence: np.ndarray
    outputs: np.ndarray
    amplitude_ma: np.ndarray
    request_amplitude_ma: np.ndarray
    pulse_width_us: np.ndarray
    frequency_hz: np.ndarray
    program_id: np.ndarray
    supervisor_state: np.ndarray
    compute_us: np.ndarray
    e2e_us: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)
    events_truncated: int = 0

    @property
    def n_cycles(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def meta(self) -> dict[str, Any]:
        return self.recording.meta

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0]) if self.n_cycles > 1 else 0.0

    @property
    def deadline_missed(self) -> np.ndarray:
        return (self.flags & FLAG_DEADLINE_MISSED) != 0

    @property
    def stalled(self) -> np.ndarray:
        return (self.flags & FLAG_SOURCE_STALL) != 0

    @property
    def program_amplitude_ma(self) -> np.ndarray:
        """Total cathodic current of each cycle's command, mA (>= 0): the program amplitude."""
        amp = self.amplitude_ma
        return np.where(amp < 0.0, -amp, 0.0).sum(axis=1)


#: events kept in memory for listing; the rest are counted (``events_truncated``)
MAX_EVENTS = 200_000


def load_session(recording: Recording, progress: Any = None) -> SessionData:
    """Read the columns the report draws out of ``recording`` in chunks.

    Parameters
    ----------
    recording : Recording
    progress : callable(int) or None
        Called with the number of cycles read after each chunk.
    """
    n = recording.n_cycles
    n_c, n_o = recording.n_contacts, recording.n_outputs
    buf = np.empty(min(_CHUNK_ROWS, max(n, 1)), dtype=recording.cycle_dtype)
    cols: dict[str, np.ndarray] = {
        "cycle": np.empty(n, np.int64), "first_sample": np.empty(n, np.int64),
        "flags": np.empty(n, np.uint32), "true_state": np.empty(n, np.int8),
        "state": np.empty(n, np.int8), "raw_state": np.empty(n, np.int8),
        "confidence": np.empty(n), "compute_ns": np.empty(n, np.int64),
        "e2e_ns": np.empty(n, np.int64), "program_id": np.empty(n, np.int16),
        "supervisor_state": np.empty(n, np.uint8), "pulse_width_us": np.empty(n),
        "frequency_hz": np.empty(n),
    }
    outputs = np.empty((n, n_o))
    amp = np.empty((n, n_c))
    req = np.empty((n, n_c))
    start = 0
    while start < n:
        got = recording.read_cycles(start, buf)
        if got <= 0:
            break
        rows = buf[:got]
        for name, col in cols.items():
            col[start:start + got] = rows[name]
        if n_o:
            outputs[start:start + got] = rows["outputs"]
        amp[start:start + got] = rows["amplitude_ma"]
        req[start:start + got] = rows["request_amplitude_ma"]
        start += got
        if progress is not None:
            progress(got)
    if start < n:  # the file shrank while being read: keep what was read
        n = start
    hop = recording.hop_samples or 1
    fs = recording.sampling_rate_hz
    last_sample = cols["first_sample"][:n] + hop
    t_s = (last_sample - (last_sample[0] if n else 0)) / fs
    events: list[dict[str, Any]] = []
    dropped = 0
    for ev in recording.events():
        if len(events) < MAX_EVENTS:
            events.append(ev)
        else:
            dropped += 1
    return SessionData(
        recording=recording, t_s=t_s.astype(np.float64), cycle=cols["cycle"][:n],
        flags=cols["flags"][:n], true_state=cols["true_state"][:n], state=cols["state"][:n],
        raw_state=cols["raw_state"][:n], confidence=cols["confidence"][:n],
        outputs=outputs[:n], amplitude_ma=amp[:n], request_amplitude_ma=req[:n],
        pulse_width_us=cols["pulse_width_us"][:n], frequency_hz=cols["frequency_hz"][:n],
        program_id=cols["program_id"][:n], supervisor_state=cols["supervisor_state"][:n],
        compute_us=cols["compute_ns"][:n] / 1000.0, e2e_us=cols["e2e_ns"][:n] / 1000.0,
        events=events, events_truncated=dropped)


def bucket_edges(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Start indices of at most ``max_points`` equal buckets over ``n`` samples (plus ``n``).

    Returns ``arange(n + 1)`` (one sample per bucket) when ``n <= max_points``.
    """
    if n <= max_points:
        return np.arange(n + 1)
    return np.unique(np.linspace(0, n, max_points + 1).astype(np.int64))


def envelope(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (min, max, mean) of ``values`` along axis 0, ignoring NaN.

    Parameters
    ----------
    values : ndarray (n, ...) float
    edges : ndarray (k + 1,) from :func:`bucket_edges`

    Returns
    -------
    lo, hi, mean : ndarray (k, ...)
        NaN for a bucket whose values are all NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    starts = edges[:-1]
    if v.shape[0] == 0 or starts.size == 0:
        empty = np.empty((0,) + v.shape[1:])
        return empty, empty, empty
    finite = np.isfinite(v)
    lo = np.minimum.reduceat(np.where(finite, v, np.inf), starts, axis=0)
    hi = np.maximum.reduceat(np.where(finite, v, -np.inf), starts, axis=0)
    total = np.add.reduceat(np.where(finite, v, 0.0), starts, axis=0)
    count = np.add.reduceat(finite.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    lo[count == 0] = np.nan
    hi[count == 0] = np.nan
    return lo, hi, mean
