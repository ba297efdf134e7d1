"""Compiled per-cycle clamping of the safety supervisor (private).

One kernel, :func:`supervise`, turns a request into a safe command in place. It only ever
*reduces* what was requested (except the clinician's minimum, which it raises to), in this
order, so that every invariant holds at once. Each step is one compiled stage:

1. non-finite request -> zero; unknown program -> zero (:func:`_reject_nonfinite`,
   :func:`_project_on_program`);
2. project the request onto its program's contact pattern and take the program's pulse
   width, frequency and gap (the decoder only modulates amplitude), and clamp the program
   amplitude into the clinician's [min, max] (:func:`_project_on_program`,
   :func:`_clamp_envelope`);
3. waveform forced to symmetric biphasic (charge balance by construction)
   (:func:`_force_biphasic`);
4. pulse width, frequency and interphase gap clamped into their ranges, then frequency (and if
   needed pulse width) lowered until (2 PW + IPG) f < 1 s (:func:`_clamp_pulse`);
5. contacts outside the impedance window zeroed (:func:`_block_impedance`), then
   cathodes/anodes rebalanced (or the case current recomputed) so that every phase sums to
   zero (:func:`_conserve_current`);
6. one common scale factor, the smallest over: per-contact current, Shannon, charge density,
   absolute charge, compliance voltage, slew-up (per contact), total cathodic current. A
   common factor keeps the program's shape, hence conservation (:func:`_limit_magnitude`);
7. the rolling dose budget (another common factor) (:func:`_limit_dose`);
8. an all-zero result becomes a clean "off" command (:func:`_emit`).

In ramp mode (the supervisor's fallback ramp) steps 1-4 are replaced by
:func:`_ramp_down`, which scales the previous output toward zero; steps 5-8 run as above.

The kernel shares no code with :mod:`neuroloop.safety.validate`, which checks the result
independently from the formulas.

Array layouts (all preallocated by the supervisor, float64 unless noted); every column has
a named index below and nothing indexes these arrays with a bare number:

``req_s``     (N_REQ,)  ``R_*``: pulse width us, frequency Hz, gap us, case mA, waveform code,
              mode (``MODE_*``), ramp factor, dt s
``prev_s`` / ``out_s``  (N_S,) ``S_*``: pulse width us, frequency Hz, gap us, case mA,
              program id, waveform code
``prog_sf``   (n_rows, n) signed contact fraction of each program (anode +, cathode -)
``prog_info`` (n_rows, N_PROG) ``P_*``: has program, uses case, amplitude min/max mA, pulse
              width us, frequency Hz, gap us
``caps``      (N_CAP, n) ``C_*``: Shannon Q_max uC, density Q_max uC, absolute Q_max uC,
              area cm^2
``lim``       (N_LIM,) ``L_*``
``iparams``   int64 (N_I,) ``I_*``: program row, program id, now ns, dose bucket width ns,
              dose window ns, disabled-interlock mask
``ev``        (N_EV, N_BITS) ``EV_*``: worst occurrence of each reason: contact (-1: none),
              requested, allowed, allowed/requested ratio
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit
from . import reasons as _R

# lim columns: (N_LIM,) float64, the scalar limits
L_CONTACT_MAX = 0     # per-contact current max, mA
L_TOTAL_MAX = 1       # summed cathodic current max, mA
L_PW_MIN = 2          # phase width range, us
L_PW_MAX = 3
L_F_MIN = 4           # pulse rate range, Hz
L_F_MAX = 5
L_IPG_MIN = 6         # interphase gap range, us
L_IPG_MAX = 7
L_SLEW_UP = 8         # rise rate per contact, mA/s
L_COMPLIANCE_V = 9    # compliance voltage, V
L_DOSE_BUDGET = 10    # charge budget of the rolling window, uC
L_HORIZON_S = 11      # how long one command commits dose (the cycle period), s
L_SLEW_DOWN = 12      # minimum fall rate of the fallback ramp, mA/s
N_LIM = 13

# req_s columns: (N_REQ,) float64, the request's scalars and the cycle's mode
R_PW = 0              # phase width, us
R_F = 1               # pulse rate, Hz
R_IPG = 2             # interphase gap, us
R_CASE = 3            # case (return) current, mA
R_WAVEFORM = 4        # waveform code (0: symmetric biphasic)
R_MODE = 5            # MODE_REQUEST or MODE_RAMP
R_RAMP = 6            # ramp-mode factor on the previous output, 0..1
R_DT = 7              # time since the previous step (at most one period), s
N_REQ = 8
N_REQ_PULSE = R_WAVEFORM + 1  # req_s[:N_REQ_PULSE] are the request's own scalars

# prev_s / out_s columns: (N_S,) float64, a command's scalars
S_PW = 0              # phase width, us
S_F = 1               # pulse rate, Hz
S_IPG = 2             # interphase gap, us
S_CASE = 3            # case current, mA
S_PROGRAM = 4         # program id (PROGRAM_OFF when off)
S_WAVEFORM = 5        # waveform code
N_S = 6

# prog_info columns: (n_rows, N_PROG) float64, one row per program id (row = id)
P_HAS_PROGRAM = 0     # 1.0 when a program has this id
P_USES_CASE = 1       # 1.0 when the program returns current through the case
P_AMP_MIN = 2         # clinician envelope, program amplitude (summed cathodic), mA
P_AMP_MAX = 3
P_PW = 4              # the program's phase width, us
P_F = 5               # the program's pulse rate, Hz
P_IPG = 6             # the program's interphase gap, us
N_PROG = 7

# caps rows: (N_CAP, n) float64, per-contact charge limits
C_SHANNON = 0         # sqrt(10^k A_c), uC per phase
C_DENSITY = 1         # D_max A_c, uC per phase
C_ABSOLUTE = 2        # absolute charge cap, uC per phase
C_AREA = 3            # A_c, cm^2
N_CAP = 4

# iparams columns: (N_I,) int64
I_ROW = 0             # program row of the request (-1: none)
I_PROGRAM = 1         # program id of the request
I_NOW = 2             # supervisor clock, ns
I_BUCKET_NS = 3       # dose-ledger bucket width, ns
I_WINDOW_NS = 4       # dose window, ns
I_DISABLED = 5        # bit mask of the interlocks switched off (test-only; 0 in real use)
N_I = 6

# ev rows: (N_EV, N_BITS) float64, the worst occurrence of each reason in this cycle
EV_CONTACT = 0        # contact index (-1: not about one contact), stored as a float
EV_REQ = 1            # requested value (unit: reasons.UNIT)
EV_ALLOW = 2          # allowed value
EV_RATIO = 3          # allowed / requested (the smallest is the worst; inf: not acted)
N_EV = 4

MODE_REQUEST = 0.0
MODE_RAMP = 1.0

# Reason bits. reasons.TABLE is the reference; these are literals because Numba freezes
# globals into its on-disk cache, which only notices edits to this file. The import-time
# check below (and tests/safety/test_reasons.py) keep the two equal.
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

#: Reason name of each kernel bit (checked against reasons.BIT at import).
BIT_NAMES: dict[str, int] = {
    _R.NONFINITE: B_NONFINITE, _R.UNKNOWN_PROGRAM: B_UNKNOWN_PROGRAM,
    _R.PROGRAM_PATTERN: B_PROGRAM_PATTERN, _R.ENVELOPE: B_ENVELOPE,
    _R.PULSE_WIDTH: B_PULSE_WIDTH, _R.FREQUENCY: B_FREQUENCY,
    _R.INTERPHASE_GAP: B_INTERPHASE_GAP, _R.PULSE_FEASIBILITY: B_PULSE_FEASIBILITY,
    _R.SHANNON: B_SHANNON, _R.CHARGE_DENSITY: B_CHARGE_DENSITY,
    _R.CHARGE_ABSOLUTE: B_CHARGE_ABSOLUTE, _R.CONTACT_CURRENT: B_CONTACT_CURRENT,
    _R.TOTAL_CURRENT: B_TOTAL_CURRENT, _R.IMPEDANCE: B_IMPEDANCE,
    _R.COMPLIANCE: B_COMPLIANCE, _R.CONSERVATION: B_CONSERVATION,
    _R.CHARGE_BALANCE: B_CHARGE_BALANCE, _R.SLEW_UP: B_SLEW_UP, _R.DOSE: B_DOSE,
}
if BIT_NAMES != _R.BIT or len(_R.KERNEL_REASONS) != N_BITS:  # pragma: no cover
    raise ImportError("neuroloop.safety._kernels: the B_* bits disagree with reasons.TABLE; "
                      "edit both together")

#: Safety margin on every scale factor, so that rounding never lands above a limit.
_MARGIN = 1.0 - 1e-12
_PROGRAM_OFF = -1.0


# ----------------------------------------------------------------------------- small helpers
@jit
def _on(disabled, bit):
    """True when interlock ``bit`` is not switched off in the mask ``disabled`` (int64)."""
    return ((disabled >> bit) & 1) == 0


@jit
def _note(ev, bit, contact, requested, allowed, ratio):
    """Keep the worst (smallest allowed/requested ratio) occurrence of reason ``bit`` in
    ``ev`` (N_EV, N_BITS)."""
    if ratio < ev[EV_RATIO, bit]:
        ev[EV_RATIO, bit] = ratio
        ev[EV_CONTACT, bit] = contact
        ev[EV_REQ, bit] = requested
        ev[EV_ALLOW, bit] = allowed


@jit
def _clear_events(ev):
    """Reset ``ev`` (N_EV, N_BITS): no reason has acted yet (ratio inf, contact -1, NaN)."""
    for b in range(ev.shape[1]):
        ev[EV_RATIO, b] = np.inf
        ev[EV_CONTACT, b] = -1.0
        ev[EV_REQ, b] = np.nan
        ev[EV_ALLOW, b] = np.nan


@jit
def _clamp_range(bit, value, lo, hi, ev):
    """Clamp a pulse parameter into [lo, hi]; returns (value, flag bits) and notes a clamp."""
    if not (value < lo or value > hi):
        return value, 0
    new = min(max(value, lo), hi)
    _note(ev, bit, -1, value, new, 0.0)
    return new, 1 << bit


@jit
def _set_off(out_amp, out_s, prev_amp, prev_s):
    """Write the clean off command into ``out_*`` and make it the next slew reference."""
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
    """True when every amplitude and the request's own scalars (``req_s[:N_REQ_PULSE]``) are
    finite."""
    for c in range(req_amp.shape[0]):
        if not math.isfinite(req_amp[c]):
            return False
    for i in range(N_REQ_PULSE):
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
    """Add ``charge_uc`` to the ledger bucket of ``now_ns`` (recycling a stale slot)."""
    k = now_ns // bucket_ns
    slot = k % dose_ids.shape[0]
    if dose_ids[slot] != k:
        dose_ids[slot] = k
        dose_sums[slot] = 0.0
    dose_sums[slot] += charge_uc


# ----------------------------------------------------------------------------- the stages
@jit
def _reject_nonfinite(req_amp, req_s, disabled, ev):
    """Step 1a, invariant 3: a request with NaN or infinity anywhere is refused.

    Parameters
    ----------
    req_amp : ndarray, (n,) float64
        Requested contact currents, mA.
    req_s : ndarray, (N_REQ,) float64
        Request scalars; ``R_PW``, ``R_F``, ``R_IPG``, ``R_CASE``, ``R_WAVEFORM`` are checked.
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason (written for ``B_NONFINITE``: the first bad contact).

    Returns
    -------
    flags : int
        ``1 << B_NONFINITE`` when the request must become the off command, else 0.
    """
    finite = (math.isfinite(req_s[R_PW]) and math.isfinite(req_s[R_F])
              and math.isfinite(req_s[R_IPG]) and math.isfinite(req_s[R_CASE])
              and math.isfinite(req_s[R_WAVEFORM]))
    bad_c = -1
    for c in range(req_amp.shape[0]):
        if not math.isfinite(req_amp[c]):
            finite = False
            bad_c = c
            break
    if not finite and _on(disabled, B_NONFINITE):
        _note(ev, B_NONFINITE, bad_c, np.nan, 0.0, 0.0)
        return 1 << B_NONFINITE
    return 0


@jit
def _clamp_envelope(a_req, lo, hi, disabled, ev):
    """Step 2a, invariant 8: the program amplitude inside the clinician's envelope.

    Parameters
    ----------
    a_req : float
        Requested program amplitude (summed cathodic current), mA (>= 0).
    lo, hi : float
        The program's clinician [min, max], mA.
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    amplitude_ma, flags : float, int
        ``a_req`` clamped into [lo, hi]; ``1 << B_ENVELOPE`` when it was moved.
    """
    if not _on(disabled, B_ENVELOPE):
        return a_req, 0
    if a_req > hi:
        _note(ev, B_ENVELOPE, -1, a_req, hi, hi / a_req)
        return hi, 1 << B_ENVELOPE
    if a_req < lo:
        _note(ev, B_ENVELOPE, -1, a_req, lo, 1.0)
        return lo, 1 << B_ENVELOPE
    return a_req, 0


@jit
def _project_on_program(req_amp, req_s, prog_sf, prog_info, row, program_id, disabled,
                        out_amp, ev):
    """Steps 1b-2, invariant 8 (and 6): the request becomes its program at a clamped amplitude.

    A non-zero request for a program that does not exist is refused (``B_UNKNOWN_PROGRAM``);
    a request with nothing cathodic on a program is rest. Otherwise the program amplitude
    (summed cathodic current of the request) is clamped into the clinician's [min, max]
    (``B_ENVELOPE``), and the output is that amplitude times the program's signed contact
    fractions, with the program's pulse width, frequency and gap; a request off that pattern
    raises ``B_PROGRAM_PATTERN``.

    Parameters
    ----------
    req_amp : ndarray, (n,) float64
        Requested contact currents, mA (cathodes negative).
    req_s : ndarray, (N_REQ,) float64
        Request scalars (``R_PW`` us, ``R_F`` Hz, ``R_IPG`` us, ``R_CASE`` mA).
    prog_sf : ndarray, (n_rows, n) float64
        Signed contact fraction of each program row.
    prog_info : ndarray, (n_rows, N_PROG) float64
        Program rows (``P_*``).
    row : int
        Program row of the request (-1: no such program).
    program_id : float
        Program id of the request (for the event).
    disabled : int
        Disabled-interlock mask.
    out_amp : ndarray, (n,) float64
        Output: the projected contact currents, mA (written when ``go``).
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    go, flags, pw_us, f_hz, ipg_us, case_ma, uses_case : bool, int, float, float, float, float, bool
        ``go`` False: the output is the off command. Pulse parameters are the program's
        (the request's when the program pattern is not enforced).
    """
    n = out_amp.shape[0]
    flags = 0
    pw = req_s[R_PW]
    f = req_s[R_F]
    ipg = req_s[R_IPG]
    case = req_s[R_CASE]
    a_req = 0.0
    any_nonzero = case != 0.0
    for c in range(n):
        if req_amp[c] < 0.0:
            a_req -= req_amp[c]
        if req_amp[c] != 0.0:
            any_nonzero = True
    has_program = 0 <= row < prog_info.shape[0] and prog_info[row, P_HAS_PROGRAM] > 0.0
    enforce_program = True
    if not has_program:
        if any_nonzero and _on(disabled, B_UNKNOWN_PROGRAM):
            _note(ev, B_UNKNOWN_PROGRAM, -1, program_id, np.nan, 0.0)
            return False, 1 << B_UNKNOWN_PROGRAM, pw, f, ipg, case, True
        enforce_program = False
    if not any_nonzero or (enforce_program and a_req <= 0.0
                           and _on(disabled, B_PROGRAM_PATTERN)):
        # rest: nothing requested (or nothing cathodic on a program)
        return False, flags, pw, f, ipg, case, True
    if not enforce_program:
        for c in range(n):
            out_amp[c] = req_amp[c]
        return True, flags, pw, f, ipg, case, True
    uses_case = prog_info[row, P_USES_CASE] > 0.0
    a_t, flags = _clamp_envelope(a_req, prog_info[row, P_AMP_MIN], prog_info[row, P_AMP_MAX],
                                 disabled, ev)
    if _on(disabled, B_PROGRAM_PATTERN):
        ppw = prog_info[row, P_PW]
        pf = prog_info[row, P_F]
        pipg = prog_info[row, P_IPG]
        if (abs(pw - ppw) > 1e-9 * (1.0 + ppw) or abs(f - pf) > 1e-9 * (1.0 + pf)
                or abs(ipg - pipg) > 1e-9 * (1.0 + pipg)):
            flags |= 1 << B_PROGRAM_PATTERN
            _note(ev, B_PROGRAM_PATTERN, -1, pw, ppw, 1.0)
        pw = ppw
        f = pf
        ipg = pipg
        tol = 1e-6 * (1.0 + a_req)
        for c in range(n):
            expect = a_req * prog_sf[row, c]
            if abs(req_amp[c] - expect) > tol:
                flags |= 1 << B_PROGRAM_PATTERN
                _note(ev, B_PROGRAM_PATTERN, c, req_amp[c], a_t * prog_sf[row, c], 1.0)
            out_amp[c] = a_t * prog_sf[row, c]
    else:
        s = a_t / a_req if a_req > 0.0 else 1.0
        for c in range(n):
            out_amp[c] = req_amp[c] * s
        case = case * s
    return True, flags, pw, f, ipg, case, uses_case


@jit
def _force_biphasic(wf, disabled, ev):
    """Step 3, invariant 5: every pulse is symmetric biphasic (charge balanced).

    Parameters
    ----------
    wf : float
        Requested waveform code (0: symmetric biphasic).
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    wf, flags : float, int
        The waveform code to emit and ``1 << B_CHARGE_BALANCE`` when it was changed.
    """
    if wf != 0.0 and _on(disabled, B_CHARGE_BALANCE):
        _note(ev, B_CHARGE_BALANCE, -1, wf, 0.0, 0.0)
        return 0.0, 1 << B_CHARGE_BALANCE
    return wf, 0


@jit
def _clamp_pulse(pw, f, ipg, lim, disabled, ev):
    """Step 4, invariants 3 and 4: pulse parameters in range and pulses that never overlap.

    Pulse width, frequency and gap are clamped into [``L_*_MIN``, ``L_*_MAX``]; then, if
    (2 PW + IPG) f >= 1 s, the frequency is lowered just below 1 / (2 PW + IPG), and if that
    is under the minimum frequency, the frequency stays at its minimum and the phases are
    shortened instead.

    Parameters
    ----------
    pw, f, ipg : float
        Phase width (us), pulse rate (Hz), interphase gap (us).
    lim : ndarray, (N_LIM,) float64
        Scalar limits (``L_*``).
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    go, flags, pw_us, f_hz, ipg_us : bool, int, float, float, float
        ``go`` False: no feasible pulse exists within the limits; the output is off.
    """
    flags = 0
    if _on(disabled, B_PULSE_WIDTH):
        pw, hit = _clamp_range(B_PULSE_WIDTH, pw, lim[L_PW_MIN], lim[L_PW_MAX], ev)
        flags |= hit
    if _on(disabled, B_FREQUENCY):
        f, hit = _clamp_range(B_FREQUENCY, f, lim[L_F_MIN], lim[L_F_MAX], ev)
        flags |= hit
    if _on(disabled, B_INTERPHASE_GAP):
        ipg, hit = _clamp_range(B_INTERPHASE_GAP, ipg, lim[L_IPG_MIN], lim[L_IPG_MAX], ev)
        flags |= hit
    if _on(disabled, B_PULSE_FEASIBILITY) and (2.0 * pw + ipg) * f >= 1e6:
        flags |= 1 << B_PULSE_FEASIBILITY
        f_new = 1e6 / (2.0 * pw + ipg) * (1.0 - 1e-9)
        _note(ev, B_PULSE_FEASIBILITY, -1, f, f_new, 0.0)
        if f_new < lim[L_F_MIN] and _on(disabled, B_FREQUENCY):
            # keep f in range and shorten the phases instead; give up if impossible
            f_new = lim[L_F_MIN]
            pw = (1e6 / f_new - ipg) * 0.5 * (1.0 - 1e-9)
            if pw < lim[L_PW_MIN] or pw <= 0.0:
                return False, flags, pw, f, ipg
        f = f_new
    return True, flags, pw, f, ipg


@jit
def _ramp_down(ramp, dt_s, prev_amp, prev_s, prog_info, lim, out_amp):
    """Steps 1-4 in ramp mode, invariant 9: the previous output scaled toward zero.

    The factor is ``ramp`` clipped to [0, 1] (NaN: 0), and at most what a fall at the
    slew-down rate ``L_SLEW_DOWN`` from the largest contact current allows. The pulse
    parameters, waveform and program are the previous command's.

    Parameters
    ----------
    ramp : float
        Requested factor on the previous output.
    dt_s : float
        Time since the previous step, s (>= 0).
    prev_amp : ndarray, (n,) float64
        Previous output contact currents, mA.
    prev_s : ndarray, (N_S,) float64
        Previous output scalars (``S_*``).
    prog_info : ndarray, (n_rows, N_PROG) float64
        Program rows (``P_*``): whether the held program returns through the case.
    lim : ndarray, (N_LIM,) float64
        Scalar limits (``L_SLEW_DOWN`` mA/s).
    out_amp : ndarray, (n,) float64
        Output: the ramped contact currents, mA.

    Returns
    -------
    pw_us, f_hz, ipg_us, case_ma, wf, program, uses_case : float, ..., float, bool
    """
    n = out_amp.shape[0]
    factor = ramp
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
    case = prev_s[S_CASE] * factor
    program = prev_s[S_PROGRAM]
    prow = int(program)
    if 0 <= prow < prog_info.shape[0] and prog_info[prow, P_HAS_PROGRAM] > 0.0:
        uses_case = prog_info[prow, P_USES_CASE] > 0.0
    else:
        uses_case = case != 0.0
    return (prev_s[S_PW], prev_s[S_F], prev_s[S_IPG], case, prev_s[S_WAVEFORM], program,
            uses_case)


@jit
def _block_impedance(blocked, out_amp, disabled, ev):
    """Step 5a, invariant 13: a contact outside the impedance window is never driven.

    Parameters
    ----------
    blocked : ndarray, (n,) bool
        Contacts whose last impedance report was outside [Z_min, Z_max] (or NaN).
    out_amp : ndarray, (n,) float64
        Contact currents, mA; zeroed in place on blocked contacts.
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    flags : int
        ``1 << B_IMPEDANCE`` when a contact was zeroed.
    """
    flags = 0
    if _on(disabled, B_IMPEDANCE):
        for c in range(out_amp.shape[0]):
            if blocked[c] and out_amp[c] != 0.0:
                flags |= 1 << B_IMPEDANCE
                _note(ev, B_IMPEDANCE, c, abs(out_amp[c]), 0.0, 0.0)
                out_amp[c] = 0.0
    return flags


@jit
def _conserve_current(out_amp, case, uses_case, req_amp, req_case, check_request, disabled,
                      ev):
    """Step 5b, invariant 6: the contacts plus the case sum to zero in each phase.

    A monopolar program (``uses_case``) gets the case current that balances its contacts; a
    bipolar one has its larger polarity scaled down to the smaller (a removed contact) and no
    case current. A request that did not sum to zero raises ``B_CONSERVATION``.

    Parameters
    ----------
    out_amp : ndarray, (n,) float64
        Contact currents, mA; rescaled in place.
    case : float
        Case current so far, mA.
    uses_case : bool
        The program returns current through the case.
    req_amp : ndarray, (n,) float64
        Requested contact currents, mA (checked only when ``check_request``).
    req_case : float
        Requested case current, mA.
    check_request : bool
        True in request mode (the request itself is checked for conservation).
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    case_ma, flags : float, int
    """
    flags = 0
    if not _on(disabled, B_CONSERVATION):
        return case, flags
    n = out_amp.shape[0]
    if check_request:
        total_req = req_case
        for c in range(n):
            total_req += req_amp[c]
        if abs(total_req) > 1e-6 * (1.0 + abs(req_case)):
            flags |= 1 << B_CONSERVATION
            _note(ev, B_CONSERVATION, -1, total_req, 0.0, 0.0)
    cath = 0.0
    anod = 0.0
    for c in range(n):
        if out_amp[c] < 0.0:
            cath -= out_amp[c]
        else:
            anod += out_amp[c]
    if uses_case:
        return cath - anod, flags
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
    return 0.0, flags


@jit
def _limit_magnitude(out_amp, case, pw, prev_amp, caps, z_ohm, lim, dt_s, disabled, ev):
    """Step 6, invariants 1, 2, 3, 7, 13: one common scale factor over every magnitude limit.

    The factor is the smallest allowed/requested ratio over: per-contact current
    (``L_CONTACT_MAX``), Shannon (``C_SHANNON``), charge density (``C_DENSITY``), absolute
    charge (``C_ABSOLUTE``), compliance voltage (``|I_c| Z_c``, measured contacts only),
    slew-up per contact (``|prev| + L_SLEW_UP dt`` on the same polarity, ``L_SLEW_UP dt``
    after a sign change) and total cathodic current (``L_TOTAL_MAX``). Applied (times a
    margin just below 1) to every contact and the case, it keeps the program's shape and
    hence conservation.

    Parameters
    ----------
    out_amp : ndarray, (n,) float64
        Contact currents, mA; scaled in place.
    case : float
        Case current, mA.
    pw : float
        Phase width, us (charge per phase Q_c = |I_c| pw / 1000, uC).
    prev_amp : ndarray, (n,) float64
        Previous output contact currents, mA (slew reference).
    caps : ndarray, (N_CAP, n) float64
        Per-contact charge caps, uC, and areas, cm^2 (``C_*``).
    z_ohm : ndarray, (n,) float64
        Last impedance per contact, ohm (NaN: not measured).
    lim : ndarray, (N_LIM,) float64
        Scalar limits (``L_*``).
    dt_s : float
        Time since the previous step, s (>= 0).
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    case_ma, flags : float, int
    """
    n = out_amp.shape[0]
    flags = 0
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
                _note(ev, B_CONTACT_CURRENT, c, a, b, r)
                s = min(s, r)
        q = a * pw / 1000.0
        if _on(disabled, B_SHANNON):
            b = caps[C_SHANNON, c]
            if q > b:
                r = b / q
                flags |= 1 << B_SHANNON
                _note(ev, B_SHANNON, c, q, b, r)
                s = min(s, r)
        if _on(disabled, B_CHARGE_DENSITY):
            b = caps[C_DENSITY, c]
            if q > b:
                r = b / q
                flags |= 1 << B_CHARGE_DENSITY
                _note(ev, B_CHARGE_DENSITY, c, q / caps[C_AREA, c], b / caps[C_AREA, c], r)
                s = min(s, r)
        if _on(disabled, B_CHARGE_ABSOLUTE):
            b = caps[C_ABSOLUTE, c]
            if q > b:
                r = b / q
                flags |= 1 << B_CHARGE_ABSOLUTE
                _note(ev, B_CHARGE_ABSOLUTE, c, q, b, r)
                s = min(s, r)
        if _on(disabled, B_COMPLIANCE):
            zc = z_ohm[c]
            if math.isfinite(zc) and zc > 0.0:
                v = a * zc / 1000.0
                b = lim[L_COMPLIANCE_V]
                if v > b:
                    r = b / v
                    flags |= 1 << B_COMPLIANCE
                    _note(ev, B_COMPLIANCE, c, v, b, r)
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
                _note(ev, B_SLEW_UP, c, a, b, r)
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
            _note(ev, B_TOTAL_CURRENT, -1, cath, b, r)
            s = min(s, r)
    if s < 1.0:
        s *= _MARGIN
        for c in range(n):
            out_amp[c] *= s
        case *= s
    return case, flags


@jit
def _limit_dose(out_amp, case, pw, f, lim, dose_ids, dose_sums, now_ns, bucket_ns, window_ns,
                disabled, ev):
    """Step 7, invariant 16: the rolling-window charge budget (a second common factor).

    A command commits its cathodic charge rate times the horizon (``L_HORIZON_S``, one cycle
    period); when that plus what the ledger holds for [now - window, now] would pass
    ``L_DOSE_BUDGET``, every contact and the case are scaled down to what is left.

    Parameters
    ----------
    out_amp : ndarray, (n,) float64
        Contact currents, mA; scaled in place.
    case : float
        Case current, mA.
    pw, f : float
        Phase width (us) and pulse rate (Hz).
    lim : ndarray, (N_LIM,) float64
        Scalar limits (``L_DOSE_BUDGET`` uC, ``L_HORIZON_S`` s).
    dose_ids : ndarray, (n_buckets,) int64
        Bucket index held by each ledger slot.
    dose_sums : ndarray, (n_buckets,) float64
        Charge committed in each slot, uC.
    now_ns, bucket_ns, window_ns : int
        Supervisor clock, bucket width and window length, ns.
    disabled : int
        Disabled-interlock mask.
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence per reason.

    Returns
    -------
    case_ma, commit_uc, flags : float, float, int
        ``commit_uc`` is the charge this command commits (added to the ledger by
        :func:`_emit` when the command is not off).
    """
    n = out_amp.shape[0]
    flags = 0
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
            _note(ev, B_DOSE, -1, used + commit, lim[L_DOSE_BUDGET], s2)
            for c in range(n):
                out_amp[c] *= s2
            case *= s2
            commit *= s2
    return case, commit, flags


@jit
def _emit(out_amp, out_s, prev_amp, prev_s, dose_ids, dose_sums, now_ns, bucket_ns, pw, f,
          ipg, case, program, wf, commit):
    """Step 8: write the command (or the clean off command when nothing flows).

    An all-zero result (every contact and the case) is written as the off command
    (``S_PROGRAM`` = PROGRAM_OFF, zero scalars) and commits nothing; otherwise the dose is
    committed and the command written. Either way it becomes the next cycle's reference.

    Parameters
    ----------
    out_amp : ndarray, (n,) float64
        Final contact currents, mA.
    out_s : ndarray, (N_S,) float64
        Output: command scalars (``S_*``).
    prev_amp, prev_s : ndarray, (n,) and (N_S,) float64
        Output: copies of ``out_amp`` / ``out_s`` (the next cycle's slew reference).
    dose_ids, dose_sums : ndarray, (n_buckets,) int64 and float64
        Dose ledger; ``commit`` uC is added to the bucket of ``now_ns``.
    now_ns, bucket_ns : int
        Supervisor clock and bucket width, ns.
    pw, f, ipg : float
        Phase width (us), pulse rate (Hz), interphase gap (us).
    case : float
        Case current, mA.
    program : float
        Program id.
    wf : float
        Waveform code.
    commit : float
        Charge this command commits, uC.
    """
    n = out_amp.shape[0]
    any_on = case != 0.0
    for c in range(n):
        if out_amp[c] != 0.0:
            any_on = True
            break
    if not any_on:
        _set_off(out_amp, out_s, prev_amp, prev_s)
        return
    if commit > 0.0:
        _commit_dose(dose_ids, dose_sums, now_ns, bucket_ns, commit)
    out_s[S_PW] = pw
    out_s[S_F] = f
    out_s[S_IPG] = ipg
    out_s[S_CASE] = case
    out_s[S_PROGRAM] = program
    out_s[S_WAVEFORM] = wf
    for c in range(n):
        prev_amp[c] = out_amp[c]
    for i in range(N_S):
        prev_s[i] = out_s[i]


# ----------------------------------------------------------------------------- the kernel
@jit
def supervise(req_amp, req_s, prog_sf, prog_info, caps, lim, z_ohm, blocked, prev_amp, prev_s,
              out_amp, out_s, dose_ids, dose_sums, iparams, ev):
    """Write the safe command for ``req_amp``/``req_s`` into ``out_amp``/``out_s``.

    Runs the stages in the documented order (module docstring); allocates nothing.

    Parameters
    ----------
    req_amp : ndarray, (n,) float64
        Requested contact currents, mA (cathodic negative).
    req_s : ndarray, (N_REQ,) float64
        Request scalars, mode, ramp factor and dt (``R_*``).
    prog_sf, prog_info : ndarray, (n_rows, n) and (n_rows, N_PROG) float64
        Program tables (``P_*``).
    caps : ndarray, (N_CAP, n) float64
        Per-contact charge caps, uC, and areas, cm^2 (``C_*``).
    lim : ndarray, (N_LIM,) float64
        Scalar limits (``L_*``).
    z_ohm : ndarray, (n,) float64
        Last impedance per contact, ohm (NaN: not measured).
    blocked : ndarray, (n,) bool
        Contacts that may not be driven.
    prev_amp, prev_s : ndarray, (n,) and (N_S,) float64
        Previous output (slew and ramp reference); updated to the new output.
    out_amp, out_s : ndarray, (n,) and (N_S,) float64
        Output: the safe command (``S_*``).
    dose_ids, dose_sums : ndarray, (n_buckets,) int64 and float64
        Dose ledger (bucket index, uC); the committed dose is added.
    iparams : ndarray, (N_I,) int64
        Program row and id, clock, dose bucket and window (ns), disabled mask (``I_*``).
    ev : ndarray, (N_EV, N_BITS) float64
        Output: for each reason bit that acted, its worst occurrence (``EV_*``).

    Returns
    -------
    flags : int
        Bit mask of the interlocks that acted (``B_*``).
    """
    disabled = iparams[I_DISABLED]
    _clear_events(ev)
    dt_s = req_s[R_DT]
    if not (dt_s >= 0.0):
        dt_s = 0.0
    is_request = req_s[R_MODE] == MODE_REQUEST
    if is_request:
        flags = _reject_nonfinite(req_amp, req_s, disabled, ev)
        if flags:
            _set_off(out_amp, out_s, prev_amp, prev_s)
            return flags
        program = float(iparams[I_PROGRAM])
        go, flags, pw, f, ipg, case, uses_case = _project_on_program(
            req_amp, req_s, prog_sf, prog_info, iparams[I_ROW], program, disabled, out_amp, ev)
        if not go:
            _set_off(out_amp, out_s, prev_amp, prev_s)
            return flags
        wf, hit = _force_biphasic(req_s[R_WAVEFORM], disabled, ev)
        flags |= hit
        go, hit, pw, f, ipg = _clamp_pulse(pw, f, ipg, lim, disabled, ev)
        flags |= hit
        if not go:
            _set_off(out_amp, out_s, prev_amp, prev_s)
            return flags
    else:
        flags = 0
        pw, f, ipg, case, wf, program, uses_case = _ramp_down(
            req_s[R_RAMP], dt_s, prev_amp, prev_s, prog_info, lim, out_amp)
    flags |= _block_impedance(blocked, out_amp, disabled, ev)
    case, hit = _conserve_current(out_amp, case, uses_case, req_amp, req_s[R_CASE], is_request,
                                  disabled, ev)
    flags |= hit
    case, hit = _limit_magnitude(out_amp, case, pw, prev_amp, caps, z_ohm, lim, dt_s, disabled,
                                 ev)
    flags |= hit
    now_ns = iparams[I_NOW]
    bucket_ns = iparams[I_BUCKET_NS]
    case, commit, hit = _limit_dose(out_amp, case, pw, f, lim, dose_ids, dose_sums, now_ns,
                                    bucket_ns, iparams[I_WINDOW_NS], disabled, ev)
    flags |= hit
    _emit(out_amp, out_s, prev_amp, prev_s, dose_ids, dose_sums, now_ns, bucket_ns, pw, f, ipg,
          case, program, wf, commit)
    return flags
