"""Injected link faults across two processes: every dropped frame counted, added latency
measured, stalls and NAK storms reported as safety inputs; URL-built source and stimulator
share one link; the EEG preset."""

from __future__ import annotations

import time

import numpy as np
from test_link_pty import collect, monopolar, wait_for

from neuroloop.acquisition import open_source
from neuroloop.acquisition.synthetic import SyntheticSource
from neuroloop.link.device import open_device_link
from neuroloop.link.serial_stimulator import SerialStimulator


def test_every_dropped_frame_is_counted_and_added_latency_is_measured(firmware) -> None:
    fw = firmware("--drop-frames", "0.2", "--latency-ms", "20", "--seed", "3")
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    blocks = collect(link, 1.0)
    link.arm()
    src = link.source
    sent = 0
    while sent < 6:
        b = src.read(59, timeout=1.0)
        if b is not None:
            link.stimulator.send(monopolar(3, 0.3 * sent), hop_last_sample=b.first_index +
                                 b.n_samples - 1)
            sent += 1
    assert wait_for(lambda: link.stats()["acks"] >= sent + 1)
    st = link.stats()
    last = st["last_frame_counter"]
    link.close()
    fw.stop()
    drops = [e["frame_counter"] for e in fw.log() if e.get("fault") == "drop_frame"]
    first_seen = blocks[0][0] // 59
    # every frame the device dropped between the first and the last one we saw is counted
    assert st["frames_lost"] == sum(first_seen < d < last for d in drops) > 0
    assert st["samples_lost"] == 59 * st["frames_lost"]
    # and the gaps are visible in the sample indices, never filled in
    firsts = [f for f, _, _ in blocks]
    assert any(b - a > 59 for a, b in zip(firsts, firsts[1:], strict=False))
    # 20 ms on every device->host frame: each STIM is applied at least 20 ms after its sample
    assert link.device_latencies_us().min() >= 20_000
    assert st["link_rtt_us"]["p50"] >= 20_000


def test_stall_and_nak_storm_are_safety_inputs_and_links_are_shared(firmware) -> None:
    fw = firmware("--faults-after", "1.0", "--drop-frames", "1.0")
    src = open_source(f"serial://{fw.address}?key_file={fw.key_file}")
    stim = SerialStimulator.from_url(fw.address, key_file=str(fw.key_file))
    src.open()
    assert src.link is stim.link  # one port, one reader, one sequence
    assert src.paced_by_device and src.info.n_channels == 64
    b = src.read(59, timeout=1.0)
    assert b is not None
    # five refused commands in a row (Shannon) are a NAK storm, reported once
    for _ in range(5):
        stim.send(monopolar(4, 8.0), hop_last_sample=b.first_index + b.n_samples - 1)
    link = src.link
    assert wait_for(lambda: link.stats()["naks"]["total"] >= 5)
    kinds = [k for k, _ in link.poll_safety_inputs()]
    assert kinds.count("nak_storm") == 1
    assert "nak_storm" not in [k for k, _ in link.poll_safety_inputs()]
    # after 1 s every DATA frame is dropped: the stream stalls, heartbeats go on
    end = time.monotonic() + 3.0
    seen: set[str] = set()
    while time.monotonic() < end and "stream_stalled" not in seen:
        src.read(59, timeout=0.1)
        seen |= {k for k, _ in link.poll_safety_inputs()}
    assert "stream_stalled" in seen and "heartbeat_lost" not in seen
    stim.close()
    src.close()  # the last user closes the link
    assert not link.is_open


def test_eeg_preset_over_the_link(firmware) -> None:
    fw = firmware("--preset", "eeg-bci", "--seed", "2")
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    info = link.source.info
    assert info.n_channels == 32 and info.sampling_rate_hz == 250.0
    assert info.channel_types[0] == "eeg" and link.info.samples_per_frame == 25
    blocks = collect(link, 1.0)
    first = blocks[0][0]
    last = blocks[-1][0] + blocks[-1][1].shape[0]
    x = np.empty((last, 32))
    SyntheticSource("eeg-bci", seed=2).read_into(x)
    got = np.concatenate([d for _, d, _ in blocks])
    np.testing.assert_array_equal(got, np.clip(np.rint(x / 0.05), -32768, 32767)[first:]
                                  * 0.05)
    link.close()
