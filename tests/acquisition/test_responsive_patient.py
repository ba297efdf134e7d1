"""The responsive-neurostimulation patient: a deterministic stream, seizures, and aborts."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.acquisition import open_source
from neuroloop.acquisition.responsive import ResponsivePatient
from neuroloop.errors import ConfigError


def _read_all(src: ResponsivePatient, sizes) -> tuple[np.ndarray, np.ndarray]:
    xs, ls = [], []
    i = 0
    while True:
        b = src.read(sizes[i % len(sizes)])
        i += 1
        if b is None:
            break
        xs.append(b.data.copy())
        ls.append(b.labels.copy())
    return np.concatenate(xs), np.concatenate(ls)


def test_stream_does_not_depend_on_read_sizes():
    a = open_source("synthetic://responsive?seed=3&duration_s=400").open()
    b = open_source("synthetic://responsive", seed=3, duration_s=400).open()
    xa, la = _read_all(a, [25])
    xb, lb = _read_all(b, [1, 4096, 37])
    assert np.array_equal(xa, xb) and np.array_equal(la, lb)
    assert xa.shape == (100_000, 4)
    assert a.info.channel_names == ("D0-D1", "D2-D3", "S0-S1", "S2-S3")


def test_seizures_are_labelled_and_larger_than_background():
    src = ResponsivePatient(seed=1, duration_s=1200)
    src.open()
    x, lab = _read_all(src, [500])
    iv = src.seizure_intervals(x.shape[0])
    assert iv.shape[0] >= 2
    for onset, end in iv:
        assert np.all(lab[onset:end] == 1)
        assert lab[onset - 1] == 0
    inter = x[lab == 0, 0]
    ictal = x[lab == 1, 0]
    assert ictal.std() > 1.2 * inter.std()  # spike-and-wave: sharp, so more in the peaks
    assert np.percentile(np.abs(ictal), 99) > 1.6 * np.percentile(np.abs(inter), 99)
    assert 25.0 < inter.std() < 80.0


def test_stimulation_aborts_early_and_never_changes_the_past():
    off = ResponsivePatient(seed=2, duration_s=900)
    on = ResponsivePatient(seed=2, duration_s=900)
    off.open(), on.open()
    onset = int(on.seizures[0, 0])
    x_off, _ = _read_all(off, [250])
    amp = np.zeros(8)
    amp[4:6] = -1.0
    amp[6:8] = 1.0
    got = []

    def read_to(stop: int) -> None:
        while on.position < stop:
            got.append(on.read(min(4096, stop - on.position)).data.copy())

    first = onset + 250  # 1 s after the onset: p = 0.9 exp(-1/8) = 0.79
    read_to(first)
    on.stimulation_applied(amp, 200.0, 160.0, first - 100)  # in the past: from the next sample
    read_to(first + 25)
    on.stimulation_applied(np.zeros(8), 0.0, 0.0, first + 25)
    read_to(x_off.shape[0])
    x_on = np.concatenate(got)
    assert np.array_equal(x_on[:first], x_off[:first])
    assert on.n_bursts == 1
    assert np.all(x_on[first:first + 25] == x_on[first - 1])  # blanked amplifier
    draw = on.abort_draws[0, 0]
    expect_abort = draw < 0.9 * np.exp(-1.0 / 8.0)
    assert on.metrics()["seizures_aborted"] == float(expect_abort)
    if expect_abort:
        assert on.seizures[0, 3] < off.seizures[0, 3]


def test_abort_probability_falls_with_delay():
    aborted = {0.5: 0, 20.0: 0}
    for seed in range(40):
        for delay in aborted:
            p = ResponsivePatient(seed=seed, duration_s=2000)
            p.open()
            onset = int(p.seizures[0, 0])
            s = onset + int(delay * 250)
            p.read(min(s, 4096))
            while p.position < s:
                p.read(min(4096, s - p.position))
            p.stimulation_applied(np.array([-2.0, 2.0]), 200.0, 160.0, s)
            aborted[delay] += int(p.seizures[0, 10] >= 0)
    assert aborted[0.5] > 25 > 10 > aborted[20.0]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        ResponsivePatient(colour=1)
    with pytest.raises(ConfigError, match="abort_p_max"):
        ResponsivePatient(abort_p_max=2.0)
    with pytest.raises(ConfigError, match="n_channels"):
        open_source("synthetic://responsive?n_channels=8")
