"""The interfaces the closed-loop therapy presets share (adbs, responsive).

1. A patient that reacts to stimulation hears every command the loop sends, at a sample index
   that depends on sample indices only; its producer never runs ahead of what it knows.
2. Policies and sources report therapy figures into the run summary.
3. A reference run of the same patient under another policy, compared side by side.
"""

from __future__ import annotations

import threading

import numpy as np

from neuroloop.acquisition import open_source
from neuroloop.acquisition.base import BaseSource, stimulation_effect_sample
from neuroloop.acquisition.prefetch import StimulationHorizon
from neuroloop.control.therapy import NOMINAL_LOAD_OHM, TherapyMeter
from neuroloop.runtime.counterfactual import CONTINUOUS, compare, format_comparison
from neuroloop.runtime.session import RunOptions, Session, therapy_metrics


class _Listening:
    """A bsi patient that records the stimulation it is told about (a test double)."""

    reacts_to_stimulation = True

    def __init__(self, inner) -> None:
        self.inner, self.info, self.paced_by_device = inner, inner.info, False
        self.exhausted = False
        self.calls: list[tuple[float, float, float, int]] = []

    def open(self):
        self.inner.open()
        return self

    def read(self, n, timeout=None):
        return self.inner.read(n, timeout)

    def close(self) -> None:
        self.inner.close()

    def stimulation_applied(self, amplitude_ma, frequency_hz, pulse_width_us, from_sample):
        self.calls.append((float(np.abs(amplitude_ma).sum()), frequency_hz, pulse_width_us,
                           from_sample))

    def metrics(self):
        return {"commands_heard": float(len(self.calls))}


def test_the_loop_tells_a_reacting_patient_every_command(small_bsi, bsi_decoder_file) -> None:
    s = Session(small_bsi, RunOptions(fast=True, decoder_path=bsi_decoder_file))
    src = _Listening(open_source("synthetic://bsi", seed=3))
    s.open(source=src)
    summary = s.run(max_cycles=80)
    hop = small_bsi.dsp.hop_samples
    assert len(src.calls) == 80
    starts = [c[3] for c in src.calls]
    # the command of the hop ending at sample k acts from k + 1 + one hop, never earlier
    assert starts == [stimulation_effect_sample((i + 1) * hop - 1, hop) for i in range(80)]
    assert starts[0] == 2 * hop
    assert summary["patient"] == {"commands_heard": 80.0}
    assert any(c[0] > 0 for c in src.calls) or summary["cycles"] == 80


def test_a_source_that_does_not_react_is_never_called(small_bsi, bsi_decoder_file) -> None:
    s = Session(small_bsi, RunOptions(fast=True, decoder_path=bsi_decoder_file))
    src = _Listening(open_source("synthetic://bsi", seed=3))
    src.reacts_to_stimulation = False
    s.open(source=src)
    s.run(max_cycles=10)
    assert src.calls == []


def test_base_source_defaults_are_inert() -> None:
    src = BaseSource()
    assert src.reacts_to_stimulation is False
    src.stimulation_applied(np.zeros(4), 130.0, 60.0, 100)
    assert src.metrics() == {}


def test_horizon_holds_the_producer_until_the_command_is_known() -> None:
    h = StimulationHorizon(limit=50)
    assert h.wait_for(50)
    done = threading.Event()
    result: list[bool] = []

    def producer() -> None:
        result.append(h.wait_for(75))
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.05)
    h.advance(60)  # not far enough
    assert not done.wait(0.05)
    h.advance(75)
    assert done.wait(5.0) and result == [True]
    t.join()
    h.advance(10)  # never moves back
    assert h.limit == 75
    waiter = threading.Thread(target=lambda: result.append(h.wait_for(10_000)))
    waiter.start()
    h.close()
    waiter.join(5.0)
    assert result[-1] is False


def test_therapy_meter_integrates_time_energy_and_ramps() -> None:
    m = TherapyMeter(max_gap_s=10.0)
    ns = 1_000_000_000
    m.step(0, 0.0, 0.0, 0.0)
    m.step(1 * ns, 2.0, 130.0, 60.0)   # 1 s off, then on at 2 mA
    m.step(3 * ns, 3.0, 130.0, 60.0)   # 2 s at 2 mA, rising (same ramp)
    m.step(4 * ns, 1.0, 130.0, 60.0)   # 1 s at 3 mA, falling: a second ramp
    m.step(5 * ns, 1.0, 130.0, 60.0)   # 1 s at 1 mA
    f = m.metrics()
    assert f["stim_time_s"] == 4.0 and f["stim_time_pct"] == 80.0
    expected = sum(i * i * 1e-6 * NOMINAL_LOAD_OHM * 130.0 * 60e-6 * dt
                   for i, dt in ((2.0, 2.0), (3.0, 1.0), (1.0, 1.0)))
    assert np.isclose(f["teed_mj"], 1e3 * expected)
    assert f["ramps"] == 2.0
    gap = TherapyMeter(max_gap_s=1.0)  # a stalled source: a long interval counts 1 s at most
    gap.step(0, 2.0, 130.0, 60.0)
    gap.step(5 * ns, 2.0, 130.0, 60.0)
    assert gap.metrics()["stim_time_s"] == 1.0


def test_therapy_metrics_and_comparison() -> None:
    class P:
        def metrics(self):
            return {"stim_time_pct": 40.0, "teed_mj": 2.0}

    class S:
        pass

    figures = therapy_metrics(P(), S())
    assert figures == {"control": {"stim_time_pct": 40.0, "teed_mj": 2.0}}
    ref = {"cycles": 10, "control": {"stim_time_pct": 100.0, "teed_mj": 8.0, "other": 1.0}}
    cmp = compare(figures, ref, CONTINUOUS)
    assert cmp["control"]["stim_time_pct"]["ratio"] == 0.4
    assert cmp["control"]["teed_mj"]["ratio"] == 0.25
    assert "other" not in cmp["control"]
    text = "\n".join(format_comparison(cmp))
    assert "continuous" in text and "0.250" in text
