"""A device is armed before the supervisor's arming time is taken: the device's own slew
reference (when ARM reached it) never comes after the supervisor's. The other way round, a
slow listener start (the recorder opening its files) let the supervisor grant a first rise
that the device refused (NAK LIMIT on slew at the first hop, latched as a device fault: seen
in a recorded binned intracortical run through firmware_sim)."""

from __future__ import annotations

import time

from neuroloop.records import LoopListener
from neuroloop.runtime.session import RunOptions, Session
from neuroloop.stimulation.stimulators import NullStimulator


class _Device(NullStimulator):
    """A stimulator that arms like a device link (ARM answered after a round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = None
        self.armed_at_ns: int | None = None

    def arm(self, timeout_s: float = 1.0) -> None:
        time.sleep(0.002)  # the round trip
        self.armed_at_ns = self.clock.now_ns()


class _SlowStart(LoopListener):
    """A listener whose start takes a while (a recorder creating its files)."""

    def __init__(self) -> None:
        self.armed_ns: int | None = None

    def on_start(self, meta: dict) -> None:
        self.armed_ns = int(meta["armed_ns"])
        time.sleep(0.02)


def test_device_is_armed_before_the_supervisor_reference(small_bsi, bsi_decoder_file) -> None:
    device, slow = _Device(), _SlowStart()
    session = Session(small_bsi, RunOptions(decoder_path=bsi_decoder_file, duration_s=0.3,
                                            stimulator=device, listeners=[slow],
                                            realtime_priority=None))
    device.clock = session.clock
    session.open()
    summary = session.run()
    assert summary["cycles"] > 0
    assert device.armed_at_ns is not None and slow.armed_ns is not None
    # the supervisor's slew reference is at or after the device's: never more permissive
    assert slow.armed_ns >= device.armed_at_ns
