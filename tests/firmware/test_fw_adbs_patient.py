"""firmware_sim streams the adbs patient, and that patient reacts to what the output stage
applies (through the same ``stimulation_applied`` as the host's loop)."""

from __future__ import annotations

import numpy as np

from firmware_sim.streamer import Streamer, patient_presets
from neuroloop.stimulation.command import StimCommand


def _stream(on: bool, seconds: float = 40.0) -> Streamer:
    s = Streamer("adbs", seed=2)
    cmd = StimCommand.off(4)
    if on:
        cmd.amplitude_ma[1] = -3.0
        cmd.case_ma, cmd.frequency_hz, cmd.pulse_width_us, cmd.program_id = 3.0, 130.0, 60.0, 1
    for _ in range(int(seconds * 10)):
        s.next_frame()
        s.apply_output(cmd)
        s.prepare()
    return s


def test_the_device_patient_reacts_to_the_applied_output() -> None:
    assert "adbs" in patient_presets()
    off, on = _stream(False), _stream(True)
    assert off.info.samples_per_frame == 25 and off.info.sampling_rate_hz == 250.0
    m_off, m_on = off.source.metrics(), on.source.metrics()
    assert m_on["stim_delivered_pct"] > 95.0 and m_off["stim_delivered_pct"] == 0.0
    assert m_on["mean_drive"] < 0.5 * m_off["mean_drive"]
    q, labels = on.next_frame()
    assert q.dtype == np.int16 and q.shape == (25, 2) and set(labels) <= {0, 1}
