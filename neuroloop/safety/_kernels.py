"""Compiled per-cycle clamping of the safety supervisor (private).

One kernel, :func:`supervise`, turns a request into a safe command in place. It only ever
*reduces* what was requested (except the clinician's minimum, which it raises to), in this
order, so that every invariant holds at once:

1. non-finite request -> zero; unknown program -> zero;
2. project the request onto its program's contact pattern and take the program's pulse
   width, frequency and gap (the decoder only modulates amplitude), and clamp the program
   amplitude into the clinician's [min, max];
3. waveform forced to symmetric biphasic (charge balance by construction);
4. pulse width, frequency and interphase gap clamped into their ranges, then frequency (and if
   needed pulse width) lowered until (2 PW + IPG) f < 1 s;
5. contacts outside the impedance window zeroed, then cathodes/anodes rebalanced (or the case
   current recomputed) so that every phase sums to zero;
6. one common scale factor, the smallest over: per-contact current, Shannon, charge density,
   absolute charge, compliance voltage, slew-up (per contact), total cathodic current. A
   common factor keeps the program's shape, hence conservation;
7. the rolling dose budget (another common factor);
8. an all-zero result becomes a clean "off" command.

The kernel shares no code with :mod:`neuroloop.safety.validate`, which checks the result
independently from the formulas.

Array layouts (all preallocated by the supervisor, float64 unless noted):

``req_s``     [pw_us, f_hz, ipg_us, case_ma, waveform, mode, ramp_factor, dt_s]
``prev_s`` / ``out_s``  [pw_us, f_hz, ipg_us, case_ma, program_id, waveform]
``prog_info`` (n_rows, 7) [has_program, uses_case, amplitude_min_ma, amplitude_max_ma,
              pulse_width_us, frequency_hz, interphase_gap_us]
``caps``      (4, n) [shannon Q_max uC, density Q_max uC, absolute Q_max uC, area cm^2]
``lim``       see the ``L_*`` indices
``iparams``   int64 [program_row, program_id, now_ns, bucket_width_ns, window_ns, disabled]
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit

# lim indices
L_CONTACT_MAX = 0
L_TOTAL_MAX = 1
L_PW_MIN = 2
L_PW_MAX = 3
L_F_MIN = 4
L_F_MAX = 5
L_IPG_MIN = 6
L_IPG_MAX = 7
L_SLEW_UP = 8
L_COMPLIANCE_V = 9
L_DOSE_BUDGET = 10
L_HORIZON_S = 11
L_SLEW_DOWN = 12
N_LIM = 13

# req_s indices
R_PW = 0
R_F = 1
R_IPG = 2
R_CASE = 3
R_WAVEFORM = 4
R_MODE = 5
R_RAMP = 6
R_DT = 7
N_REQ = 8

# prev_s / out_s indices
S_PW = 0
S_F = 1
S_IPG = 2
S_CASE = 3
S_PROGRAM = 4
S_WAVEFORM = 5
N_S = 6

# iparams indices
I_ROW = 0
I_PROGRAM = 1
I_NOW = 2
I_BUCKET_NS = 3
I_WINDOW_NS = 4
I_DISABLED = 5
N_I = 6

MODE_REQUEST = 0.0
MODE_RAMP = 1.0

# reason bits (must match reasons.KERNEL_REASONS order)
B_NONFINITE = 0
B_UNKNOWN_PROGRAM = 1
B_PROGRAM_PATTERN = 2
B_ENVELOPE = 3
B_PULSE_WIDTH = 4
B_FREQUENCY = 5
B_INTERPHASE_GAP = 6
B_PULSE_FEASIBILITY = 7
B_SHANNON = 8
B_CHARGE_DENSITY = 9
B_CHARGE_ABSOLUTE = 10
B_CONTACT_CURRENT = 11
B_TOTAL_CURRENT = 12
B_IMPEDANCE = 13
B_COMPLIANCE = 14
B_CONSERVATION = 15
B_CHARGE_BALANCE = 16
B_SLEW_UP = 17
B_DOSE = 18
N_BITS = 19

#: Safety margin on every scale factor, so that rounding never lands above a limit.
_MARGIN = 1.0 - 1e-12
_PROGRAM_OFF = -1.0


@jit
def _on(disabled, bit):
    return ((disabled >> bit) & 1) == 0


@jit
def _note(bit, contact, requested, allowed, ratio, ev_contact, ev_req, ev_allow, ev_ratio):
    """Keep the worst (smallest allowed/requested ratio) occurrence of each reason."""
    if ratio < ev_ratio[bit]:
        ev_ratio[bit] = ratio
        ev_contact[bit] = contact
        ev_req[bit] = requested
        ev_allow[bit] = allowed


@jit
def _clamp_range(bit, value, lo, hi, ev_contact, ev_req, ev_allow, ev_ratio):
    """Clamp a pulse parameter into [lo, hi]; returns (value, flag bits) and notes a clamp."""
    if not (value < lo or value > hi):
        return value, 0
    new = min(max(value, lo), hi)
    _note(bit, -1, value, new, 0.0, ev_contact, ev_req, ev_allow, ev_ratio)
    return new, 1 << bit


@jit
def _set_off(out_amp, out_s, prev_amp, prev_s):
    for c in range(out_amp.shape[0]):
        out_amp[c] = 0.0
        prev_amp[c] = 0.0
    for i in range(out_s.shape[0]):
        out_s[i] = 0.0
        prev_s[i] = 0.0
    out_s[S_PROGRAM] = _PROGRAM_OFF
    prev_s[S_PROGRAM] = _PROGRAM_OFF


@jit
def request_finite(req_amp, req_s):
    """True when every amplitude and the first five scalars of ``req_s`` are finite."""
    for c in range(req_amp.shape[0]):
        if not math.isfinite(req_amp[c]):
            return False
    for i in range(R_WAVEFORM + 1):
        if not math.isfinite(req_s[i]):
            return False
    return True


@jit
def dose_used_uc(dose_ids, dose_sums, now_ns, bucket_ns, window_ns):
    """Charge committed in the buckets that overlap [now - window, now], uC (conservative)."""
    k = now_ns // bucket_ns
    kmin = (now_ns - window_ns) // bucket_ns
    used = 0.0
    for i in range(dose_ids.shape[0]):
        if dose_ids[i] >= kmin and dose_ids[i] <= k:
            used += dose_sums[i]
    return used


@jit
def _commit_dose(dose_ids, dose_sums, now_ns, bucket_ns, charge_uc):
    k = now_ns // bucket_ns
    slot = k % dose_ids.shape[0]
    if dose_ids[slot] != k:
        dose_ids[slot] = k
        dose_sums[slot] = 0.0
    dose_sums[slot] += charge_uc


@jit
def supervise(req_amp, req_s, prog_sf, prog_info, caps, lim, z_ohm, blocked, prev_amp, prev_s,
              out_amp, out_s, dose_ids, dose_sums, iparams, ev_contact, ev_req, ev_allow,
              ev_ratio):
    """Write the safe command for ``req_amp``/``req_s`` into ``out_amp``/``out_s``.

    Returns the bit mask of the interlocks that acted (see ``B_*``); for each set bit,
    ``ev_contact``/``ev_req``/``ev_allow`` hold its worst occurrence. ``prev_amp``/``prev_s``
    are updated to the new output (the next cycle's slew reference), and the committed dose
    is added to the ledger.
    """
    n = out_amp.shape[0]
    disabled = iparams[I_DISABLED]
    now_ns = iparams[I_NOW]
    bucket_ns = iparams[I_BUCKET_NS]
    window_ns = iparams[I_WINDOW_NS]
    flags = 0
    for b in range(ev_ratio.shape[0]):
        ev_ratio[b] = np.inf
        ev_contact[b] = -1
        ev_req[b] = np.nan
        ev_allow[b] = np.nan
    mode = req_s[R_MODE]
    dt_s = req_s[R_DT]
    if not (dt_s >= 0.0):
        dt_s = 0.0
    n_rows = prog_info.shape[0]

    if mode == MODE_REQUEST:
        pw = req_s[R_PW]
        f = req_s[R_F]
        ipg = req_s[R_IPG]
        case = req_s[R_CASE]
        wf = req_s[R_WAVEFORM]
        finite = (math.isfinite(pw) and math.isfinite(f) and math.isfinite(ipg)
                  and math.isfinite(case) and math.isfinite(wf))
        bad_c = -1
        for c in range(n):
            if not math.isfinite(req_amp[c]):
                finite = False
                bad_c = c
                break
        if not finite and _on(disabled, B_NONFINITE):
            flags |= 1 << B_NONFINITE
            _note(B_NONFINITE, bad_c, np.nan, 0.0, 0.0, ev_contact, ev_req, ev_allow, ev_ratio)
            _set_off(out_amp, out_s, prev_amp, prev_s)
            return flags
        a_req = 0.0
        any_nonzero = case != 0.0
        for c in range(n):
            if req_amp[c] < 0.0:
                a_req -= req_amp[c]
            if req_amp[c] != 0.0:
                any_nonzero = True
        row = iparams[I_ROW]
        program_id = float(iparams[I_PROGRAM])
        has_program = 0 <= row < n_rows and prog_info[row, 0] > 0.0
        enforce_program = True
        if not has_program:
            if any_nonzero and _on(disabled, B_UNKNOWN_PROGRAM):
                flags |= 1 << B_UNKNOWN_PROGRAM
                _note(B_UNKNOWN_PROGRAM, -1, program_id, np.nan, 0.0, ev_contact, ev_req,
                      ev_allow, ev_ratio)
                _set_off(out_amp, out_s, prev_amp, prev_s)
                return flags
            enforce_program = False
        if not any_nonzero or (enforce_program and a_req <= 0.0
                               and _on(disabled, B_PROGRAM_PATTERN)):
            # rest: nothing requested (or nothing cathodic on a program)
            _set_off(out_amp, out_s, prev_amp, prev_s)
            return flags
        uses_case = True
        if enforce_program:
            uses_case = prog_info[row, 1] > 0.0
            a_t = a_req
            if _on(disabled, B_ENVELOPE):
                lo = prog_info[row, 2]
                hi = prog_info[row, 3]
                if a_t > hi:
                    flags |= 1 << B_ENVELOPE
                    _note(B_ENVELOPE, -1, a_req, hi, hi / a_req, ev_contact, ev_req, ev_allow,
                          ev_ratio)
                    a_t = hi
                elif a_t < lo:
                    flags |= 1 << B_ENVELOPE
                    _note(B_ENVELOPE, -1, a_req, lo, 1.0, ev_contact, ev_req, ev_allow,
                          ev_ratio)
                    a_t = lo
            if _on(disabled, B_PROGRAM_PATTERN):
                ppw = prog_info[row, 4]
                pf = prog_info[row, 5]
                pipg = prog_info[row, 6]
                if (abs(pw - ppw) > 1e-9 * (1.0 + ppw) or abs(f - pf) > 1e-9 * (1.0 + pf)
                        or abs(ipg - pipg) > 1e-9 * (1.0 + pipg)):
                    flags |= 1 << B_PROGRAM_PATTERN
                    _note(B_PROGRAM_PATTERN, -1, pw, ppw, 1.0, ev_contact, ev_req, ev_allow,
                          ev_ratio)
                pw = ppw
                f = pf
                ipg = pipg
                tol = 1e-6 * (1.0 + a_req)
                for c in range(n):
                    expect = a_req * prog_sf[row, c]
                    if abs(req_amp[c] - expect) > tol:
                        flags |= 1 << B_PROGRAM_PATTERN
                        _note(B_PROGRAM_PATTERN, c, req_amp[c], a_t * prog_sf[row, c], 1.0,
                              ev_contact, ev_req, ev_allow, ev_ratio)
                    out_amp[c] = a_t * prog_sf[row, c]
            else:
                s = a_t / a_req if a_req > 0.0 else 1.0
                for c in range(n):
                    out_amp[c] = req_amp[c] * s
                case = case * s
        else:
            for c in range(n):
                out_amp[c] = req_amp[c]
        if wf != 0.0:
            if _on(disabled, B_CHARGE_BALANCE):
                flags |= 1 << B_CHARGE_BALANCE
                _note(B_CHARGE_BALANCE, -1, wf, 0.0, 0.0, ev_contact, ev_req, ev_allow,
                      ev_ratio)
                wf = 0.0
        # parameter ranges
        if _on(disabled, B_PULSE_WIDTH):
            pw, hit = _clamp_range(B_PULSE_WIDTH, pw, lim[L_PW_MIN], lim[L_PW_MAX], ev_contact,
                                   ev_req, ev_allow, ev_ratio)
            flags |= hit
        if _on(disabled, B_FREQUENCY):
            f, hit = _clamp_range(B_FREQUENCY, f, lim[L_F_MIN], lim[L_F_MAX], ev_contact,
                                  ev_req, ev_allow, ev_ratio)
            flags |= hit
        if _on(disabled, B_INTERPHASE_GAP):
            ipg, hit = _clamp_range(B_INTERPHASE_GAP, ipg, lim[L_IPG_MIN], lim[L_IPG_MAX],
                                    ev_contact, ev_req, ev_allow, ev_ratio)
            flags |= hit
        if _on(disabled, B_PULSE_FEASIBILITY) and (2.0 * pw + ipg) * f >= 1e6:
            flags |= 1 << B_PULSE_FEASIBILITY
            f_new = 1e6 / (2.0 * pw + ipg) * (1.0 - 1e-9)
            _note(B_PULSE_FEASIBILITY, -1, f, f_new, 0.0, ev_contact, ev_req, ev_allow,
                  ev_ratio)
            if f_new < lim[L_F_MIN] and _on(disabled, B_FREQUENCY):
                # keep f in range and shorten the phases instead; give up if impossible
                f_new = lim[L_F_MIN]
                pw = (1e6 / f_new - ipg) * 0.5 * (1.0 - 1e-9)
                if pw < lim[L_PW_MIN] or pw <= 0.0:
                    _set_off(out_amp, out_s, prev_amp, prev_s)
                    return flags
            f = f_new
        program_out = program_id
    else:
        # fallback ramp: the previous output scaled down toward zero
        factor = req_s[R_RAMP]
        if not (factor >= 0.0):
            factor = 0.0
        if factor > 1.0:
            factor = 1.0
        peak = 0.0
        for c in range(n):
            peak = max(peak, abs(prev_amp[c]))
        if peak > 0.0:
            # fall at least at the slew-down rate
            factor = min(factor, max(1.0 - lim[L_SLEW_DOWN] * dt_s / peak, 0.0))
        for c in range(n):
            out_amp[c] = prev_amp[c] * factor
        pw = prev_s[S_PW]
        f = prev_s[S_F]
        ipg = prev_s[S_IPG]
        case = prev_s[S_CASE] * factor
        wf = prev_s[S_WAVEFORM]
        program_out = prev_s[S_PROGRAM]
        prow = int(program_out)
        if 0 <= prow < n_rows and prog_info[prow, 0] > 0.0:
            uses_case = prog_info[prow, 1] > 0.0
        else:
            uses_case = case != 0.0

    # impedance window: never drive a contact outside it
    if _on(disabled, B_IMPEDANCE):
        for c in range(n):
            if blocked[c] and out_amp[c] != 0.0:
                flags |= 1 << B_IMPEDANCE
                _note(B_IMPEDANCE, c, abs(out_amp[c]), 0.0, 0.0, ev_contact, ev_req, ev_allow,
                      ev_ratio)
                out_amp[c] = 0.0

    # current conservation: contacts + case sum to zero in each phase
    if _on(disabled, B_CONSERVATION):
        if mode == MODE_REQUEST:
            total_req = req_s[R_CASE]
            for c in range(n):
                total_req += req_amp[c]
            if abs(total_req) > 1e-6 * (1.0 + abs(req_s[R_CASE])):
                flags |= 1 << B_CONSERVATION
                _note(B_CONSERVATION, -1, total_req, 0.0, 0.0, ev_contact, ev_req, ev_allow,
                      ev_ratio)
        cath = 0.0
        anod = 0.0
        for c in range(n):
            if out_amp[c] < 0.0:
                cath -= out_amp[c]
            else:
                anod += out_amp[c]
        if uses_case:
            case = cath - anod
        else:
            target = min(cath, anod)
            if cath > target * (1.0 + 1e-12) or anod > target * (1.0 + 1e-12):
                # a removed contact: scale the larger polarity down to match the smaller
                sc = target / cath if cath > 0.0 else 0.0
                sa = target / anod if anod > 0.0 else 0.0
                for c in range(n):
                    if out_amp[c] < 0.0:
                        out_amp[c] *= sc
                    else:
                        out_amp[c] *= sa
            case = 0.0

    # one common scale factor over every magnitude limit
    s = 1.0
    inc = lim[L_SLEW_UP] * dt_s
    for c in range(n):
        a = abs(out_amp[c])
        if a == 0.0:
            continue
        if _on(disabled, B_CONTACT_CURRENT):
            b = lim[L_CONTACT_MAX]
            if a > b:
                r = b / a
                flags |= 1 << B_CONTACT_CURRENT
                _note(B_CONTACT_CURRENT, c, a, b, r, ev_contact, ev_req, ev_allow, ev_ratio)
                s = min(s, r)
        q = a * pw / 1000.0
        if _on(disabled, B_SHANNON):
            b = caps[0, c]
            if q > b:
                r = b / q
                flags |= 1 << B_SHANNON
                _note(B_SHANNON, c, q, b, r, ev_contact, ev_req, ev_allow, ev_ratio)
                s = min(s, r)
        if _on(disabled, B_CHARGE_DENSITY):
            b = caps[1, c]
            if q > b:
                r = b / q
                flags |= 1 << B_CHARGE_DENSITY
                _note(B_CHARGE_DENSITY, c, q / caps[3, c], b / caps[3, c], r, ev_contact,
                      ev_req, ev_allow, ev_ratio)
                s = min(s, r)
        if _on(disabled, B_CHARGE_ABSOLUTE):
            b = caps[2, c]
            if q > b:
                r = b / q
                flags |= 1 << B_CHARGE_ABSOLUTE
                _note(B_CHARGE_ABSOLUTE, c, q, b, r, ev_contact, ev_req, ev_allow, ev_ratio)
                s = min(s, r)
        if _on(disabled, B_COMPLIANCE):
            zc = z_ohm[c]
            if math.isfinite(zc) and zc > 0.0:
                v = a * zc / 1000.0
                b = lim[L_COMPLIANCE_V]
                if v > b:
                    r = b / v
                    flags |= 1 << B_COMPLIANCE
                    _note(B_COMPLIANCE, c, v, b, r, ev_contact, ev_req, ev_allow, ev_ratio)
                    s = min(s, r)
        if _on(disabled, B_SLEW_UP):
            p = prev_amp[c]
            if p * out_amp[c] > 0.0:
                b = abs(p) + inc
            else:
                b = inc
            if a > b:
                r = b / a
                flags |= 1 << B_SLEW_UP
                _note(B_SLEW_UP, c, a, b, r, ev_contact, ev_req, ev_allow, ev_ratio)
                s = min(s, r)
    if _on(disabled, B_TOTAL_CURRENT):
        cath = 0.0
        for c in range(n):
            if out_amp[c] < 0.0:
                cath -= out_amp[c]
        b = lim[L_TOTAL_MAX]
        if cath > b:
            r = b / cath
            flags |= 1 << B_TOTAL_CURRENT
            _note(B_TOTAL_CURRENT, -1, cath, b, r, ev_contact, ev_req, ev_allow, ev_ratio)
            s = min(s, r)
    if s < 1.0:
        s *= _MARGIN
        for c in range(n):
            out_amp[c] *= s
        case *= s

    # rolling dose budget: committed charge = cathodic charge rate x horizon
    rate = 0.0
    for c in range(n):
        if out_amp[c] < 0.0:
            rate -= out_amp[c]
    rate = rate * pw / 1000.0 * f
    horizon = lim[L_HORIZON_S]
    commit = rate * horizon
    if _on(disabled, B_DOSE) and commit > 0.0:
        used = dose_used_uc(dose_ids, dose_sums, now_ns, bucket_ns, window_ns)
        avail = lim[L_DOSE_BUDGET] - used
        if commit > avail:
            s2 = max(avail, 0.0) / commit * _MARGIN
            flags |= 1 << B_DOSE
            _note(B_DOSE, -1, used + commit, lim[L_DOSE_BUDGET], s2, ev_contact, ev_req,
                  ev_allow, ev_ratio)
            for c in range(n):
                out_amp[c] *= s2
            case *= s2
            commit *= s2

    any_on = case != 0.0
    for c in range(n):
        if out_amp[c] != 0.0:
            any_on = True
            break
    if not any_on:
        _set_off(out_amp, out_s, prev_amp, prev_s)
        return flags
    if commit > 0.0:
        _commit_dose(dose_ids, dose_sums, now_ns, bucket_ns, commit)
    out_s[S_PW] = pw
    out_s[S_F] = f
    out_s[S_IPG] = ipg
    out_s[S_CASE] = case
    out_s[S_PROGRAM] = program_out
    out_s[S_WAVEFORM] = wf
    for c in range(n):
        prev_amp[c] = out_amp[c]
    for i in range(N_S):
        prev_s[i] = out_s[i]
    return flags
