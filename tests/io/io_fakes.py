"""Fakes for the recording tests: write a synthetic session through the real recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuroloop.io.recorder import SessionRecorder
from neuroloop.records import cycle_dtype
from neuroloop.safety.events import InterlockEvent, SupervisorState

INTENTIONS = ("rest", "left", "right")
#: Name and unit of the fake decoder's continuous outputs (as many as a session asks for).
OUTPUTS = (("confidence", "1"), ("state_margin", "1"), ("beta_power_db", "dB"))


@dataclass
class FakeSession:
    """What was handed to the recorder (the expected content of the recording)."""

    path: Path
    samples: np.ndarray  # (n, ch), concatenated blocks
    blocks: list[tuple[int, int]]  # (first_index, n) per on_samples call
    cycles: np.ndarray  # cycle_dtype rows
    events: list[Any] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def base_meta(n_channels: int, rate: float, hop: int, n_features: int, n_states: int,
              n_contacts: int, n_outputs: int | None = None) -> dict[str, Any]:
    """The loop's on_start metadata; ``n_outputs`` adds the decoder's output names and units
    (without it the recorder assumes no outputs)."""
    outputs: dict[str, Any] = {}
    if n_outputs is not None:
        outputs = {"output_names": [n for n, _ in OUTPUTS[:n_outputs]],
                   "output_units": [u for _, u in OUTPUTS[:n_outputs]]}
    return {
        "scenario": "test",
        "config": {"dsp": {"hop_samples": hop}, "source": {"url": "synthetic://test"}},
        "channels": {"names": [f"E{i}" for i in range(n_channels)],
                     "types": ["ecog"] * n_channels, "unit": "uV", "sampling_rate_hz": rate},
        "intention_names": list(INTENTIONS[:n_states]),
        "hop_samples": hop,
        "n_features": n_features, "n_states": n_states, "n_contacts": n_contacts,
        **outputs,
        "decoder_sha256": "0" * 64,
        "options": {"seed": 3},
    }


def abandon(rec: SessionRecorder) -> None:
    """Stop a recorder the way a crash right after a flush would: everything written, files
    closed, but ``meta.json`` never updated (no ``closed_cleanly``)."""
    rec._stopping = True
    rec._wake.set()
    assert rec._thread is not None
    rec._thread.join()
    rec._close_fds()
    rec._stopped = True


def write_session(path: Path, *, n_cycles: int = 40, n_channels: int = 4, hop: int = 10,
                  rate: float = 100.0, n_features: int = 6, n_states: int = 3,
                  n_contacts: int = 16, n_outputs: int = 2, seed: int = 0,
                  gaps: dict[int, int] | None = None,
                  split_blocks: bool = False, events_every: int = 7, close: bool = True,
                  created_utc: str | None = "2026-01-01T00:00:00+00:00",
                  **recorder_kw: Any) -> FakeSession:
    """Record ``n_cycles`` hops of random data (and a gap of ``gaps[k]`` samples before
    hop ``k``) with realistic-looking cycle rows; return what was recorded."""
    rng = np.random.default_rng(seed)
    gaps = gaps or {}
    dt = cycle_dtype(n_features, n_states, n_contacts, n_outputs)
    rec = SessionRecorder(path, created_utc=created_utc, **recorder_kw)
    meta = base_meta(n_channels, rate, hop, n_features, n_states, n_contacts, n_outputs)
    rec.on_start(meta)
    row = np.zeros(1, dtype=dt)
    samples, blocks, cycles, events = [], [], [], []
    first = 0
    state = 0
    for k in range(n_cycles):
        first += gaps.get(k, 0)
        data = rng.normal(0.0, 30.0, (hop, n_channels))
        if split_blocks:
            cut = int(rng.integers(1, hop))
            pieces = [(first, data[:cut]), (first + cut, data[cut:])]
        else:
            pieces = [(first, data)]
        for idx, piece in pieces:
            rec.on_samples(piece, idx)
            blocks.append((idx, piece.shape[0]))
        samples.append(data)
        if k % 9 == 0:
            state = int(rng.integers(0, n_states))
        row["cycle"] = k
        row["first_sample"] = first
        row["available_ns"] = (first + hop) * 10_000_000
        row["now_ns"] = row["available_ns"] + 1000
        row["sent_ns"] = row["now_ns"] + 50_000
        row["compute_ns"] = 40_000 + k
        row["e2e_ns"] = row["sent_ns"] - row["available_ns"]
        row["flags"] = 8 if gaps.get(k) else 0
        row["true_state"] = state
        row["raw_state"] = state
        row["state"] = state if k % 5 else 0
        row["valid"] = 1
        row["confidence"] = rng.random()
        row["probabilities"] = rng.dirichlet(np.ones(n_states))
        row["outputs"] = rng.normal(size=n_outputs)
        row["features"] = rng.normal(size=n_features)
        row["request_amplitude_ma"] = 0.0
        row["amplitude_ma"] = 0.0
        row["program_id"] = -1
        if row["state"][0] > 0:
            row["program_id"] = int(row["state"][0])
            row["request_amplitude_ma"][0, :2] = (-1.5, 1.5)
            row["amplitude_ma"][0, :2] = (-1.0, 1.0)
        row["pulse_width_us"] = 300.0
        row["frequency_hz"] = 40.0 if row["program_id"][0] >= 0 else 0.0
        row["supervisor_state"] = 2 if row["program_id"][0] >= 0 else 1
        n_ev = 0
        if events_every and k % events_every == 3:
            ev = [InterlockEvent("slew_up", k, int(row["now_ns"][0]), 1, 3.5, 1.0,
                                 SupervisorState.STIMULATING),
                  {"kind": "annotation", "text": f"note {k}"}]
            rec.on_events(ev)
            events.append(ev)
            n_ev = 1
        row["n_events"] = n_ev
        rec.on_cycle(row)
        cycles.append(row.copy())
        first += hop
    if close:
        rec.on_stop({"cycles": n_cycles})
    else:
        abandon(rec)
    return FakeSession(
        path=path,
        samples=np.concatenate(samples) if samples else np.zeros((0, n_channels)),
        blocks=blocks, cycles=np.concatenate(cycles) if cycles else np.zeros(0, dtype=dt),
        events=events, meta=meta)
