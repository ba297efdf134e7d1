"""The compiled clamping kernel against a vectorised NumPy reference of the same rules.

The reference below is written from the clamping order documented in
``neuroloop/safety/_kernels.py`` (and docs/safety.md) with whole-array NumPy operations; the
kernel is a scalar loop. Both get the same random (and adversarial) inputs; outputs must
agree to rtol 1e-9 and the sets of interlocks that acted must be equal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuroloop.safety import SafetyLimits, SafetySupervisor
from neuroloop.safety import _kernels as K
from neuroloop.safety import reasons as R
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram

N = 16
MARGIN = 1.0 - 1e-12


def reference(req, pw, f, ipg, case, wf, prog, prev, dt_s, z, blocked, lim: SafetyLimits,
              areas, dose_used, horizon_s, mode="request", ramp=1.0, prev_params=None):
    """NumPy reference of one kernel call. Returns (amp, pw, f, ipg, case, wf, flags)."""
    zero = (np.zeros(N), 0.0, 0.0, 0.0, 0.0, 0.0)
    flags: set[str] = set()
    if mode == "request":
        if not np.all(np.isfinite(np.r_[req, pw, f, ipg, case, wf])):
            return (*zero, {R.NONFINITE})
        nonzero = bool(np.any(req != 0)) or case != 0
        if prog is None:
            return (*zero, {R.UNKNOWN_PROGRAM} if nonzero else set())
        a_req = float(np.sum(np.clip(-req, 0, None)))
        if not nonzero or a_req <= 0:
            return (*zero, set())
        sf = prog.anode_fraction - prog.cathode_fraction
        a_t = a_req
        if a_t > prog.amplitude_max_ma:
            flags.add(R.ENVELOPE)
            a_t = prog.amplitude_max_ma
        elif a_t < prog.amplitude_min_ma:
            flags.add(R.ENVELOPE)
            a_t = prog.amplitude_min_ma
        if np.any(np.abs(req - a_req * sf) > 1e-6 * (1 + a_req)) or not np.allclose(
                [pw, f, ipg], [prog.pulse_width_us, prog.frequency_hz, prog.interphase_gap_us],
                rtol=1e-9, atol=1e-9):
            flags.add(R.PROGRAM_PATTERN)
        pw, f, ipg = prog.pulse_width_us, prog.frequency_hz, prog.interphase_gap_us
        out = a_t * sf
        uses_case = prog.uses_case
        if wf != 0:
            flags.add(R.CHARGE_BALANCE)
            wf = 0.0
        for name, val, lo, hi in (
                (R.PULSE_WIDTH, pw, lim.pulse_width_min_us, lim.pulse_width_max_us),
                (R.FREQUENCY, f, lim.frequency_min_hz, lim.frequency_max_hz),
                (R.INTERPHASE_GAP, ipg, lim.interphase_gap_min_us, lim.interphase_gap_max_us)):
            if not lo <= val <= hi:
                flags.add(name)
        pw = float(np.clip(pw, lim.pulse_width_min_us, lim.pulse_width_max_us))
        f = float(np.clip(f, lim.frequency_min_hz, lim.frequency_max_hz))
        ipg = float(np.clip(ipg, lim.interphase_gap_min_us, lim.interphase_gap_max_us))
        if (2 * pw + ipg) * f >= 1e6:
            flags.add(R.PULSE_FEASIBILITY)
            f_new = 1e6 / (2 * pw + ipg) * (1 - 1e-9)
            if f_new < lim.frequency_min_hz:
                f_new = lim.frequency_min_hz
                pw = (1e6 / f_new - ipg) * 0.5 * (1 - 1e-9)
                if pw < lim.pulse_width_min_us or pw <= 0:
                    return (*zero, flags)
            f = f_new
        if abs(np.sum(req) + case) > 1e-6 * (1 + abs(case)):
            flags.add(R.CONSERVATION)
    else:
        pw, f, ipg, case, wf, prog = prev_params
        peak = float(np.max(np.abs(prev)))
        factor = ramp
        if peak > 0:
            factor = min(factor, max(1 - lim.slew_down_ma_per_s * dt_s / peak, 0.0))
        out = prev * factor
        case = case * factor
        uses_case = prog.uses_case
    hit = blocked & (out != 0)
    if np.any(hit):
        flags.add(R.IMPEDANCE)
        out = np.where(blocked, 0.0, out)
    cath = float(np.sum(np.clip(-out, 0, None)))
    anod = float(np.sum(np.clip(out, 0, None)))
    if uses_case:
        case = cath - anod
    else:
        t = min(cath, anod)
        if cath > t * (1 + 1e-12) or anod > t * (1 + 1e-12):
            sc = t / cath if cath > 0 else 0.0
            sa = t / anod if anod > 0 else 0.0
            out = np.where(out < 0, out * sc, out * sa)
        case = 0.0
    a = np.abs(out)
    on = a > 0
    ratios = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        q = a * pw / 1000.0
        ratios[R.CONTACT_CURRENT] = np.where(on, lim.contact_current_max_ma / a, np.inf)
        q_sh = np.sqrt(10 ** lim.shannon_k * areas)
        ratios[R.SHANNON] = np.where(on, q_sh / q, np.inf)
        ratios[R.CHARGE_DENSITY] = np.where(on, lim.charge_density_max_uc_per_cm2 * areas / q,
                                            np.inf)
        ratios[R.CHARGE_ABSOLUTE] = np.where(on, lim.charge_per_phase_max_uc / q, np.inf)
        zok = np.isfinite(z) & (z > 0)
        ratios[R.COMPLIANCE] = np.where(on & zok, lim.compliance_voltage_v * 1000 / (a * z),
                                        np.inf)
        inc = lim.slew_up_ma_per_s * dt_s
        bound = np.where(prev * out > 0, np.abs(prev) + inc, inc)
        ratios[R.SLEW_UP] = np.where(on, bound / a, np.inf)
    cath = float(np.sum(np.clip(-out, 0, None)))
    ratios[R.TOTAL_CURRENT] = np.array([lim.total_current_max_ma / cath if cath > 0 else np.inf])
    s = 1.0
    for name, r in ratios.items():
        if np.any(r < 1.0):
            flags.add(name)
            s = min(s, float(np.min(r)))
    if s < 1:
        s *= MARGIN
        out = out * s
        case *= s
    rate = float(np.sum(np.clip(-out, 0, None))) * pw / 1000 * f
    commit = rate * horizon_s
    if commit > 0 and commit > lim.dose_budget_uc - dose_used:
        flags.add(R.DOSE)
        s2 = max(lim.dose_budget_uc - dose_used, 0.0) / commit * MARGIN
        out = out * s2
        case *= s2
    if not (np.any(out != 0) or case != 0):
        return (*zero, flags)
    return out, pw, f, ipg, case, wf, flags


def _setup(rng):
    lim = SafetyLimits(
        shannon_k=rng.uniform(1.0, 1.5), charge_density_max_uc_per_cm2=rng.uniform(5, 30),
        charge_per_phase_max_uc=rng.uniform(0.3, 18), contact_current_max_ma=rng.uniform(1, 25),
        total_current_max_ma=rng.uniform(1, 25), slew_up_ma_per_s=rng.uniform(0.5, 10),
        slew_down_ma_per_s=rng.choice([0.1, 10.0, 1000.0]), compliance_voltage_v=rng.uniform(1, 20),
        dose_budget_uc=rng.uniform(1, 200), pulse_width_max_us=rng.uniform(200, 1000),
        frequency_max_hz=rng.uniform(100, 1200))
    arr = paddle_5_6_5(rng.uniform(0.01, 0.2))
    idx = rng.permutation(N)
    cath = {int(c): rng.uniform(0.1, 1) for c in idx[:rng.integers(1, 4)]}
    an = {int(c): rng.uniform(0.1, 1) for c in idx[4:4 + rng.integers(0, 3)]}
    hi = rng.uniform(0.5, 20)
    prog = StimProgram.from_contacts(arr, 1, "p", cath, an, rng.uniform(2, 1300),
                                     rng.uniform(10, 1200), (rng.uniform(0, hi), hi),
                                     rng.uniform(0, 600))
    ps = ProgramSet(arr, ("rest", "p"), (prog,))
    sup = SafetySupervisor(lim, arr, ps, cycle_period_s=0.1, strict_programs=False)
    return lim, arr, prog, sup


@pytest.mark.parametrize("seed", range(400))
def test_kernel_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    lim, arr, prog, sup = _setup(rng)
    a = rng.uniform(0, 25)
    req = np.zeros(N)
    case = prog.contact_currents(a, req)
    if rng.random() < 0.3:
        req[rng.integers(0, N)] += rng.normal(0, 3)
    if rng.random() < 0.1:
        req[rng.integers(0, N)] = rng.choice([math.nan, math.inf])
    pw = rng.choice([prog.pulse_width_us, rng.uniform(0, 1500)])
    f = rng.choice([prog.frequency_hz, rng.uniform(0, 2000)])
    ipg = rng.choice([prog.interphase_gap_us, rng.uniform(0, 800)])
    case = rng.choice([case, 0.0])
    wf = float(rng.choice([0, 0, 0, 1]))
    program_known = rng.random() < 0.9
    prev = np.zeros(N)
    prog.contact_currents(rng.uniform(0, 10), prev)
    if rng.random() < 0.3:
        prev = -prev
    z = np.where(rng.random(N) < 0.5, rng.uniform(100, 4000, N), np.nan)
    blocked = rng.random(N) < 0.1
    dt_s = float(rng.choice([0.0, 0.05, 0.1]))
    now_ns = 10**10
    # dose ledger: one earlier commit inside the window
    used = float(rng.uniform(0, 150))
    cfg, st = sup._cfg, sup._st
    st.dose_sums[0] = used
    st.dose_ids[0] = now_ns // cfg.bucket_ns

    mode = "request" if rng.random() < 0.8 else "ramp"
    ramp = float(rng.uniform(0, 1))
    prev_params = (prog.pulse_width_us, prog.frequency_hz, prog.interphase_gap_us,
                   float(-np.sum(prev)) if prog.uses_case else 0.0, 0.0, prog)

    ref = reference(req, pw, f, ipg, case, wf, prog if program_known else None, prev, dt_s,
                    z, blocked, lim, np.asarray(arr.area_cm2), used, 0.1, mode, ramp,
                    prev_params)

    req_s = np.zeros(K.N_REQ)
    req_s[[K.R_PW, K.R_F, K.R_IPG, K.R_CASE, K.R_WAVEFORM]] = (pw, f, ipg, case, wf)
    req_s[K.R_MODE] = K.MODE_REQUEST if mode == "request" else K.MODE_RAMP
    req_s[K.R_RAMP] = ramp
    req_s[K.R_DT] = dt_s
    prev_s = np.zeros(K.N_S)
    prev_s[[K.S_PW, K.S_F, K.S_IPG, K.S_CASE]] = prev_params[:4]
    prev_s[K.S_PROGRAM] = 1.0
    prev_s[K.S_WAVEFORM] = 0.0
    ip = sup._scratch.iparams.copy()
    ip[K.I_ROW] = 1 if program_known else -1
    ip[K.I_PROGRAM] = 1 if program_known else 7
    ip[K.I_NOW] = now_ns
    out_amp = np.zeros(N)
    out_s = np.zeros(K.N_S)
    ev = np.zeros((K.N_EV, K.N_BITS))
    flags = K.supervise(req, req_s, cfg.prog_sf, cfg.prog_info, cfg.caps, cfg.lim, z,
                        blocked, prev.copy(), prev_s, out_amp, out_s, st.dose_ids,
                        st.dose_sums, ip, ev)
    got_flags = {R.KERNEL_REASONS[b] for b in range(K.N_BITS) if (flags >> b) & 1}
    assert got_flags == ref[6]
    assert_allclose(out_amp, ref[0], rtol=1e-9, atol=1e-12)
    assert_allclose(out_s[[K.S_PW, K.S_F, K.S_IPG, K.S_CASE, K.S_WAVEFORM]],
                    [ref[1], ref[2], ref[3], ref[4], ref[5]], rtol=1e-9, atol=1e-9)
