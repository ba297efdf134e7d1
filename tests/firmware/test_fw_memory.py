"""firmware_sim's memory stays flat over a long run: the pulse-train log and the latency
figures are bounded (a new STIM per 20 ms control hop starts a train: an unbounded log grew by
~0.9 kB per cycle: ~27 MB over a 10-minute binned intracortical run)."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
from fw_helpers import Host, make_device, start_stream, stim

from firmware_sim.device import FirmwareDevice
from neuroloop.link.messages import Ack, Arm


def _drive(dev: FirmwareDevice, host: Host, n_stims: int, t0_us: int) -> int:
    """``n_stims`` applied STIMs 20 ms apart, each a new train, streaming meanwhile."""
    zeros = np.zeros((dev.cfg.stream.samples_per_frame, len(dev.cfg.stream.channel_names)),
                     dtype=np.int16)
    t = t0_us
    for k in range(n_stims):
        while t >= dev.frame_due_us(dev.frame_counter):
            dev.data_frame(zeros, None, int(dev.frame_due_us(dev.frame_counter)))
        amp = -0.20 if k % 2 else -0.21
        dev.receive(host.frame(stim({2: amp}, hop=dev.newest_sample)), t)
        dev.tick(t)
        t += 20_000
    return t


def test_pulse_log_and_latencies_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(FirmwareDevice, "TRAINS_KEPT", 64, raising=False)
    monkeypatch.setattr(FirmwareDevice, "LATENCIES_KEPT", 512, raising=False)
    dev = make_device()
    host = Host(dev)
    start_stream(dev, host, 0)
    dev.data_frame(np.zeros((59, 4), np.int16), None, 100_000)
    assert isinstance(host.answer(Arm(), 110_000), Ack)
    tracemalloc.start()
    try:
        t = _drive(dev, host, 1200, 120_000)  # the log and the ring fill up
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        _drive(dev, host, 2000, t)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # (the log's length swings between 32 and 64 trains of ~0.7 kB: up to ~24 kB either way;
    # an unbounded log grew 1.9 MB here, ~0.9 kB per STIM)
    assert after - before < 64 * 1024, f"firmware memory grew {after - before} B in 2000 STIMs"
    applied = dev.counters["stims_applied"]  # the first may wait for the slew bucket (NAK)
    assert applied >= 3190 and dev.trains_started == applied
    assert 32 <= len(dev.log) <= 64 and dev.log[-1].stop_us is None  # the running one kept
    assert dev.latency_log.count == applied and len(dev.latencies_us) == 512
