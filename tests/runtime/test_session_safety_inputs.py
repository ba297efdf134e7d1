"""Safety inputs are first-class: a Session built from Python, with no CLI and no fault
injection hooks, polls its device link's monitor every cycle.

firmware_sim runs in this process (its pure device behind a real pty, in a thread); the
test cuts its radio for a while. The host hears nothing: ``heartbeat_lost`` reaches the
supervisor (HOLD, zero output) and is recorded as a ``link_input`` event; the device hears
nothing either, so its own watchdog trips, and when the radio comes back the device reports
it: ``device_fault`` latches FAULT.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from firmware_sim.device import DeviceConfig
from firmware_sim.sim import Simulator
from firmware_sim.streamer import Streamer
from firmware_sim.transport import PtyTransport
from neuroloop.link.device import DeviceLink, LinkSettings, open_device_link
from neuroloop.link.keys import LinkKeys
from neuroloop.records import LoopListener
from neuroloop.runtime.session import RunOptions, Session
from neuroloop.safety.events import SupervisorState
from neuroloop.stimulation.electrodes import electrode_array

KEYS = LinkKeys(bytes(range(0x00, 0x20)), bytes(range(0x20, 0x40)), source="test")


class _Radio(PtyTransport):
    """firmware_sim's pty, with a radio that can be cut: while ``silent`` nothing leaves the
    device and everything sent to it is lost (it keeps running: streaming, watchdog)."""

    silent = False

    def read(self) -> bytes:
        data = super().read()
        return b"" if self.silent else data

    def send(self, frame: bytes) -> bool:
        return True if self.silent else super().send(frame)


@dataclass
class _Device:
    radio: _Radio
    sim: Simulator
    thread: threading.Thread


@pytest.fixture
def device() -> Iterator[_Device]:
    radio = _Radio(921600)
    streamer = Streamer("bsi", 1, samples_per_frame=59)
    config = DeviceConfig(stream=streamer.info, array=electrode_array("paddle-5-6-5"))
    sim = Simulator(transport=radio, keys=KEYS, streamer=streamer, config=config,
                    duration_s=120.0)
    thread = threading.Thread(target=sim.run, name="firmware-sim", daemon=True)
    thread.start()
    yield _Device(radio, sim, thread)
    sim.request_stop()
    thread.join(10.0)


class _Cutter(LoopListener):
    """Cuts the device's radio for cycles [start, stop) and keeps every event."""

    def __init__(self, radio: _Radio, start: int, stop: int) -> None:
        self.radio, self.start, self.stop = radio, start, stop
        self.events: list[dict] = []
        self.states: list[int] = []
        self.amplitude: list[float] = []

    def on_cycle(self, record: np.ndarray) -> None:
        r = record.reshape(-1)[0]
        k = int(r["cycle"])
        self.states.append(int(r["supervisor_state"]))
        self.amplitude.append(float(np.abs(r["amplitude_ma"]).max()))
        self.radio.silent = self.start <= k + 1 < self.stop  # from the next cycle on

    def on_events(self, events: list) -> None:
        self.events.extend(events)


def test_python_built_session_latches_fault_after_the_device_goes_silent(
        small_bsi, bsi_decoder_file, device) -> None:
    link = DeviceLink(device.radio.address, keys=KEYS,
                      settings=LinkSettings(realtime_priority=None)).open()
    try:
        cutter = _Cutter(device.radio, start=12, stop=22)
        opts = RunOptions(decoder_path=bsi_decoder_file, duration_s=4.0,
                          stimulator=link.stimulator, listeners=[cutter],
                          realtime_priority=None)
        session = Session(small_bsi, opts)
        assert opts.hooks is None  # no fault injection, no CLI
        loop = session.open(source=link.source)
        # the link's monitor, once (source and stimulator share the link)
        assert session.safety_inputs == [link.monitor]
        assert loop.safety_inputs == (link.monitor,)
        summary = session.run()
    finally:
        link.close()
    assert summary.get("error") is None and not summary["listener_errors"]
    counts = summary["interlock_events"]
    inputs = [(e["input"], e["cycle"]) for e in cutter.events if e.get("kind") == "link_input"]
    lost = [k for kind, k in inputs if kind == "heartbeat_lost"]
    # the silence reached the supervisor as a lost heartbeat, while it lasted
    assert lost and 12 <= lost[0] < 22 and counts.get("heartbeat_lost", 0) >= 1
    hb = next(e for e in cutter.events if e.get("reason") == "heartbeat_lost")
    assert hb["state"] == "HOLD" and "link heartbeat lost" in hb["detail"]
    assert SupervisorState.HOLD in {SupervisorState(s) for s in cutter.states[lost[0]:22]}
    assert max(cutter.amplitude[lost[0]:22]) == 0.0
    # the device's own watchdog tripped meanwhile; once it is heard again: FAULT, latched
    faults = [e for e in cutter.events if e.get("kind") == "link_input"
              and e["input"] == "device_fault"]
    assert faults and "watchdog tripped" in faults[0]["payload"] and faults[0]["cycle"] >= 22
    assert counts.get("device_fault", 0) >= 1
    assert session.supervisor.state == SupervisorState.FAULT
    assert summary["supervisor_state"] == "FAULT"
    assert max(cutter.amplitude[faults[0]["cycle"]:]) == 0.0


def test_a_session_on_a_device_source_polls_its_link_however_built(
        small_bsi, bsi_decoder_file, device, tmp_path) -> None:
    """Only a URL: the session's source opens the link; the stimulator built from the same
    URL shares it; the loop polls that link's monitor once."""
    from neuroloop.link.serial_stimulator import SerialStimulator

    key_file = tmp_path / "keys.toml"
    key_file.write_text(f'h2d = "{KEYS.h2d.hex()}"\nd2h = "{KEYS.d2h.hex()}"\n')
    key_file.chmod(0o600)
    url = f"serial://{device.radio.address}?key_file={key_file}"
    stim = SerialStimulator.from_url(device.radio.address, key_file=str(key_file))
    opts = RunOptions(decoder_path=bsi_decoder_file, source_url=url, stimulator=stim,
                      realtime_priority=None)
    session = Session(small_bsi, opts)
    loop = session.open()
    try:
        link = open_device_link(device.radio.address, key_file=str(key_file))
        assert session.source.link is link and stim.link is link
        assert loop.safety_inputs == (link.monitor,)
        link.release()
    finally:
        session.source.close()
        stim.close()
