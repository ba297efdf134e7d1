"""``LslOutlets``: a loop listener that publishes what the loop decides on Lab Streaming Layer.

``neuroloop run --lsl-out [PREFIX]`` adds one. Three outlets (``PREFIX`` defaults to
``neuroloop``), so that LabRecorder, OpenViBE, BCI2000 or any LSL inlet can record and show
them:

==========================  ===========  =====================================================
stream (name, type)         rate         channels (label, unit)
==========================  ===========  =====================================================
``PREFIX-decoder``,         1 / hop      ``state``, ``raw_state`` (index into the scenario's
``Decoder``                              intentions), ``confidence``, ``valid``,
                                         ``p_<intention>`` per state (probability), then the
                                         decoder's continuous outputs (its own names, units)
``PREFIX-stimulation``,     1 / hop      per-contact amplitude actually sent (``<contact>``,
``Stimulation``                          mA), ``case_ma``, ``program_id``, ``frequency_hz``,
                                         ``pulse_width_us``, ``interphase_gap_us``,
                                         ``supervisor_state``
``PREFIX-markers``,         irregular    one string per interlock event, annotation or link
``Markers``                              error: the event as one JSON object (as in
                                         ``events.jsonl``); ``{"kind": "start"|"stop"}``
==========================  ===========  =====================================================

Every outlet carries XDF meta-data: ``desc/channels/channel/{label,unit,type}`` and
``desc/neuroloop/{scenario,hop_s,intentions,contacts,version}``. Samples are stamped with the
LSL clock at the time the command was handed to the stimulator (``sent_ns``; in ``--fast``
runs, when they are pushed), markers with the event's time.

The loop is never blocked: :meth:`on_cycle` copies the cycle record into a preallocated ring
(a memcpy) and sets an event; a publisher thread (normal scheduling, not the loop's
SCHED_FIFO) pushes to liblsl, which sends from threads of its own. If the publisher falls a
whole ring behind, cycles are dropped (counted in ``dropped_cycles``), never waited for.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from typing import Any

import numpy as np

from ..acquisition.lsl import configure_liblsl, lsl_to_perf_offset_ns
from ..records import LoopListener
from .format import normalise_event, to_jsonable

__all__ = ["LslOutlets", "outlet_layout"]

_RING = 1024


def outlet_layout(meta: dict[str, Any], contact_names: list[str] | None = None
                  ) -> dict[str, list[tuple[str, str, str]]]:
    """Channels ``(label, unit, type)`` of the decoder and stimulation outlets for a run's
    ``on_start`` meta (also what an inlet checks against)."""
    states = [str(s) for s in meta.get("intention_names", [])]
    outputs = [str(s) for s in meta.get("output_names", [])]
    units = [str(u) for u in meta.get("output_units", [])] + [""] * len(outputs)
    n_contacts = int(meta.get("n_contacts", 0))
    contacts = contact_names or [f"E{i}" for i in range(n_contacts)]
    decoder = [("state", "index", "misc"), ("raw_state", "index", "misc"),
               ("confidence", "probability", "misc"), ("valid", "bool", "misc")]
    decoder += [(f"p_{s}", "probability", "misc") for s in states]
    decoder += [(name, units[i] or "none", "misc") for i, name in enumerate(outputs)]
    stim = [(c, "mA", "stim") for c in contacts]
    stim += [("case_ma", "mA", "stim"), ("program_id", "index", "misc"),
             ("frequency_hz", "Hz", "misc"), ("pulse_width_us", "us", "misc"),
             ("interphase_gap_us", "us", "misc"), ("supervisor_state", "index", "misc")]
    return {"decoder": decoder, "stimulation": stim}


class LslOutlets(LoopListener):
    """Publish the decoded state, the stimulation sent and interlock events on LSL.

    Parameters
    ----------
    prefix : str
        Stream name prefix (``PREFIX-decoder``, ``PREFIX-stimulation``, ``PREFIX-markers``).
    contact_names : list of str, optional
        Labels of the stimulation channels (default ``E0``...).
    linger_s : float
        At stop, how long to keep the outlets open for consumers to receive the last samples.

    Attributes
    ----------
    stats : dict
        ``cycles_published``, ``markers_published``, ``dropped_cycles``, ``max_push_us``.
    """

    def __init__(self, prefix: str = "neuroloop", *, contact_names: list[str] | None = None,
                 linger_s: float = 0.5) -> None:
        self.prefix = prefix
        self.contact_names = contact_names
        self.linger_s = float(linger_s)
        self.stats: dict[str, Any] = {"cycles_published": 0, "markers_published": 0,
                                      "dropped_cycles": 0, "max_push_us": 0.0}
        self._outlets: dict[str, Any] = {}
        self._ring: np.ndarray | None = None
        self._ring_bytes: memoryview | None = None
        self._row_bytes = 0
        self._head = 0
        self._tail = 0
        self._last_record: np.ndarray | None = None
        self._last_bytes: memoryview | None = None
        self._events: collections.deque[tuple[int, list]] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._fast = False
        self._offset_ns = 0
        self._n_states = 0
        self._n_outputs = 0
        self._n_contacts = 0

    # -- LoopListener -----------------------------------------------------------------------
    def on_start(self, meta: dict) -> None:
        """Create the outlets (with their meta-data) and start the publisher thread."""
        configure_liblsl()
        from mne_lsl.lsl import StreamInfo, StreamOutlet

        options = meta.get("options") or {}
        self._fast = bool(options.get("fast"))
        self._offset_ns = lsl_to_perf_offset_ns()
        hop_s = float(meta.get("hop_samples", 1)) / float(
            (meta.get("channels") or {}).get("sampling_rate_hz", 1.0) or 1.0)
        rate = 1.0 / hop_s if hop_s > 0 else 0.0
        layout = outlet_layout(meta, self.contact_names)
        self._n_states = len(meta.get("intention_names", []))
        self._n_outputs = len(meta.get("output_names", []))
        self._n_contacts = int(meta.get("n_contacts", 0))
        scenario = str(meta.get("scenario", ""))
        uid = f"{os.getpid()}-{time.time_ns()}"
        for key, stype in (("decoder", "Decoder"), ("stimulation", "Stimulation")):
            chans = layout[key]
            info = StreamInfo(f"{self.prefix}-{key}", stype, len(chans), rate, "float64",
                              f"neuroloop-{key}-{uid}")
            info.set_channel_names([c[0] for c in chans])
            info.set_channel_units([c[1] for c in chans])
            info.set_channel_types([c[2] for c in chans])
            self._describe(info, meta, scenario, hop_s)
            self._outlets[key] = StreamOutlet(info, chunk_size=1)
        markers = StreamInfo(f"{self.prefix}-markers", "Markers", 1, 0.0, "string",
                             f"neuroloop-markers-{uid}")
        markers.set_channel_names(["event"])
        self._describe(markers, meta, scenario, hop_s)
        self._outlets["markers"] = StreamOutlet(markers, chunk_size=1)
        self._events.append((-1, [{"kind": "start", "scenario": scenario}]))
        self._thread = threading.Thread(target=self._publisher_main,
                                        name="neuroloop-lsl-out", daemon=True)
        self._thread.start()

    @staticmethod
    def _describe(info: Any, meta: dict[str, Any], scenario: str, hop_s: float) -> None:
        node = info.desc.append_child("neuroloop")
        node.append_child_value("scenario", scenario)
        node.append_child_value("hop_s", repr(hop_s))
        node.append_child_value("source_url", str(meta.get("source_url", "")))
        versions = meta.get("versions") or {}
        node.append_child_value("version", str(versions.get("neuroloop", "")))
        intentions = node.append_child("intentions")
        for name in meta.get("intention_names", []):
            intentions.append_child_value("intention", str(name))

    def on_cycle(self, record: np.ndarray) -> None:
        """Copy the cycle record into the ring and wake the publisher (no allocation)."""
        ring_bytes = self._ring_bytes
        if record is not self._last_record or ring_bytes is None:
            self._first_record(record)
            ring_bytes = self._ring_bytes
            assert ring_bytes is not None
        if self._head - self._tail >= _RING:
            self.stats["dropped_cycles"] += 1
            return
        rb = self._row_bytes
        i = self._head % _RING
        last = self._last_bytes
        assert last is not None
        ring_bytes[i * rb:(i + 1) * rb] = last
        self._head += 1
        self._wake.set()

    def _first_record(self, record: np.ndarray) -> None:
        rec = np.ascontiguousarray(record).reshape(1)
        if self._ring is None or self._ring.dtype != rec.dtype:
            self._ring = np.zeros(_RING, dtype=rec.dtype)
            self._ring_bytes = self._ring.view(np.uint8).data
            self._row_bytes = rec.dtype.itemsize
        if record.flags.c_contiguous and isinstance(record, np.ndarray):
            self._last_record = record
            self._last_bytes = record.reshape(1).view(np.uint8).data
        else:  # pragma: no cover - the loop hands a contiguous reused view
            self._last_record = None
            self._last_bytes = rec.view(np.uint8).data

    def on_events(self, events: list) -> None:
        """Queue events for the marker stream (handed over: serialised by the publisher)."""
        if events:
            self._events.append((self._head, list(events)))
            self._wake.set()

    def on_stop(self, summary: dict) -> None:
        """Publish what is left, a ``stop`` marker, keep the outlets ``linger_s`` for the
        consumers, close them; add ``lsl_out`` counters to the summary."""
        if self._thread is None:
            return
        self._events.append((self._head, [{"kind": "stop"}]))
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        if any(o.has_consumers for o in self._outlets.values()):
            time.sleep(self.linger_s)
        self._outlets.clear()  # mne-lsl destroys an outlet when it is collected
        if isinstance(summary, dict):
            summary["lsl_out"] = {"streams": [f"{self.prefix}-{k}" for k in
                                              ("decoder", "stimulation", "markers")],
                                  **self.stats}

    # -- publisher thread -------------------------------------------------------------------
    def _publisher_main(self) -> None:
        if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_OTHER"):
            try:  # never compete with the control thread
                if os.sched_getscheduler(0) != os.SCHED_OTHER:
                    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            except OSError:  # pragma: no cover - not permitted
                pass
        dec = np.zeros(4 + self._n_states + self._n_outputs)
        stim = np.zeros(self._n_contacts + 6)
        while True:
            self._wake.wait(0.1)
            self._wake.clear()
            stopping = self._stopping
            self._publish_cycles(dec, stim)
            self._publish_markers()
            if stopping:
                self._publish_cycles(dec, stim)
                self._publish_markers()
                return

    def _lsl_time(self, t_ns: int) -> float:
        """The loop's clock (ns) -> LSL clock (s); 0.0 (liblsl stamps 'now') in --fast runs."""
        if self._fast or t_ns <= 0:
            return 0.0
        return (int(t_ns) - self._offset_ns) / 1e9

    def _publish_cycles(self, dec: np.ndarray, stim: np.ndarray) -> None:
        ring = self._ring
        if ring is None:
            return
        dec_out = self._outlets["decoder"]
        stim_out = self._outlets["stimulation"]
        ns, no, nc = self._n_states, self._n_outputs, self._n_contacts
        while self._tail < self._head:
            row = ring[self._tail % _RING]
            t0 = time.perf_counter_ns()
            dec[0] = row["state"]
            dec[1] = row["raw_state"]
            dec[2] = row["confidence"]
            dec[3] = row["valid"]
            dec[4:4 + ns] = row["probabilities"]
            if no:
                dec[4 + ns:] = row["outputs"]
            stim[:nc] = row["amplitude_ma"]
            stim[nc] = row["case_ma"]
            stim[nc + 1] = row["program_id"]
            stim[nc + 2] = row["frequency_hz"]
            stim[nc + 3] = row["pulse_width_us"]
            stim[nc + 4] = row["interphase_gap_us"]
            stim[nc + 5] = row["supervisor_state"]
            ts = self._lsl_time(int(row["sent_ns"]))
            dec_out.push_sample(dec, timestamp=ts)
            stim_out.push_sample(stim, timestamp=ts)
            self._tail += 1
            self.stats["cycles_published"] += 1
            us = (time.perf_counter_ns() - t0) / 1000.0
            if us > self.stats["max_push_us"]:
                self.stats["max_push_us"] = us

    def _publish_markers(self) -> None:
        out = self._outlets["markers"]
        while self._events:
            cycle, events = self._events.popleft()
            for ev in events:
                body = normalise_event(ev, cycle, -1)
                text = json.dumps(to_jsonable(body), separators=(",", ":"))
                out.push_sample([text], timestamp=self._lsl_time(int(body.get("time_ns") or -1)))
                self.stats["markers_published"] += 1
