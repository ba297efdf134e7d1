"""The adbs cycle in the real loop: a patient that reacts, produced ahead without running
ahead of its stimulation, and no allocation per cycle."""

from __future__ import annotations

import copy
import gc
import tomllib
import tracemalloc
from importlib import resources

import numpy as np
import pytest

from neuroloop.config import scenario_from_dict
from neuroloop.runtime.counterfactual import CONTINUOUS, UNSTIMULATED, run_counterfactual
from neuroloop.runtime.session import RunOptions, Session


@pytest.fixture(scope="module")
def small_adbs():
    table = tomllib.loads((resources.files("neuroloop.scenarios") / "adbs.toml").read_text())
    table = copy.deepcopy(table)
    table["decoder"]["calibration_s"] = 30.0
    return scenario_from_dict(table, label="adbs-small")


def test_prefetched_reacting_patient_does_not_grow_and_stays_behind(small_adbs) -> None:
    s = Session(small_adbs, RunOptions(fast=True, duration_s=400.0))
    loop = s.open()
    src = s.source
    assert src._producer is not None  # noqa: SLF001 - the producer runs
    s.supervisor.arm(s.clock.now_ns())
    hop = small_adbs.dsp.hop_samples
    for _ in range(300):
        assert loop._one_cycle()
        # never a sample whose command is not known: one hop ahead at most
        assert src._next_index <= loop.reader.next_index + hop  # noqa: SLF001
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            assert loop._one_cycle()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        src.close()
    assert after - before < 16384, f"memory grew by {after - before} bytes over 2000 cycles"


def test_fast_runs_are_reproducible_and_references_share_the_patient(small_adbs) -> None:
    def run(**kw):
        s = Session(small_adbs, RunOptions(fast=True, duration_s=60.0, seed=5, **kw))
        s.open()
        return s.run()

    a, b = run(), run()
    assert a["patient"] == b["patient"] and a["control"] == b["control"]
    opts = RunOptions(fast=True, duration_s=60.0, seed=5)
    off = run_counterfactual(small_adbs, opts, UNSTIMULATED, cycles=600)
    on = run_counterfactual(small_adbs, opts, CONTINUOUS, cycles=600)
    assert off["control"]["stim_time_pct"] == 0.0 and on["control"]["stim_time_pct"] > 99.0
    assert off["patient"]["mean_drive"] > a["patient"]["mean_drive"] > on["patient"]["mean_drive"]
    assert np.isclose(on["patient"]["simulated_s"], a["patient"]["simulated_s"], atol=0.2)
