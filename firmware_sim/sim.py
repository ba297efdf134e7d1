"""The simulator's main loop: transport <-> device, streaming paced by a monotonic clock.

One thread, one ``select``: it wakes when the host sends bytes (so a STIM is applied as soon
as it arrives), when the next DATA frame is due, when a delayed frame is due, or every
``tick_ms`` for the watchdog and the periodic frames. Frame ``k`` is due when its last sample
has been acquired, ``t0 + ((k + 1) * samples_per_frame) / fs`` on the device clock, computed
from the frame index (drift-free); a late wake-up sends the overdue frames at once, never
skips one.

Replies before bulk data: DATA frames wait, unencoded, in a :class:`~firmware_sim.txqueue.
DataFifo` and go to the line one at a time when it is free, so an ACK, NAK or INFO (and the
housekeeping frames) never waits behind a backlog of bins (see :mod:`firmware_sim.txqueue`).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from neuroloop.link.framing import warm_up as warm_up_framing
from neuroloop.link.keys import LinkKeys
from neuroloop.link.messages import Data, FaultFlag
from neuroloop.stats import LatencyLog, percentiles_us

from .device import DeviceConfig, FirmwareDevice
from .faults import FaultConfig, LinkFaults
from .streamer import Streamer
from .transport import PtyTransport, SocketTransport, Transport, TransportClosed
from .txqueue import DataFifo

__all__ = ["Simulator", "MODEL_PHASE"]

#: The intracortical model produces the next frames this fraction of a frame period after a
#: frame was due (:meth:`Streamer.release_model`): the host decodes the frame and closes its
#: loop in the first millisecond or so, and warms its caches just before the next frame.
MODEL_PHASE = 0.25


class Simulator:
    """Runs one simulated implant until ``duration_s``, :meth:`request_stop`, or (pty) the link
    is down and the output has ramped to zero.

    Parameters
    ----------
    transport : Transport
    keys : LinkKeys
    streamer : Streamer
    config : DeviceConfig
    faults : FaultConfig
    seed : int
    log : text file or None
        JSON-lines log of pulse trains and events (line-buffered).
    duration_s : float or None
    tick_ms : float
        Housekeeping period (watchdog resolution).
    clock_ns : callable
        Monotonic clock (``time.monotonic_ns``); injectable for tests.
    """

    #: Overdue DATA frames produced per wake-up at most, before the host's input is read again.
    MAX_FRAMES_PER_WAKE = 8

    def __init__(self, *, transport: Transport, keys: LinkKeys, streamer: Streamer,
                 config: DeviceConfig, faults: FaultConfig | None = None, seed: int = 0,
                 log: IO[str] | None = None, duration_s: float | None = None,
                 tick_ms: float = 2.0,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.transport = transport
        self.streamer = streamer
        self.faults_cfg = faults or FaultConfig()
        self.faults = LinkFaults(self.faults_cfg, np.random.default_rng([seed, 0xFA17]))
        self.log_file = log
        self.duration_us = None if duration_s is None else int(duration_s * 1e6)
        self.tick_us = int(tick_ms * 1000)
        self._clock = clock_ns
        self._t0 = clock_ns()
        self.device = FirmwareDevice(keys, config, now_us=0, seed=seed, on_log=self._log)
        self._stop = False
        self.link_up = True
        self.stopped_by = ""
        self.frames_produced = 0
        # how late each DATA frame left, us (scheduling jitter): the last 65536 frames
        self._late = LatencyLog(1 << 16)
        #: Wake-ups that found a due frame not ready (the patient model behind real time).
        self.model_waits = 0
        s = streamer.info
        #: DATA frames waiting for the line (replies overtake them).
        self.data_fifo = DataFifo(s.samples_per_frame, len(s.channel_names),
                                  transport.max_queued_bytes)

    # ------------------------------------------------------------------ helpers
    def now_us(self) -> int:
        return (self._clock() - self._t0) // 1000

    def request_stop(self) -> None:
        """Stop after the current iteration (signal-safe)."""
        self._stop = True

    def _log(self, entry: dict[str, Any]) -> None:
        if self.log_file is not None:
            self.log_file.write(json.dumps(entry) + "\n")
            self.log_file.flush()

    def _send(self, frames: list[bytes], now_us: int) -> None:
        if not self.link_up:
            return
        for f in frames:
            if self.faults_cfg.latency_ms > 0:
                self.faults.delay(f, now_us)
            else:
                self._transmit(f)

    def _transmit(self, frame: bytes) -> None:
        if not self.transport.send(self.faults.corrupt_tx(frame)):
            # nobody reads the line: the device says so in its next STATUS
            self.device.fault_flags |= FaultFlag.TX_OVERFLOW

    def _queue_data(self, msg: Data, due_us: int, now_us: int) -> None:
        """Hand a DATA frame to the line if it is free and nothing waits, else to the FIFO."""
        if not self.link_up:
            return
        if not self.data_fifo and self.transport.idle:
            self._send([self.device.encode(msg, due_us)], now_us)
        elif not self.data_fifo.push(msg, due_us):
            self.device.fault_flags |= FaultFlag.TX_OVERFLOW

    def _pump_data(self, now_us: int) -> None:
        """Move waiting DATA frames to the line while it is free, encoding each as it goes
        (so its sequence number follows every reply already sent)."""
        fifo = self.data_fifo
        while fifo and self.link_up and self.transport.idle:
            msg, due = fifo.pop()
            self._send([self.device.encode(msg, due)], now_us)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Run the device; returns the summary (also logged as the last line)."""
        dev = self.device
        cfg = self.faults_cfg
        s_us = 1_000_000
        disconnect_at = None if cfg.disconnect_after_s is None else int(cfg.disconnect_after_s
                                                                        * s_us)
        reboot_at = None if cfg.reboot_after_s is None else int(cfg.reboot_after_s * s_us)
        open_at = None if cfg.open_contact is None else int(cfg.open_contact_after_s * s_us)
        silent_until = -1
        release_at: int | None = None  # when the model may produce the frames sent (us)
        # a streamer whose model runs in a thread of its own, refilled when released
        phased_model = bool(getattr(self.streamer, "model_in_thread", False))
        period_us = int(dev.cfg.stream.samples_per_frame * 1e6
                        / dev.cfg.stream.sampling_rate_hz)
        down_since: int | None = None
        last_stream_us: int | None = None
        is_pty = isinstance(self.transport, PtyTransport)
        faults_from = int(cfg.faults_after_s * s_us)
        fs = dev.cfg.stream.sampling_rate_hz
        warm_up_framing()  # compile (or load) the COBS kernels before the first frame
        self._log({"kind": "boot", "time_us": 0, "session": f"0x{dev.session:08x}",
                   "address": self.transport.address})
        # firmware does not stop for a garbage collector: everything allocated so far (models,
        # compiled kernels) is frozen out of the collector's scans
        gc.collect()
        gc.freeze()
        try:
            while not self._stop:
                now = self.now_us()
                if self.duration_us is not None and now >= self.duration_us:
                    self.stopped_by = "duration"
                    break
                # scheduled faults
                if disconnect_at is not None and now >= disconnect_at:
                    disconnect_at = None
                    self._disconnect(now)
                    if isinstance(self.transport, PtyTransport):
                        down_since = now
                if reboot_at is not None and now >= reboot_at:
                    reboot_at = None
                    dev.reboot(now)
                    silent_until = now + int(cfg.reboot_time_ms * 1000)
                    self.faults.released(2**62)  # frames in flight die with the radio
                    self.data_fifo.clear()
                if open_at is not None and now >= open_at:
                    open_at = None
                    dev.impedance.open_contact(int(cfg.open_contact))  # type: ignore[arg-type]
                    self._log({"kind": "inject", "time_us": now, "fault": "open_contact",
                               "contact": cfg.open_contact})
                silent = now < silent_until
                model_behind = False
                # line speed (pty): a mismatch turns the line into noise both ways
                if is_pty and self.link_up:
                    self.transport.line_speed_matches()  # type: ignore[attr-defined]
                self.faults.active = now >= faults_from
                # input
                if self.link_up:
                    try:
                        data = self.transport.read()
                    except TransportClosed:
                        self.link_up = False
                        data = b""
                    if data and not silent:
                        self._send(dev.receive(self.faults.corrupt_rx(data), now), now)
                if not silent:
                    # a stream restarted after a reboot resumes the patient's present
                    if dev.streaming and dev.frame_counter == 0 and last_stream_us is not None:
                        gap = int((dev.stream_t0_us - last_stream_us) * fs / 1e6)
                        if gap > 0:
                            self.streamer.skip(gap)
                        last_stream_us = None
                    # overdue frames go out at once, but never by waiting for the patient
                    # model (a model behind real time on a busy machine): the host's bytes
                    # are read, and its ARM/STOP answered, between any two frames
                    burst = 0
                    while dev.streaming and now >= dev.frame_due_us(dev.frame_counter) \
                            and burst < self.MAX_FRAMES_PER_WAKE:
                        if not self.streamer.frame_ready():
                            model_behind = True
                            self.model_waits += 1
                            break
                        burst += 1
                        due = int(dev.frame_due_us(dev.frame_counter))
                        samples, labels = self.streamer.next_frame()
                        msg = dev.data_message(samples, labels)
                        self.frames_produced += 1
                        self._late.add(now - due)
                        last_stream_us = due
                        if not self.faults.drop_data_frame():
                            self._queue_data(msg, due, now)
                        else:
                            self._log({"kind": "inject", "time_us": now, "fault": "drop_frame",
                                       "frame_counter": dev.frame_counter - 1})
                        self.streamer.apply_output(dev.output)  # a patient that reacts hears it
                        if release_at is None and phased_model:
                            release_at = due + int(MODEL_PHASE * period_us)
                        if self.streamer.frame_ready():
                            self.streamer.prepare()
                    self._send(dev.tick(now), now)
                if release_at is not None and (now >= release_at or model_behind):
                    release_at = None
                    self.streamer.release_model()  # (phased_model: a Streamer)
                # output
                if self.link_up:
                    for f in self.faults.released(now):
                        self._transmit(f)
                    try:
                        self.transport.flush()
                        self._pump_data(now)
                    except TransportClosed:
                        self.link_up = False
                # a pty whose cable was pulled: run on until the output is safely off
                if down_since is not None and dev.output.is_off \
                        and now - down_since > dev.cfg.watchdog_ms * 1000 + 500_000 \
                        and self.duration_us is None:
                    self.stopped_by = "link_down"
                    break
                # sleep until the next event
                wake = now + self.tick_us
                if dev.streaming and not silent:
                    # a frame due while the model is behind: look again in a millisecond
                    due_next = int(dev.frame_due_us(dev.frame_counter))
                    wake = min(wake, max(due_next, now + 1000) if model_behind else due_next)
                if release_at is not None:
                    wake = min(wake, release_at)
                rel = self.faults.next_release_us()
                if rel is not None:
                    wake = min(wake, rel)
                if self.link_up:
                    self.transport.wait((wake - self.now_us()) / 1e6)
                else:
                    time.sleep(max(0.0, (wake - self.now_us()) / 1e6))
            else:
                self.stopped_by = self.stopped_by or "signal"
        finally:
            end = self.now_us()
            dev.shutdown(end)
            summary = self.summary()
            self._log(summary)
            self.transport.close()
        return summary

    def _disconnect(self, now_us: int) -> None:
        self._log({"kind": "inject", "time_us": now_us, "fault": "disconnect"})
        if isinstance(self.transport, SocketTransport):
            self.transport.hang_up()
        else:
            self.transport.close()
            self.link_up = False

    def summary(self) -> dict[str, Any]:
        """Counters of the run so far."""
        dev = self.device
        return {
            "kind": "summary", "time_us": self.now_us(), "stopped_by": self.stopped_by,
            "session": f"0x{dev.session:08x}", "state": dev.state.name,
            "frames_produced": self.frames_produced,
            "frames_sent": self.frames_produced - self.faults.frames_dropped,
            "pulse_trains": dev.trains_started, "ramps": dev.ramps_started,
            "battery_pct": round(dev.battery.soc_pct, 3),
            "device": dict(dev.counters), "naks_by_reason": dict(dev.naks_by_reason),
            "rx": dev.parser.counters(), "injected": self.faults.counters(),
            "noise_bursts": self.streamer.noise_bursts,
            "tx_overflow": self.transport.tx_overflow + self.data_fifo.overflow,
            "data_fifo_high_water": self.data_fifo.high_water,
            "model_waits": self.model_waits,
            "bytes_sent": self.transport.bytes_sent,
            "stim_latency_us": _pct(dev.latency_log), "frame_lateness_us": _pct(self._late),
            "slowest_stims": [{"latency_us": a, "applied_us": b, "seq": c, "hop_last_sample": d}
                              for a, b, c, d in reversed(dev.slow_stims)],
        }


def _pct(log: LatencyLog) -> dict[str, float]:
    """p50/p99/p99.9/max of the retained microsecond samples, with the count of all."""
    if not log.count:
        return {"n": 0}
    return {"n": log.count,
            **percentiles_us(log.values().astype(np.float64) * 1000.0, digits=1)}
