"""The loop's side of the live monitor: a listener that copies, and the operator's STOP input.

:class:`MonitorPublisher` is a :class:`~neuroloop.records.LoopListener`. In ``on_start``
(before the first cycle) it sizes and creates the shared-memory channel
(:mod:`~.channel`), writes the page's description of the run into it, and starts the web
server in its own process (:mod:`~.server`) on the socket the CLI bound. Inside the cycle it
only copies: the record's bytes into the next ring slot, the selected channels' samples into
the sample ring, and the rare event as JSON; it never waits, locks or calls the kernel.

:class:`OperatorControl` is a :class:`~neuroloop.runtime.safety_inputs.SafetyInputProvider`:
every cycle the loop asks it whether the operator pressed STOP, on the page (the server bumps
a counter in the channel) or in the terminal, and whether the terminal asked to re-arm. A STOP
becomes the ``estop`` safety input, the same supervisor path as ``--inject estop``: ESTOP is
latched and the command of that very cycle is zero. Only the terminal can re-arm; the page
has no way to raise output. Both inputs are recorded as ``link_input`` events, so a replay
repeats them at the same cycles.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..records import FLAG_DEADLINE_MISSED, LoopListener, cycle_dtype
from ..safety.events import SupervisorState
from . import channel as C
from .channel import EVENT_BYTES, N_EVENT_SLOTS, N_SLOTS, ChannelLayout, MonitorChannel

__all__ = ["MonitorPublisher", "OperatorControl", "OperatorConsole", "selected_channels"]

log = logging.getLogger(__name__)

#: raw channels shown on the page
N_SHOWN_CHANNELS = 4
#: seconds of raw samples the ring holds
_SAMPLE_RING_S = 4.0
_MAX_SAMPLE_ROWS = 1 << 18
#: events per cycle put on the page (an interlock storm is counted, not serialised)
_EVENTS_PER_CALL = 4


def selected_channels(n_channels: int, k: int = N_SHOWN_CHANNELS) -> list[int]:
    """Up to ``k`` channel indices spread evenly over ``n_channels``."""
    if n_channels <= k:
        return list(range(n_channels))
    return sorted({int(round(x)) for x in np.linspace(0, n_channels - 1, k)})


class OperatorControl:
    """The operator's STOP and re-arm, polled by the loop every cycle (a safety-input provider).

    ``request_estop`` may be called from any thread (the terminal console); the page's
    requests arrive through the channel's counter (:meth:`attach`). Reading them costs two
    integer loads per cycle and allocates nothing that outlives the call.
    """

    def __init__(self) -> None:
        self._ctl: np.ndarray | None = None
        self._terminal_stops = 0
        self._terminal_seen = 0
        self._rearms = 0
        self._rearms_seen = 0
        self._page_seen = 0
        self.pending_ns = 0  #: CLOCK_MONOTONIC ns of the request being applied this cycle
        self.log: list[dict[str, Any]] = []  #: every applied request (for the summary)
        self._stop_input = (("estop", "monitor page"),)
        self._terminal_input = (("estop", "operator terminal"),)
        self._rearm_input = (("rearm", "operator terminal"),)

    def attach(self, ctl: np.ndarray | None) -> None:
        """Read the page's requests from the channel's control words."""
        self._ctl = ctl

    def request_estop(self) -> None:
        """STOP from the operator's terminal (thread-safe: one integer store)."""
        self._terminal_stops += 1

    def request_rearm(self) -> None:
        """Re-arm from the operator's terminal; the supervisor refuses it unless latched."""
        self._rearms += 1

    def poll(self, cycle: int, now_ns: int) -> Sequence[tuple[str, Any]]:
        ctl = self._ctl
        if ctl is not None:
            requests = int(ctl[C.CTL_ESTOP_REQUESTS])
            if requests != self._page_seen:
                self._page_seen = requests
                self.pending_ns = int(ctl[C.CTL_ESTOP_REQUEST_NS])
                ctl[C.CTL_ESTOP_SEEN] = requests
                ctl[C.CTL_ESTOP_CYCLE] = cycle
                self.log.append({"source": "monitor page", "cycle": int(cycle),
                                 "requested_ns": self.pending_ns, "polled_ns": int(now_ns)})
                return self._stop_input
        if self._terminal_stops != self._terminal_seen:
            self._terminal_seen = self._terminal_stops
            self.log.append({"source": "operator terminal", "cycle": int(cycle),
                             "polled_ns": int(now_ns)})
            return self._terminal_input
        if self._rearms != self._rearms_seen:
            self._rearms_seen = self._rearms
            self.log.append({"source": "operator terminal", "action": "rearm",
                             "cycle": int(cycle), "polled_ns": int(now_ns)})
            return self._rearm_input
        return ()


