"""What the loop keeps of each cycle: the record row for listeners, and the run's history.

:class:`CycleRecordWriter` fills the one preallocated structured row (``cycle_dtype``) the
listeners read after each cycle; :class:`CycleHistory` keeps the few per-cycle columns the run
summary needs (true and decoded state, program, stimulation on, last sample), in rings of a
fixed capacity. Neither allocates per cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..acquisition.base import NO_LABEL
from ..records import cycle_dtype
from ..stimulation.command import StimCommand

__all__ = ["CycleRecordWriter", "CycleHistory"]


class CycleRecordWriter:
    """Fills one preallocated ``cycle_dtype`` row per cycle.

    Parameters
    ----------
    n_features, n_states, n_contacts, n_outputs : int
        The sizes that fix the record layout (``n_outputs``: the decoder's continuous
        outputs, ``output_schema_.n_outputs``).
    """

    def __init__(self, n_features: int, n_states: int, n_contacts: int,
                 n_outputs: int = 0) -> None:
        self.dtype = cycle_dtype(n_features, n_states, n_contacts, n_outputs)
        self.record = np.zeros(1, dtype=self.dtype)
        r = self.record
        names = self.dtype.names
        assert names is not None  # cycle_dtype is a structured dtype
        self._scalar = {name: r[name] for name in names
                        if self.dtype[name].shape == ()}
        self._probs = r["probabilities"][0]
        self._outputs = r["outputs"][0]
        #: The record's feature row (also the loop's placeholder on a stalled cycle).
        self.features = r["features"][0]
        self._request = r["request_amplitude_ma"][0]
        self._amplitude = r["amplitude_ma"][0]

    def fill(self, *, cycle: int, first_sample: int, flags: int, available_ns: int,
             now_ns: int, sent_ns: int, compute_ns: int, e2e_ns: int, true_state: int,
             output: Any, features: np.ndarray, request: StimCommand, command: StimCommand,
             supervisor_state: int, n_events: int) -> np.ndarray:
        """Write one cycle; ``output`` is the decoder output, or None on a stalled cycle.

        Returns
        -------
        ndarray, shape (1,), cycle_dtype
            The row (overwritten by the next call).
        """
        s = self._scalar
        s["cycle"][0] = cycle
        s["first_sample"][0] = first_sample
        s["available_ns"][0] = available_ns
        s["now_ns"][0] = now_ns
        s["sent_ns"][0] = sent_ns
        s["compute_ns"][0] = compute_ns
        s["e2e_ns"][0] = e2e_ns
        s["flags"][0] = flags
        s["true_state"][0] = true_state
        if output is not None:
            s["raw_state"][0] = output.raw_state
            s["state"][0] = output.state
            s["valid"][0] = output.valid
            s["confidence"][0] = output.confidence
            self._probs[:] = output.probabilities
            self._outputs[:] = output.values
            self.features[:] = features
        else:
            s["raw_state"][0] = 0
            s["state"][0] = 0
            s["valid"][0] = 0
            s["confidence"][0] = 0.0
            self._probs[:] = 0.0
            self._outputs[:] = np.nan
            self.features[:] = np.nan
        self._request[:] = request.amplitude_ma
        self._amplitude[:] = command.amplitude_ma
        s["pulse_width_us"][0] = command.pulse_width_us
        s["frequency_hz"][0] = command.frequency_hz
        s["interphase_gap_us"][0] = command.interphase_gap_us
        s["case_ma"][0] = command.case_ma
        s["program_id"][0] = command.program_id
        s["supervisor_state"][0] = supervisor_state
        s["n_events"][0] = n_events
        return self.record


class CycleHistory:
    """Per-cycle columns for the run summary, in rings of ``capacity`` cycles.

    Parameters
    ----------
    capacity : int
        Cycles kept (the oldest are overwritten beyond that).
    """

    def __init__(self, capacity: int) -> None:
        cap = int(capacity)
        if cap < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = cap
        self.true_state = np.full(cap, NO_LABEL, dtype=np.int8)
        self.state = np.zeros(cap, dtype=np.int8)
        self.program_id = np.full(cap, -1, dtype=np.int16)
        self.stim_on = np.zeros(cap, dtype=np.bool_)
        self.last_sample = np.zeros(cap, dtype=np.int64)

    def add(self, cycle: int, true_state: int, state: int, program_id: int, stim_on: bool,
            last_sample: int) -> None:
        i = cycle % self.capacity
        self.true_state[i] = true_state
        self.state[i] = state
        self.program_id[i] = program_id
        self.stim_on[i] = stim_on
        self.last_sample[i] = last_sample

    def ordered(self, n_cycles: int) -> dict[str, np.ndarray]:
        """Each column's retained cycles of a run of ``n_cycles``, oldest first (copies)."""
        n = min(n_cycles, self.capacity)
        order = np.arange(n_cycles - n, n_cycles) % self.capacity
        return {"true_state": self.true_state[order], "state": self.state[order],
                "program_id": self.program_id[order], "stim_on": self.stim_on[order],
                "last_sample": self.last_sample[order]}
