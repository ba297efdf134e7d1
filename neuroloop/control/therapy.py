"""What a policy asked for over a run: time stimulating, energy (TEED) and ramps.

Every policy that reports therapy figures (:meth:`~neuroloop.control.ControlPolicy.metrics`)
measures them the same way with a :class:`TherapyMeter`, so that an adaptive policy and the
continuous counterfactual of the same run (``--compare-continuous``) are compared on equal
terms.

TEED, the total electrical energy delivered (Koss et al., *Ann Neurol* 2005), for a
current-controlled biphasic pulse train is ``I^2 * R * f * PW`` per second (one phase per
pulse counted, as Koss's ``V^2 * f * PW / R``); ``R`` is a nominal load of 1000 ohm, the
impedance Koss used (a device's measured impedance changes the absolute value, not a ratio
between two policies on the same lead).
"""

from __future__ import annotations

__all__ = ["TherapyMeter", "NOMINAL_LOAD_OHM"]

#: Nominal electrode load for TEED, ohm (Koss et al. 2005).
NOMINAL_LOAD_OHM = 1000.0

_NS = 1e-9


class TherapyMeter:
    """Integrates a policy's requested amplitude over the run's time (no allocation per step).

    Call :meth:`step` once per policy step with the time and what was requested; the
    interval since the previous step is charged to the previous request (a request holds
    until the next one). Intervals longer than ``max_gap_s`` (a stalled source) are cut to it.
    """

    def __init__(self, max_gap_s: float = 1.0) -> None:
        self._max_gap_ns = int(max_gap_s * 1e9)
        self.reset()

    def reset(self) -> None:
        self._last_ns = -1
        self._amp_ma = 0.0
        self._freq_hz = 0.0
        self._pw_us = 0.0
        self.total_s = 0.0
        self.on_s = 0.0
        self.teed_j = 0.0
        self.charge_mc = 0.0
        self.ramps = 0
        self._dir = 0  # +1 rising, -1 falling, 0 steady

    def step(self, now_ns: int, amplitude_ma: float, frequency_hz: float,
             pulse_width_us: float) -> None:
        """Account the interval since the last call at the last request, then take this one.

        A *ramp* is counted each time the amplitude starts moving in a new direction
        (steady -> rising, rising -> falling, ...).
        """
        if self._last_ns >= 0:
            dt_ns = now_ns - self._last_ns
            if dt_ns > 0:
                if dt_ns > self._max_gap_ns:
                    dt_ns = self._max_gap_ns
                dt = dt_ns * _NS
                self.total_s += dt
                a = self._amp_ma
                if a > 0.0:
                    self.on_s += dt
                    i_a = a * 1e-3
                    self.teed_j += i_a * i_a * NOMINAL_LOAD_OHM * self._freq_hz \
                        * self._pw_us * 1e-6 * dt
                    self.charge_mc += a * self._pw_us * 1e-6 * self._freq_hz * dt
        if amplitude_ma > self._amp_ma:
            if self._dir != 1:
                self.ramps += 1
            self._dir = 1
        elif amplitude_ma < self._amp_ma:
            if self._dir != -1:
                self.ramps += 1
            self._dir = -1
        else:
            self._dir = 0
        self._last_ns = now_ns
        self._amp_ma = amplitude_ma if amplitude_ma > 0.0 else 0.0
        self._freq_hz = frequency_hz
        self._pw_us = pulse_width_us

    def metrics(self) -> dict[str, float]:
        """``stim_time_pct``, ``stim_time_s``, ``teed_mj`` (total, nominal load),
        ``teed_uj_per_s`` (mean per second of run) and ``ramps``."""
        total = self.total_s
        return {
            "stim_time_pct": 100.0 * self.on_s / total if total > 0 else 0.0,
            "stim_time_s": self.on_s,
            "teed_mj": 1e3 * self.teed_j,
            "teed_uj_per_s": 1e6 * self.teed_j / total if total > 0 else 0.0,
            "ramps": float(self.ramps),
        }
