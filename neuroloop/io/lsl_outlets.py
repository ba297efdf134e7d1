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

The loop is never blocked, and no thread competes with it for the interpreter: liblsl's push
only copies a sample into each consumer's bounded queue (dropping the oldest when a consumer
does not read; the network is served by liblsl's own threads), so :meth:`on_cycle` pushes in
place, after the command has left: a dozen ``numpy.copyto`` of the reused cycle record into
preallocated samples and two calls into liblsl with preallocated buffers (its cost is in
``stats['max_push_us']``; it is part of the cycle's bookkeeping stage, never of its
end-to-end latency). A first version handed cycles to a publisher thread; waking it every
cycle cost the loop the interpreter lock under load (bookkeeping p99 13.7 ms against 0.07 ms
without outlets, 60 s at load average 12), which this design does not.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from typing import Any

import numpy as np

from ..acquisition.lsl import configure_liblsl, lsl_to_perf_offset_ns
from ..records import LoopListener
from .format import normalise_event, to_jsonable

__all__ = ["LslOutlets", "outlet_layout"]

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
        ``cycles_published``, ``markers_published``, ``push_errors``, ``max_push_us``.
    """

    def __init__(self, prefix: str = "neuroloop", *, contact_names: list[str] | None = None,
                 linger_s: float = 0.5) -> None:
        self.prefix = prefix
        self.contact_names = contact_names
        self.linger_s = float(linger_s)
        self.stats: dict[str, Any] = {"cycles_published": 0, "markers_published": 0,
                                      "push_errors": 0, "max_push_us": 0.0}
        self._outlets: dict[str, Any] = {}
        self._bound: np.ndarray | None = None
        self._copies: list[tuple[np.ndarray, np.ndarray]] = []
        self._sent: np.ndarray | None = None
        self._dec = np.zeros(0)
        self._stim = np.zeros(0)
        self._fast = False
        self._offset_ns = 0
        self._n_states = 0
        self._n_outputs = 0
        self._n_contacts = 0
        self._started = False

    # -- LoopListener -----------------------------------------------------------------------
    def on_start(self, meta: dict) -> None:
        """Create the outlets (with their meta-data) and the preallocated samples."""
        configure_liblsl()
        from mne_lsl.lsl import StreamInfo, StreamOutlet
        from mne_lsl.lsl.load_liblsl import lib

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
        self._dec = np.zeros(len(layout["decoder"]))
        self._stim = np.zeros(len(layout["stimulation"]))
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
        # liblsl's push of one double sample, called with buffers made once
        self._push = lib.lsl_push_sample_dtp
        self._dec_out = self._outlets["decoder"]._obj
        self._stim_out = self._outlets["stimulation"]._obj
        self._dec_ptr = self._dec.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._stim_ptr = self._stim.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._through = ctypes.c_int(1)
        self._started = True
        self._push_marker({"kind": "start", "scenario": scenario}, -1, 0)

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

    def _bind(self, record: np.ndarray) -> None:
        """Views into the loop's reused record, and where each goes (made once)."""
        r = record.reshape(-1)[0:1]
        ns, no, nc = self._n_states, self._n_outputs, self._n_contacts
        dec, stim = self._dec, self._stim
        self._copies = [(dec[0:1], r["state"]), (dec[1:2], r["raw_state"]),
                        (dec[2:3], r["confidence"]), (dec[3:4], r["valid"]),
                        (dec[4:4 + ns], r["probabilities"][0])]
        if no:
            self._copies.append((dec[4 + ns:4 + ns + no], r["outputs"][0]))
        self._copies += [(stim[:nc], r["amplitude_ma"][0]), (stim[nc:nc + 1], r["case_ma"]),
                         (stim[nc + 1:nc + 2], r["program_id"]),
                         (stim[nc + 2:nc + 3], r["frequency_hz"]),
                         (stim[nc + 3:nc + 4], r["pulse_width_us"]),
                         (stim[nc + 4:nc + 5], r["interphase_gap_us"]),
                         (stim[nc + 5:nc + 6], r["supervisor_state"])]
        self._sent = r["sent_ns"]
        self._bound = record

    def on_cycle(self, record: np.ndarray) -> None:
        """Push the cycle's decoder and stimulation samples (nothing waits, nothing grows)."""
        if not self._started:
            return
        if record is not self._bound:
            self._bind(record)
        t0 = time.perf_counter_ns()
        for dst, src in self._copies:
            np.copyto(dst, src, casting="unsafe")
        assert self._sent is not None
        ts = ctypes.c_double(self._lsl_time(int(self._sent[0])))
        err = self._push(self._dec_out, self._dec_ptr, ts, self._through)
        err |= self._push(self._stim_out, self._stim_ptr, ts, self._through)
        if err:
            self.stats["push_errors"] += 1
        self.stats["cycles_published"] += 1
        us = (time.perf_counter_ns() - t0) / 1000.0
        if us > self.stats["max_push_us"]:
            self.stats["max_push_us"] = us

    def on_events(self, events: list) -> None:
        """One marker per event, its JSON form (as in ``events.jsonl``)."""
        if not self._started:
            return
        cycle = self.stats["cycles_published"]
        for ev in events:
            self._push_marker(ev, cycle, -1)

    def _push_marker(self, event: Any, cycle: int, now_ns: int) -> None:
        body = normalise_event(event, cycle, now_ns)
        text = json.dumps(to_jsonable(body), separators=(",", ":"))
        self._outlets["markers"].push_sample([text],
                                             timestamp=self._lsl_time(int(body["time_ns"])))
        self.stats["markers_published"] += 1

    def on_stop(self, summary: dict) -> None:
        """Push a ``stop`` marker, keep the outlets ``linger_s`` for the consumers, close them;
        add ``lsl_out`` counters to the summary."""
        if not self._started:
            return
        self._push_marker({"kind": "stop"}, self.stats["cycles_published"], -1)
        self._started = False
        if any(o.has_consumers for o in self._outlets.values()):
            time.sleep(self.linger_s)
        self._outlets.clear()  # mne-lsl destroys an outlet when it is collected
        self._dec_out = self._stim_out = None
        if isinstance(summary, dict):
            summary["lsl_out"] = {"streams": [f"{self.prefix}-{k}" for k in
                                              ("decoder", "stimulation", "markers")],
                                  **self.stats}

    def _lsl_time(self, t_ns: int) -> float:
        """The loop's clock (ns) -> LSL clock (s); 0.0 (liblsl stamps 'now') in --fast runs."""
        if self._fast or t_ns <= 0:
            return 0.0
        return (int(t_ns) - self._offset_ns) / 1e9