class OperatorConsole(threading.Thread):
    """Reads the operator's terminal: ``stop`` (or ``s``) = E-STOP, ``rearm`` = re-arm.

    Started only when stdin is a terminal. The thread sleeps in ``readline`` (the GIL is
    released) and touches nothing but two counters of :class:`OperatorControl`.
    """

    def __init__(self, control: OperatorControl, stream: Any = None,
                 say: Any = None) -> None:
        super().__init__(name="neuroloop-operator", daemon=True)
        self.control = control
        self.stream = stream if stream is not None else sys.stdin
        self.say = say or (lambda m: None)

    def run(self) -> None:
        for line in self.stream:
            word = line.strip().lower()
            if word in ("stop", "s", "estop"):
                self.control.request_estop()
                self.say("E-STOP requested from the terminal (type `rearm` to re-arm)")
            elif word == "rearm":
                self.control.request_rearm()
                self.say("re-arm requested from the terminal")
            elif word:
                self.say("operator commands: `stop` (E-STOP), `rearm`")


class MonitorPublisher(LoopListener):
    """Publishes the running loop to the live monitor's server process.

    Parameters
    ----------
    sock : socket.socket
        The bound, listening socket (:func:`~.address.bind_monitor_socket`).
    operator : OperatorControl
        Given the channel's control words, so the page's E-STOP reaches the loop.
    url : str
        The page's address (for messages).
    """

    def __init__(self, sock: socket.socket | None, operator: OperatorControl, url: str,
                 *, python: str | None = None, spawn: bool = True) -> None:
        self.sock = sock
        self.spawn = spawn  #: False: no server process (tests read the channel directly)
        self.operator = operator
        self.url = url
        self.python = python or sys.executable
        self.channel: MonitorChannel | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._sel: list[int] = []
        self._sel_idx = np.zeros(0, dtype=np.intp)
        self._sel_max = -1
        self._flags: np.ndarray | None = None
        self._slots: list[np.ndarray] = []
        self._rec_src: np.ndarray | None = None
        self._rec_u8: np.ndarray | None = None
        self._seq = 0
        self._samples_written = 0
        self._events_written = 0
        self._misses = 0
        self._max_ns = 0
        self._ctl: np.ndarray | None = None
        self._ring: np.ndarray | None = None
        self._event_rows: np.ndarray | None = None
        self._final_stats: dict[str, Any] | None = None

    # -- set-up (before the first cycle) -------------------------------------------------------
    def on_start(self, meta: dict) -> None:
        n_outputs = len(meta.get("output_names") or [])
        dtype = cycle_dtype(int(meta["n_features"]), int(meta["n_states"]),
                            int(meta["n_contacts"]), n_outputs)
        channels = meta.get("channels") or {}
        names = list(channels.get("names") or [])
        fs = float(channels.get("sampling_rate_hz") or 1.0)
        self._sel = selected_channels(len(names))
        self._sel_idx = np.asarray(self._sel, dtype=np.intp)
        self._sel_max = max(self._sel, default=-1)
        rows = 1
        while rows < min(_SAMPLE_RING_S * fs, _MAX_SAMPLE_ROWS):
            rows <<= 1
        page = _page_meta(meta, self._sel, fs)
        blob = json.dumps(page).encode("utf-8")
        layout = ChannelLayout(dtype.itemsize, len(self._sel), rows, len(blob) + 1024)
        ch = MonitorChannel(layout)
        ch.write_meta(page)
        self.channel = ch
        self._ctl = ch.ctl
        self._ring = ch.samples
        self._event_rows = ch.events
        self._slots = [ch.records[i] for i in range(N_SLOTS)]
        self.operator.attach(ch.ctl)
        if self.process is None and self.spawn:
            self.start_server()
        proc = self.process
        if proc is None or proc.stdin is None:
            return
        ch.ctl[C.CTL_SERVER_PID] = proc.pid
        try:  # the server has been waiting for this line since start_server
            proc.stdin.write(" ".join([ch.name, *layout.to_args()]).encode() + b"\n")
            proc.stdin.close()
        except OSError as exc:
            log.warning("live monitor: the server process is gone (%s)", exc)

    def start_server(self) -> None:
        """Start the server process now (before calibration, so that its imports are done
        long before the loop runs); it waits on its stdin for the channel :meth:`on_start`
        creates."""
        assert self.sock is not None, "start_server needs the bound socket"
        fd = self.sock.fileno()
        cmd = [self.python, "-m", "neuroloop.monitor.server", "--fd", str(fd),
               "--parent", str(os.getpid())]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.process = subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, env=env,
                                        start_new_session=True)

    # -- inside the cycle: copies only ---------------------------------------------------------
    def on_samples(self, data: np.ndarray, first_index: int) -> None:
        ring = self._ring
        if ring is None or data.ndim != 2 or data.shape[1] <= self._sel_max:
            return
        n = data.shape[0]
        rows = ring.shape[0]
        if n > rows:  # more than the ring holds: keep the newest
            data = data[n - rows:]
            n = rows
        i = self._samples_written % rows
        if n <= rows - i:  # the usual hop: gather the shown channels straight into the ring
            np.take(data, self._sel_idx, axis=1, out=ring[i:i + n], mode="clip")
        else:
            room = rows - i
            np.take(data[:room], self._sel_idx, axis=1, out=ring[i:], mode="clip")
            np.take(data[room:], self._sel_idx, axis=1, out=ring[:n - room], mode="clip")
        self._samples_written += n
        self._ctl[C.CTL_SAMPLES] = self._samples_written  # type: ignore[index]

    def on_cycle(self, record: np.ndarray) -> None:
        ctl = self._ctl
        if ctl is None:
            return
        t0 = time.perf_counter_ns()
        if record is not self._rec_src:  # the loop reuses one record: views made once
            self._rec_src = record
            self._rec_u8 = record.reshape(-1).view(np.uint8)
            self._flags = record["flags"].reshape(-1)
        seq = self._seq
        slot = seq % N_SLOTS
        seqs = self.channel.slot_seq  # type: ignore[union-attr]
        seqs[slot] = -1
        np.copyto(self._slots[slot], self._rec_u8)  # type: ignore[arg-type]
        seqs[slot] = seq
        self._seq = seq + 1
        ctl[C.CTL_CYCLES] = self._seq
        if self._flags[0] & FLAG_DEADLINE_MISSED:  # type: ignore[index]
            self._misses += 1
            ctl[C.CTL_MISSES] = self._misses
        if self.operator.pending_ns:  # the cycle that applied an E-STOP: how long it took
            self._note_estop(record, ctl)
        dt = time.perf_counter_ns() - t0
        if dt > self._max_ns:
            self._max_ns = dt
            ctl[C.CTL_PUBLISH_MAX_NS] = dt

    def _note_estop(self, record: np.ndarray, ctl: np.ndarray) -> None:
        requested = self.operator.pending_ns
        self.operator.pending_ns = 0
        sent = int(record["sent_ns"][0])
        zero = bool(np.all(record["amplitude_ma"][0] == 0.0))
        ctl[C.CTL_ESTOP_LATENCY_NS] = sent - requested
        ctl[C.CTL_ESTOP_AMPLITUDE] = 1 if zero else 0
        if self.operator.log:
            self.operator.log[-1].update(
                applied_cycle=int(record["cycle"][0]), sent_ns=sent,
                latency_ms=round((sent - requested) / 1e6, 3), output_zero=zero,
                supervisor_state=SupervisorState(int(record["supervisor_state"][0])).name)

    def on_events(self, events: list) -> None:
        rows = self._event_rows
        if rows is None:
            return
        for ev in events[:_EVENTS_PER_CALL]:
            try:
                data = json.dumps(ev, default=str).encode("utf-8")[:EVENT_BYTES]
            except (TypeError, ValueError):
                continue
            row = rows[self._events_written % N_EVENT_SLOTS]
            row[:] = 0
            row[:len(data)] = np.frombuffer(data, np.uint8)
            self._events_written += 1
        self._ctl[C.CTL_EVENTS] = self._events_written  # type: ignore[index]

    def on_stop(self, summary: dict) -> None:
        if self._ctl is not None:
            self._ctl[C.CTL_CLOSED] = 1

    # -- after the run -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """What the monitor did (for the run summary)."""
        ctl = self._ctl
        out: dict[str, Any] = {"url": self.url}
        if ctl is None:
            return self._final_stats or {**out, "started": False}
        out.update(
            published_cycles=int(ctl[C.CTL_CYCLES]), published_samples=int(ctl[C.CTL_SAMPLES]),
            published_events=int(ctl[C.CTL_EVENTS]),
            publish_max_us=round(int(ctl[C.CTL_PUBLISH_MAX_NS]) / 1000.0, 1),
            clients_accepted=int(ctl[C.CTL_SERVER_ACCEPTED]),
            clients_dropped_stalled=int(ctl[C.CTL_SERVER_DROPPED]),
            frames_sent=int(ctl[C.CTL_SERVER_FRAMES]),
            frames_held_for_slow_clients=int(ctl[C.CTL_SERVER_HELD]),
            cycles_skipped_by_server=int(ctl[C.CTL_SERVER_LAPPED]),
            estop_requests=int(ctl[C.CTL_ESTOP_REQUESTS]),
        )
        return out

    def operator_summary(self) -> list[dict[str, Any]]:
        return list(self.operator.log)

    def close(self, linger_s: float = 0.0) -> None:
        """Stop the server process (after ``linger_s`` seconds showing the final state) and
        free the channel."""
        if self._ctl is not None:
            self._final_stats = self.stats()
        proc = self.process
        if proc is not None:
            if linger_s > 0:
                try:
                    proc.wait(timeout=linger_s)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=3.0)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait(timeout=3.0)
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        if self.channel is not None:
            self._ctl = self._ring = self._event_rows = None
            self._slots = []
            self.operator.attach(None)
            self.channel.close()
            self.channel = None


