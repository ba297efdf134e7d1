"""``neuroloop bench`` line for the safety supervisor: latency of one ``step`` per cycle.

The workload is the bsi scenario's program set with the default limits, driven by a
gait-like request stream (each movement program for a while at a confidence-scaled
amplitude, rests in between, now and then a request above the clinician's maximum so that
clamping runs too) on a simulated 100 ms clock. Each ``SafetySupervisor.step`` is timed with
``time.perf_counter_ns`` with the garbage collector disabled, after a warm-up. Every emitted
command is then checked with the independent :func:`~neuroloop.safety.validate.validate`
oracle (outside the timed region); ``violations`` must be 0.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from ..stats import latency_stats_us

__all__ = ["bench_supervisor"]


def bench_supervisor(n_hops: int = 5000, warmup_hops: int = 200) -> dict[str, Any]:
    """Time ``SafetySupervisor.step`` per cycle on a bsi-like request stream.

    Parameters
    ----------
    n_hops : int
        Measured cycles.
    warmup_hops : int
        Cycles run first (after :meth:`SafetySupervisor.warmup`) and not measured.

    Returns
    -------
    dict
        ``{"workload": "supervisor", "description", "n_hops", "warmup_hops",
        "neuroloop_us": {"p50", "p99", "p999", "max", "mean"}, "violations": int,
        "clamped_cycles": int, "events": int, "targets": {"p99<=20us": bool,
        "violations==0": bool}}``.
    """
    from ..config import load_scenario
    from ..stimulation.command import StimCommand
    from ..stimulation.programs import build_program_set
    from .limits import load_limits
    from .supervisor import SafetySupervisor
    from .validate import validate

    scenario = load_scenario("bsi")
    programs = build_program_set(scenario.stimulation, scenario.intention_names)
    limits = load_limits(scenario.safety)
    period_ns = int(round(scenario.hop_s * 1e9))
    sup = SafetySupervisor(limits, programs.array, programs, cycle_period_s=scenario.hop_s)
    sup.warmup()
    n_c = programs.array.n_contacts
    ids = [p.program_id for p in programs]
    total = warmup_hops + n_hops

    # the request stream, built before timing (one preallocated request per cycle kind)
    rng = np.random.default_rng(11)
    kinds = np.empty(total, dtype=np.int64)
    amps = np.empty(total)
    k = 0
    while k < total:
        seg = int(rng.integers(8, 30))
        pid = 0 if rng.random() < 0.3 else int(rng.choice(ids))
        for j in range(seg):
            if k + j >= total:
                break
            kinds[k + j] = pid
            amps[k + j] = rng.uniform(0.0, 1.0)
        k += seg
    over = rng.random(total) < 0.02  # now and then a request above the envelope
    req = StimCommand.off(n_c)
    times = np.zeros(n_hops, dtype=np.int64)
    outs = np.zeros((total, n_c))
    params = np.zeros((total, 5))
    prog_ids = np.zeros(total, dtype=np.int64)
    n_events = 0
    sup.arm(0)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for i in range(total):
            pid = int(kinds[i])
            p = programs.get(pid)
            if p is None:
                req.set_off()
            else:
                a = p.amplitude_min_ma + amps[i] * (p.amplitude_max_ma - p.amplitude_min_ma)
                if over[i]:
                    a *= 3.0
                req.case_ma = p.contact_currents(a, req.amplitude_ma)
                req.pulse_width_us = p.pulse_width_us
                req.frequency_hz = p.frequency_hz
                req.interphase_gap_us = p.interphase_gap_us
                req.program_id = pid
            req.cycle = i
            now = (i + 1) * period_ns
            t0 = time.perf_counter_ns()
            out, events = sup.step(req, now, input_ns=now - 500_000, confidence=0.9)
            t1 = time.perf_counter_ns()
            n_events += len(events)
            if i >= warmup_hops:
                times[i - warmup_hops] = t1 - t0
            outs[i] = out.amplitude_ma
            params[i] = (out.pulse_width_us, out.frequency_hz, out.interphase_gap_us,
                         out.case_ma, out.waveform)
            prog_ids[i] = out.program_id
    finally:
        if gc_was:
            gc.enable()

    violations = 0
    prev = StimCommand.off(n_c)
    for j in range(total):
        cmd = StimCommand(outs[j], params[j, 0], params[j, 1], params[j, 2], int(prog_ids[j]),
                          j, params[j, 3], int(params[j, 4]))
        violations += len(validate(cmd, limits, programs.array, previous=prev,
                                   dt_s=scenario.hop_s, programs=programs))
        prev = cmd
    stats = latency_stats_us(times)
    clamped = sum(sup.limit_cycles().values())
    return {
        "workload": "supervisor",
        "description": "SafetySupervisor.step per cycle: bsi programs, default limits, "
                       "gait-like requests (2% above the envelope), validated afterwards",
        "n_hops": int(n_hops),
        "warmup_hops": int(warmup_hops),
        "neuroloop_us": stats,
        "violations": int(violations),
        "clamped_cycles": int(clamped),
        "events": int(n_events),
        "targets": {"p99<=20us": bool(stats["p99"] <= 20.0),
                    "violations==0": bool(violations == 0)},
    }
