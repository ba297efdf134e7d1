"""The synthetic STN patient: a plant that reacts to stimulation, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.acquisition import open_source
from neuroloop.acquisition.lfp_patient import LfpPatientSource
from neuroloop.errors import ConfigError

HOP = 25
MONO = np.array([0.0, -1.0, 0.0, 0.0])


def _run(src: LfpPatientSource, seconds: float, amp_ma: float, *, chunk: int = HOP,
         first_hop: int = 0) -> np.ndarray:
    out = np.zeros((chunk, 2))
    lab = np.zeros(chunk, np.int8)
    xs = []
    n_hops = int(seconds * 250) // chunk
    for k in range(n_hops):
        # the loop's timing: the command of hop k acts from the end of hop k + 1
        src.stimulation_applied(MONO * amp_ma, 130.0, 60.0,
                                (first_hop + k + 2) * chunk)
        src.read_into(out, lab)
        xs.append(out.copy())
    return np.concatenate(xs)


def test_beta_falls_with_stimulation_and_returns_without() -> None:
    off = LfpPatientSource(seed=3)
    _run(off, 60, 0.0)
    on = LfpPatientSource(seed=3)
    _run(on, 60, 3.0)
    m_off, m_on = off.metrics(), on.metrics()
    assert m_on["mean_drive"] < 0.4 * m_off["mean_drive"]
    assert m_on["burst_time_pct"] < 0.3 * m_off["burst_time_pct"]
    assert m_off["beta_above_threshold_pct"] > 90.0 and m_on["beta_above_threshold_pct"] < 10
    assert m_on["stim_delivered_pct"] > 99.0 and m_off["stim_delivered_pct"] == 0.0
    # after stimulation stops, beta rebounds (slowly: a time constant of ~20 s)
    _run(on, 60, 0.0, first_hop=60 * 10)
    late = on.metrics()["mean_drive"]
    assert late > m_on["mean_drive"]


def test_more_current_suppresses_more() -> None:
    drives = []
    for amp in (0.0, 1.0, 2.0, 3.0):
        s = LfpPatientSource(seed=5)
        _run(s, 30, amp)
        drives.append(s.metrics()["mean_drive"])
    assert drives == sorted(drives, reverse=True)


def test_stream_does_not_depend_on_chunking() -> None:
    a = LfpPatientSource(seed=7)
    b = LfpPatientSource(seed=7)
    xa = _run(a, 8, 2.0, chunk=25)
    # the same commands at the same sample indices, read 5 samples at a time
    out = np.zeros((5, 2))
    lab = np.zeros(5, np.int8)
    xs = []
    for k in range(80):
        b.stimulation_applied(MONO * 2.0, 130.0, 60.0, (k + 2) * 25)
        for _ in range(5):
            b.read_into(out, lab)
            xs.append(out.copy())
    np.testing.assert_array_equal(xa, np.concatenate(xs))


def test_artifact_appears_at_the_aliases_of_the_stimulation_frequency() -> None:
    src = LfpPatientSource(seed=2, artifact_uv_per_ma=50.0, severity=0.0)
    x = _run(src, 20, 3.0)[250 * 4:, 0]
    f = np.fft.rfftfreq(x.size, 1 / 250.0)
    spec = np.abs(np.fft.rfft(x))
    for alias in (120.0, 10.0, 110.0, 20.0):  # 130, 260, 390, 520 Hz sampled at 250 Hz
        k = np.argmin(np.abs(f - alias))
        assert spec[k] > 20 * np.median(spec), alias


def test_prefetched_stream_equals_direct_reads_and_never_runs_ahead() -> None:
    """With prefetch the producer waits for each hop's command; same samples as direct."""
    direct = LfpPatientSource(seed=11)
    expect = _run(direct, 4, 2.5)
    src = LfpPatientSource(seed=11).open()
    src.start_prefetch(HOP)
    got = []
    try:
        for k in range(40):
            block = src.read(HOP, timeout=5.0)
            assert block is not None and block.first_index == k * HOP
            got.append(block.data.copy())
            # the producer has made at most the next hop: never past the known command
            assert src._next_index <= (k + 2) * HOP
            src.stimulation_applied(MONO * 2.5, 130.0, 60.0, (k + 2) * HOP)
    finally:
        src.close()
    np.testing.assert_array_equal(np.concatenate(got), expect)


def test_url_and_bad_options() -> None:
    src = open_source("lfp://stn?seed=4&severity=1.5&sampling_rate_hz=1000")
    assert src.info.sampling_rate_hz == 1000.0 and src.info.n_channels == 2
    for url, key in [("lfp://stn?severity=nan", "severity"), ("lfp://stn?beta_hz=80", "beta_hz"),
                     ("lfp://stn?bogus=1", "bogus"), ("lfp://stn?seed=-1", "seed"),
                     ("lfp://stn?sampling_rate_hz=1e308", "sampling_rate_hz")]:
        with pytest.raises(ConfigError, match=key):
            open_source(url)
    with pytest.raises(ConfigError, match="lfp://stn"):
        open_source("lfp://gpi")


def test_medication_shifts_the_beta_baseline() -> None:
    """At the peak of a dose (about 37 min after it) the drive is lower than late in the
    dosing cycle, without any stimulation."""
    late = LfpPatientSource(seed=1, medication_phase_s=12000.0)
    peak = LfpPatientSource(seed=1, medication_phase_s=2200.0)
    none = LfpPatientSource(seed=1, medication_period_s=0.0)
    for s in (late, peak, none):
        _run(s, 20, 0.0)
    d = {k: s.metrics()["mean_drive"] for k, s in (("late", late), ("peak", peak),
                                                    ("none", none))}
    assert d["peak"] < 0.6 * d["none"] and d["peak"] < d["late"] < d["none"]


def test_prefetched_figures_are_those_of_what_was_read() -> None:
    """The producer may be a hop ahead; the figures must not depend on how far it got."""
    direct = LfpPatientSource(seed=8)
    _run(direct, 2, 2.0)
    src = LfpPatientSource(seed=8).open()
    src.start_prefetch(HOP)
    try:
        for k in range(20):
            assert src.read(HOP, timeout=5.0) is not None
            src.stimulation_applied(MONO * 2.0, 130.0, 60.0, (k + 2) * HOP)
        import time

        time.sleep(0.2)  # let the producer make the next hop
        assert src._next_index == 21 * HOP  # noqa: SLF001
        assert src.metrics() == direct.metrics()
    finally:
        src.close()
    assert src.metrics() == direct.metrics()