def _page_meta(meta: dict[str, Any], selected: list[int], fs: float) -> dict[str, Any]:
    """What the page needs to draw the run (sizes, names, electrode layout, programs)."""
    from .layout import layout_json

    channels = meta.get("channels") or {}
    names = list(channels.get("names") or [])
    cfg: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    layout = None
    programs: dict[str, str] = {}
    envelopes: dict[str, list[float]] = {}
    try:
        from ..config import scenario_from_dict
        from ..stimulation.programs import build_program_set

        scenario = scenario_from_dict(cfg, label="run config")
        ps = build_program_set(scenario.stimulation, scenario.intention_names)
        layout = layout_json(ps.array)
        for p in ps:
            programs[str(p.program_id)] = p.name
            envelopes[str(p.program_id)] = [p.amplitude_min_ma, p.amplitude_max_ma]
    except Exception:  # noqa: BLE001 - the page then draws contacts in a row
        log.debug("monitor: no electrode layout for this run", exc_info=True)
    dsp: dict[str, Any] = cfg["dsp"] if isinstance(cfg.get("dsp"), dict) else {}
    bands = [b for b in (dsp.get("bands_hz") or []) if isinstance(b, list) and len(b) == 2]
    lo = min((float(b[0]) for b in bands), default=1.0)
    hi = max((float(b[1]) for b in bands), default=200.0)
    hi = min(hi, 0.45 * fs)
    lo = min(max(lo, 0.5), 0.5 * hi)
    options = meta.get("options") or {}
    return {
        "scenario": meta.get("scenario"),
        "intention_names": list(meta.get("intention_names") or []),
        "output_names": list(meta.get("output_names") or []),
        "output_units": list(meta.get("output_units") or []),
        "n_features": int(meta["n_features"]), "n_states": int(meta["n_states"]),
        "n_contacts": int(meta["n_contacts"]),
        "n_outputs": len(meta.get("output_names") or []),
        "channel_names": [names[i] for i in selected],
        "channel_index": selected,
        "n_channels": len(names),
        "sampling_rate_hz": fs,
        "hop_samples": int(meta.get("hop_samples") or 1),
        "display_band_hz": [lo, hi],
        "bands_hz": bands,
        "deadline_ms": options.get("deadline_ms"),
        "fast": bool(options.get("fast")),
        "supervisor_states": [s.name for s in SupervisorState],
        "layout": layout,
        "programs": programs,
        "envelopes": envelopes,
    }
