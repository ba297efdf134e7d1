"""The independent safety oracle: does a command satisfy the invariants of SAFETY.md?

:func:`validate` is pure and written straight from the formulas, in plain NumPy/Python. It
shares no code path with the supervisor's clamping (``_kernels.py``): the tests use it to
check every command the supervisor emits, and the firmware simulator uses it as its own
second line of defence (refusing, not clamping).

Checked (invariant numbers of SAFETY.md):

1. Shannon: Q_c <= sqrt(10^k A_c) on every contact (Q_c = |I_c| PW / 1000, uC).
2. Charge density Q_c / A_c <= D_max, and Q_c <= the absolute cap.
3. |I_c| <= per-contact max; summed cathodic current <= total max; PW, f, IPG in range when
   the command is on; every value finite; amplitude of shape (n_contacts,).
4. (2 PW + IPG) f < 1 s.
5. waveform is symmetric biphasic (each pulse balanced by construction).
6. contacts + case sum to zero.
7. (``previous`` and ``dt_s`` given) per contact, the rise of |I_c| is at most
   ``slew_up_ma_per_s * dt_s``; a sign change counts the whole new magnitude as a rise.
8. (``programs`` given) a command that stimulates belongs to a program, has current only on
   its contacts with the right polarity (cathodes <= 0, anodes >= 0), uses the case only if
   the program does, and its total cathodic current is at most the clinician's maximum.
13. (``impedance_ohm`` given) no current on a contact whose impedance is outside the window
   or unknown (NaN); |I_c| Z_c / 1000 <= compliance voltage.
16. (``dose_used_uc`` given) dose_used_uc + cathodic charge rate x horizon <= budget, with
   horizon = ``horizon_s`` (or ``dt_s``).

Tolerances: values may exceed a limit by a relative 1e-9 (plus 1e-12 absolute) to absorb
floating-point rounding; anything more is a violation.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from ..stimulation.command import PROGRAM_OFF, WAVEFORM_BIPHASIC_SYMMETRIC, StimCommand
from ..stimulation.electrodes import ElectrodeArray
from ..stimulation.programs import ProgramSet
from .limits import SafetyLimits

__all__ = ["Violation", "validate", "is_safe"]

_RTOL = 1e-9
_ATOL = 1e-12


@dataclass(frozen=True)
class Violation:
    """One broken invariant.

    Attributes
    ----------
    invariant : int
        Invariant number in SAFETY.md.
    reason : str
        Reason code (same vocabulary as interlock events, :mod:`neuroloop.safety.reasons`).
    contact : int
        Contact index, -1 when not about one contact.
    value : float
        The offending value (unit depends on the reason).
    limit : float
        The limit it broke.
    detail : str
        One line for humans.
    """

    invariant: int
    reason: str
    contact: int
    value: float
    limit: float
    detail: str

    def __str__(self) -> str:
        where = f" on contact {self.contact}" if self.contact >= 0 else ""
        return (f"invariant {self.invariant} ({self.reason}){where}: {self.value:.6g} vs "
                f"limit {self.limit:.6g}; {self.detail}")


def _above(value: float, limit: float) -> bool:
    return value > limit * (1.0 + _RTOL) + _ATOL


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


def validate(command: StimCommand, limits: SafetyLimits, array: ElectrodeArray, *,
             previous: StimCommand | None = None, dt_s: float | None = None,
             impedance_ohm: np.ndarray | None = None, programs: ProgramSet | None = None,
             dose_used_uc: float | None = None, horizon_s: float | None = None,
             blanking_left_s: float | None = None, burst_on_s: float | None = None,
             day_on_s: float | None = None) -> list[Violation]:
    """Every invariant ``command`` breaks (empty list: safe).

    Parameters
    ----------
    command : StimCommand
        The command to check (as emitted by the supervisor or received by a stimulator).
    limits : SafetyLimits
    array : ElectrodeArray
        Contact areas (a smaller ``limits.contact_area_cm2`` replaces them, a larger one never).
    previous : StimCommand, optional
        The command delivered before it (slew check; needs ``dt_s``).
    dt_s : float, optional
        Time between ``previous`` and ``command``, s.
    impedance_ohm : ndarray, shape (n_contacts,), optional
        Last measured impedances, ohm (NaN: unknown, treated as outside the window).
    programs : ProgramSet, optional
        Clinician programs (envelope and contact pattern check).
    dose_used_uc : float, optional
        Charge already committed in the rolling window, uC (dose check).
    horizon_s : float, optional
        How long ``command`` commits charge for, s (default ``dt_s``).
    blanking_left_s : float, optional
        Time left of the blanking period after the last fall of the summed cathodic
        current, s (> 0: no rise above ``previous`` allowed; needs ``previous``).
    burst_on_s : float, optional
        Uninterrupted on-time delivered just before ``command``, s (burst check: with the
        horizon it must stay within ``burst_max_s``).
    day_on_s : float, optional
        On-time delivered in the rolling 24 h before ``command``, s (daily check against
        ``daily_on_max_s``).

    Returns
    -------
    list of Violation
    """
    out: list[Violation] = []
    n = array.n_contacts

    def bad(inv: int, reason: str, contact: int, value: float, limit: float,
            detail: str) -> None:
        out.append(Violation(inv, reason, int(contact), float(value), float(limit), detail))

    # --- invariant 3: shape and finiteness first; nothing else is meaningful without them
    amp_obj = getattr(command, "amplitude_ma", None)
    if not isinstance(amp_obj, np.ndarray) or amp_obj.shape != (n,):
        bad(3, "bad_request", -1, math.nan, math.nan,
            f"amplitude_ma must be an array of shape ({n},)")
        return out
    if amp_obj.dtype.kind not in "fiu":
        bad(3, "bad_request", -1, math.nan, math.nan, "amplitude_ma must be numeric")
        return out
    amp = [float(a) for a in amp_obj]
    scalars = {name: getattr(command, name, None)
               for name in ("pulse_width_us", "frequency_hz", "interphase_gap_us", "case_ma")}
    finite = True
    for c, a in enumerate(amp):
        if not math.isfinite(a):
            bad(3, "nonfinite", c, a, math.nan, "non-finite contact current")
            finite = False
    for name, v in scalars.items():
        if not _finite(v):
            bad(3, "nonfinite", -1, math.nan, math.nan, f"{name} is not finite")
            finite = False
    if not finite:
        return out
    pw = float(command.pulse_width_us)
    f = float(command.frequency_hz)
    ipg = float(command.interphase_gap_us)
    case = float(command.case_ma)
    # Geometry is hardware: the catalogue's area, or a smaller stated one (never larger).
    areas = [float(a) for a in array.area_cm2]
    if limits.contact_area_cm2 is not None:
        areas = [min(a, float(limits.contact_area_cm2)) for a in areas]

    # --- invariant 5: only symmetric biphasic pulses
    wf = getattr(command, "waveform", None)
    if not (_finite(wf) and float(wf) == WAVEFORM_BIPHASIC_SYMMETRIC):  # type: ignore[arg-type]
        bad(5, "charge_balance", -1, float(wf) if _finite(wf) else math.nan,  # type: ignore[arg-type]
            WAVEFORM_BIPHASIC_SYMMETRIC,
            "only the charge-balanced symmetric biphasic waveform is allowed")

    # --- invariant 6: each phase sums to zero (contacts + case)
    total = sum(amp) + case
    scale = max([abs(a) for a in amp] + [abs(case), 1.0])
    if abs(total) > 1e-9 * scale:
        bad(6, "conservation", -1, total, 0.0, "contact currents plus case do not sum to zero")

    is_on = any(a != 0.0 for a in amp) or case != 0.0
    cathodic = sum(-a for a in amp if a < 0.0)

    if is_on:
        # --- invariant 3: parameter ranges
        if pw < limits.pulse_width_min_us or _above(pw, limits.pulse_width_max_us):
            bad(3, "pulse_width", -1, pw, limits.pulse_width_max_us if pw > 0 else
                limits.pulse_width_min_us,
                f"pulse width outside [{limits.pulse_width_min_us:g}, "
                f"{limits.pulse_width_max_us:g}] us")
        if f < limits.frequency_min_hz or _above(f, limits.frequency_max_hz):
            bad(3, "frequency", -1, f, limits.frequency_max_hz if f > limits.frequency_max_hz
                else limits.frequency_min_hz,
                f"frequency outside [{limits.frequency_min_hz:g}, {limits.frequency_max_hz:g}] Hz")
        if ipg < limits.interphase_gap_min_us or _above(ipg, limits.interphase_gap_max_us):
            bad(3, "interphase_gap", -1, ipg, limits.interphase_gap_max_us,
                f"interphase gap outside [{limits.interphase_gap_min_us:g}, "
                f"{limits.interphase_gap_max_us:g}] us")
        # --- invariant 4: pulses never overlap
        period_use_us = (2.0 * pw + ipg) * f
        if not period_use_us < 1e6:
            bad(4, "pulse_feasibility", -1, period_use_us / 1e6, 1.0,
                "(2 PW + IPG) x f must stay below 1 s")
        # --- invariant 3: currents
        if _above(cathodic, limits.total_current_max_ma):
            bad(3, "total_current", -1, cathodic, limits.total_current_max_ma,
                "summed cathodic current above the total maximum")

    for c, a in enumerate(amp):
        if a == 0.0:
            continue
        mag = abs(a)
        if _above(mag, limits.contact_current_max_ma):
            bad(3, "contact_current", c, mag, limits.contact_current_max_ma,
                "contact current above the per-contact maximum")
        q_uc = mag * pw / 1000.0
        # --- invariant 1: Shannon
        q_shannon = math.sqrt(10.0 ** limits.shannon_k * areas[c])
        if _above(q_uc, q_shannon):
            bad(1, "shannon", c, q_uc, q_shannon,
                f"charge per phase above sqrt(10^{limits.shannon_k:g} x {areas[c]:g} cm^2)")
        # --- invariant 2: density and absolute cap
        d = q_uc / areas[c]
        if _above(d, limits.charge_density_max_uc_per_cm2):
            bad(2, "charge_density", c, d, limits.charge_density_max_uc_per_cm2,
                "charge density per phase above the maximum")
        if _above(q_uc, limits.charge_per_phase_max_uc):
            bad(2, "charge_absolute", c, q_uc, limits.charge_per_phase_max_uc,
                "charge per phase above the absolute cap")

    # --- invariant 7: slew limit on increases
    if previous is not None and dt_s is not None:
        prev_amp = getattr(previous, "amplitude_ma", None)
        if isinstance(prev_amp, np.ndarray) and prev_amp.shape == (n,):
            step_ma = limits.slew_up_ma_per_s * max(float(dt_s), 0.0)
            for c, a in enumerate(amp):
                p = float(prev_amp[c])
                if not math.isfinite(p):
                    p = 0.0
                rise = abs(a) - abs(p) if (p * a > 0.0) else abs(a)
                if _above(rise, step_ma):
                    bad(7, "slew_up", c, rise, step_ma,
                        f"|I| rose by {rise:.6g} mA in {dt_s:.6g} s")

    # --- invariant 19: ramp rate and blanking of the summed cathodic current
    if previous is not None:
        prev_amp = getattr(previous, "amplitude_ma", None)
        if isinstance(prev_amp, np.ndarray) and prev_amp.shape == (n,):
            prev_cath = sum(-float(p) for p in prev_amp if math.isfinite(p) and p < 0.0)
            rise = cathodic - prev_cath
            if dt_s is not None:
                step_ma = limits.ramp_up_max_ma_per_s * max(float(dt_s), 0.0)
                if _above(rise, step_ma):
                    bad(19, "ramp_rate", -1, rise, step_ma,
                        f"summed cathodic current rose by {rise:.6g} mA in {dt_s:.6g} s")
            if blanking_left_s is not None and blanking_left_s > 0.0 and _above(rise, 0.0):
                bad(19, "blanking", -1, rise, 0.0,
                    f"summed cathodic current rose {blanking_left_s:.6g} s before the "
                    "blanking period after its last fall ended")

    # --- invariant 8: clinician envelope and program pattern
    if programs is not None and is_on:
        pid_obj = getattr(command, "program_id", None)
        try:
            pid = operator.index(pid_obj)  # type: ignore[arg-type]
        except TypeError:
            pid = PROGRAM_OFF
        prog = programs.get(pid) if pid != PROGRAM_OFF else None
        if prog is None:
            bad(8, "unknown_program", -1, float(pid), math.nan,
                "current flows but the command belongs to no program")
        else:
            if _above(cathodic, prog.amplitude_max_ma):
                bad(8, "envelope", -1, cathodic, prog.amplitude_max_ma,
                    f"program {prog.name!r} above the clinician's maximum")
            for c, a in enumerate(amp):
                cath_c = float(prog.cathode_fraction[c]) > 0.0
                an_c = float(prog.anode_fraction[c]) > 0.0
                if (a < 0.0 and not cath_c) or (a > 0.0 and not an_c):
                    bad(8, "program_pattern", c, a, 0.0,
                        f"current on a contact that is not a "
                        f"{'cathode' if a < 0 else 'anode'} of program {prog.name!r}")
            if case != 0.0 and not prog.uses_case:
                bad(8, "program_pattern", -1, case, 0.0,
                    f"case current but program {prog.name!r} does not use the case")

    # --- invariant 13: impedance window and compliance voltage
    if impedance_ohm is not None:
        z = np.asarray(impedance_ohm, dtype=np.float64)
        if z.shape == (n,):
            for c, a in enumerate(amp):
                if a == 0.0:
                    continue
                zc = float(z[c])
                if not (limits.impedance_min_ohm <= zc <= limits.impedance_max_ohm):
                    bad(13, "impedance", c, zc, limits.impedance_max_ohm if zc > 0 else
                        limits.impedance_min_ohm,
                        "current on a contact whose impedance is outside the window")
                    continue
                v = abs(a) * zc / 1000.0
                if _above(v, limits.compliance_voltage_v):
                    bad(13, "compliance", c, v, limits.compliance_voltage_v,
                        "|I| x Z above the compliance voltage")

    # --- invariant 16: dose budget
    horizon = horizon_s if horizon_s is not None else dt_s
    if dose_used_uc is not None and horizon is not None and is_on:
        rate = cathodic * pw / 1000.0 * f
        total_dose = float(dose_used_uc) + rate * float(horizon)
        if _above(total_dose, limits.dose_budget_uc) and rate > 0.0:
            bad(16, "dose", -1, total_dose, limits.dose_budget_uc,
                f"charge in the {limits.dose_window_s:g} s window would exceed the budget")

    # --- invariant 20: burst length and rolling daily on-time
    if horizon is not None and is_on:
        if burst_on_s is not None:
            total_on = float(burst_on_s) + float(horizon)
            if _above(total_on, limits.burst_max_s):
                bad(20, "burst", -1, total_on, limits.burst_max_s,
                    "uninterrupted stimulation would last longer than burst_max_s")
        if day_on_s is not None:
            total_day = float(day_on_s) + float(horizon)
            if _above(total_day, limits.daily_on_max_s):
                bad(20, "daily_on", -1, total_day, limits.daily_on_max_s,
                    "on-time in the rolling 24 h would pass daily_on_max_s")
    return out


def is_safe(command: StimCommand, limits: SafetyLimits, array: ElectrodeArray,
            **kwargs: object) -> bool:
    """True when :func:`validate` finds no violation."""
    return not validate(command, limits, array, **kwargs)  # type: ignore[arg-type]
