"""The per-cycle record: everything one control cycle decided, in one NumPy structured row.

The loop fills one preallocated row per cycle; listeners (the recorder, the live status)
read it. The layout is fixed by four sizes, so a recording can be opened with
``numpy.memmap(path, dtype=cycle_dtype(...))``.

Times are integer nanoseconds on the loop's clock (monotonic in live runs, simulated in
replay). ``now_ns`` is the time handed to the supervisor: replaying it reproduces every
time-based interlock decision of the live run.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["cycle_dtype", "CycleRows", "LoopListener", "FLAG_DEADLINE_MISSED", "FLAG_SOURCE_STALL",
           "FLAG_INPUT_INVALID", "FLAG_SAMPLES_LOST", "FLAG_INJECTED"]

#: ``flags`` bits of a cycle record.
FLAG_DEADLINE_MISSED = 1 << 0  # this cycle's e2e latency exceeded the deadline
FLAG_SOURCE_STALL = 1 << 1  # no fresh samples for this cycle (stale input)
FLAG_INPUT_INVALID = 1 << 2  # features/decoder output were not finite
FLAG_SAMPLES_LOST = 1 << 3  # the source reported a gap before this hop
FLAG_INJECTED = 1 << 4  # a fault was injected in this cycle (--inject)


def cycle_dtype(n_features: int, n_states: int, n_contacts: int,
                n_outputs: int = 0) -> np.dtype:
    """Structured dtype of one cycle record (little-endian, packed).

    ``n_outputs`` is the number of the decoder's continuous outputs (its
    ``output_schema_.n_outputs``); the ``outputs`` field is present even when it is 0
    (a zero-width field, 0 bytes).

    Fields
    ------
    cycle : int64                 control cycle index (0-based)
    first_sample : int64          stream index of the hop's first sample
    available_ns : int64          time the hop's last sample was available
    now_ns : int64                time handed to the supervisor
    sent_ns : int64               time the command was handed to the stimulator
    compute_ns : int64            features+decoder+mapper+supervisor compute time
    e2e_ns : int64                sent_ns - available_ns
    flags : uint32                FLAG_* bits
    true_state : int8             ground-truth intention at the hop's last sample (-1 unknown)
    raw_state, state : int8       decoder argmax and gated state
    valid : uint8                 decoder input valid
    confidence : float64
    probabilities : float64[n_states]
    outputs : float64[n_outputs]  the decoder's continuous outputs (``DecoderOutput.values``,
                                  named by its ``OutputSchema``); NaN on a stalled cycle
    features : float64[n_features]
    request_amplitude_ma : float64[n_contacts]   mapper output before the supervisor
    amplitude_ma : float64[n_contacts]           safe command
    pulse_width_us, frequency_hz, interphase_gap_us, case_ma : float64
    program_id : int16
    supervisor_state : uint8
    n_events : uint16             interlock events raised in this cycle
    """
    le = "<"
    return np.dtype(
        [
            ("cycle", le + "i8"),
            ("first_sample", le + "i8"),
            ("available_ns", le + "i8"),
            ("now_ns", le + "i8"),
            ("sent_ns", le + "i8"),
            ("compute_ns", le + "i8"),
            ("e2e_ns", le + "i8"),
            ("flags", le + "u4"),
            ("true_state", "i1"),
            ("raw_state", "i1"),
            ("state", "i1"),
            ("valid", "u1"),
            ("confidence", le + "f8"),
            ("probabilities", le + "f8", (n_states,)),
            ("outputs", le + "f8", (n_outputs,)),
            ("features", le + "f8", (n_features,)),
            ("request_amplitude_ma", le + "f8", (n_contacts,)),
            ("amplitude_ma", le + "f8", (n_contacts,)),
            ("pulse_width_us", le + "f8"),
            ("frequency_hz", le + "f8"),
            ("interphase_gap_us", le + "f8"),
            ("case_ma", le + "f8"),
            ("program_id", le + "i2"),
            ("supervisor_state", "u1"),
            ("n_events", le + "u2"),
        ],
        align=False,
    )


class CycleRows(Protocol):
    """Recorded cycle records as a replay reads them: an ndarray of :func:`cycle_dtype`, or
    a reader's :class:`~neuroloop.io.reader.RecordedCycles` (``shape`` and integer indexing)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, cycle: int, /) -> np.void: ...


class LoopListener:
    """Receives what the loop does; every method is optional. Must not block or allocate
    much: it runs inside the control cycle (buffer and flush in the background instead).

    A listener that raises is detached and its error reported in the run summary; it never
    stops the loop.
    """

    def on_start(self, meta: dict) -> None:
        """Called once before the first cycle with the run's metadata (config, channel
        info, versions, decoder hash)."""

    def on_armed(self, armed_ns: int) -> None:
        """The supervisor was armed at ``armed_ns`` (loop clock), later than the ``armed_ns``
        that :meth:`on_start`'s metadata planned (a live run arms after every listener has
        started, back to back with the device). Must be cheap: the first cycle follows."""

    def on_samples(self, data: np.ndarray, first_index: int) -> None:
        """Raw samples exactly as received, (n_samples, n_channels) float64, in stream order."""

    def on_cycle(self, record: np.ndarray) -> None:
        """The cycle's record, a 0-d/1-element array of :func:`cycle_dtype` (a view, reused)."""

    def on_events(self, events: list) -> None:
        """Interlock events, link errors and annotations, as dicts (JSON-serialisable)."""

    def on_stop(self, summary: dict) -> None:
        """Called once after the last cycle (also after an error) with the run summary."""
