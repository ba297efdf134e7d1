"""The simulated implant's hardware: its own output ceilings, battery and contact impedances.

These are the device's *own* numbers, written independently of the host's limits file: what
the output stage physically supports (a current source of 25.5 mA, a compliance of 15 V) and
what its firmware refuses regardless of what the host believes. The device checks a command
against them *and* against :func:`neuroloop.safety.validate.validate`; either can refuse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neuroloop.link.messages import Stim

__all__ = ["HardwareCeilings", "check_ceilings", "Battery", "ImpedanceModel"]


@dataclass(frozen=True)
class HardwareCeilings:
    """What the output stage can and will do, whatever the host asks.

    Attributes
    ----------
    contact_current_max_ma, total_current_max_ma : float
        Current-source range per contact and summed cathodic, mA (SCS IPGs: 0-25.5 mA).
    pulse_width_min_us, pulse_width_max_us : float
        Phase width the pulse generator can time, us.
    frequency_min_hz, frequency_max_hz : float
        Pulse rates it can generate, Hz.
    interphase_gap_max_us : float
    compliance_voltage_v : float
        Largest voltage the current source can drive: |I_c| x Z_c must stay below it, V.
    battery_min_pct : float
        Below this state of charge the output stage is shut down (FAULT), %.
    battery_resume_pct : float
        The fault clears (ARM possible again) once the battery is back above this, %.
    """

    contact_current_max_ma: float = 25.5
    total_current_max_ma: float = 25.5
    pulse_width_min_us: float = 10.0
    pulse_width_max_us: float = 1000.0
    frequency_min_hz: float = 1.0
    frequency_max_hz: float = 1200.0
    interphase_gap_max_us: float = 1000.0
    compliance_voltage_v: float = 15.0
    battery_min_pct: float = 3.0
    battery_resume_pct: float = 10.0


def check_ceilings(stim: Stim, ceilings: HardwareCeilings, impedance_ohm: np.ndarray
                   ) -> tuple[str, int] | None:
    """The first hardware ceiling ``stim`` breaks, as (explanation, contact or -1), or None.

    Assumes the payload is well formed (finite numbers, right contact count): that is
    checked before.
    """
    amps = stim.amplitude_ma
    on = bool(np.any(amps != 0.0)) or stim.case_ma != 0.0
    if not on:
        return None
    if not ceilings.pulse_width_min_us <= stim.pulse_width_us <= ceilings.pulse_width_max_us:
        return (f"pulse width {stim.pulse_width_us:g} us outside the hardware's "
                f"{ceilings.pulse_width_min_us:g}-{ceilings.pulse_width_max_us:g} us", -1)
    if not ceilings.frequency_min_hz <= stim.frequency_hz <= ceilings.frequency_max_hz:
        return (f"frequency {stim.frequency_hz:g} Hz outside the hardware's "
                f"{ceilings.frequency_min_hz:g}-{ceilings.frequency_max_hz:g} Hz", -1)
    if not 0.0 <= stim.interphase_gap_us <= ceilings.interphase_gap_max_us:
        return (f"interphase gap {stim.interphase_gap_us:g} us outside the hardware's "
                f"0-{ceilings.interphase_gap_max_us:g} us", -1)
    if (2.0 * stim.pulse_width_us + stim.interphase_gap_us) * stim.frequency_hz >= 1e6:
        return ("pulses would overlap: (2 PW + IPG) x f >= 1 s", -1)
    for c in range(amps.shape[0]):
        a = abs(float(amps[c]))
        if a > ceilings.contact_current_max_ma:
            return (f"{a:g} mA above the current source's {ceilings.contact_current_max_ma:g} mA",
                    c)
        if a > 0.0:
            v = a * float(impedance_ohm[c]) / 1000.0
            if not v <= ceilings.compliance_voltage_v:
                return (f"{a:g} mA into {float(impedance_ohm[c]):g} ohm needs {v:.3g} V, above "
                        f"the {ceilings.compliance_voltage_v:g} V compliance", c)
    cathodic = float(-amps[amps < 0.0].sum()) + max(-stim.case_ma, 0.0)
    if cathodic > ceilings.total_current_max_ma:
        return (f"total cathodic {cathodic:g} mA above the hardware's "
                f"{ceilings.total_current_max_ma:g} mA", -1)
    return None


class Battery:
    """A rechargeable cell with a wireless (inductive) charger.

    State of charge falls with the electronics' base load and with the stimulation power
    (sum of I^2 Z over contacts x duty cycle, through a boost converter of finite
    efficiency), and rises while the charging coil is in place. With ``auto_charge`` the
    patient puts the coil on at ``charge_on_pct`` and takes it off at ``charge_off_pct``.

    Parameters
    ----------
    capacity_mwh : float
        Usable energy, mWh.
    soc_pct : float
        Initial state of charge, %.
    base_load_mw : float
        Electronics, radio and amplifiers, mW.
    charge_power_mw : float
        Power delivered into the cell while the coil is on, mW.
    efficiency : float
        Output-stage efficiency (0..1].
    auto_charge : bool
    """

    def __init__(self, *, capacity_mwh: float = 350.0, soc_pct: float = 80.0,
                 base_load_mw: float = 12.0, charge_power_mw: float = 150.0,
                 efficiency: float = 0.6, auto_charge: bool = True,
                 charge_on_pct: float = 20.0, charge_off_pct: float = 95.0) -> None:
        if not (capacity_mwh > 0 and 0.0 <= soc_pct <= 100.0 and 0 < efficiency <= 1):
            raise ValueError("battery: capacity must be > 0, soc in [0, 100], efficiency in (0, 1]")
        self.capacity_mwh = float(capacity_mwh)
        self.soc_pct = float(soc_pct)
        self.base_load_mw = float(base_load_mw)
        self.charge_power_mw = float(charge_power_mw)
        self.efficiency = float(efficiency)
        self.auto_charge = auto_charge
        self.charge_on_pct = float(charge_on_pct)
        self.charge_off_pct = float(charge_off_pct)
        self.charging = False

    @staticmethod
    def stimulation_power_mw(amplitude_ma: np.ndarray, impedance_ohm: np.ndarray,
                             pulse_width_us: float, frequency_hz: float) -> float:
        """Average electrical power into the tissue, mW (both phases of every pulse)."""
        duty = 2.0 * pulse_width_us * 1e-6 * frequency_hz
        z = np.where(np.isfinite(impedance_ohm), impedance_ohm, 0.0)
        return float(np.sum(amplitude_ma ** 2 * z) * 1e-3 * duty)  # mA^2 ohm = uW -> mW

    def step(self, dt_s: float, stim_power_mw: float) -> None:
        """Advance the charge by ``dt_s`` seconds of ``stim_power_mw`` output."""
        if self.auto_charge:
            if self.soc_pct <= self.charge_on_pct:
                self.charging = True
            elif self.soc_pct >= self.charge_off_pct:
                self.charging = False
        net_mw = -(self.base_load_mw + stim_power_mw / self.efficiency)
        if self.charging:
            net_mw += self.charge_power_mw
        self.soc_pct += net_mw * dt_s / 3600.0 / self.capacity_mwh * 100.0
        self.soc_pct = min(100.0, max(0.0, self.soc_pct))


class ImpedanceModel:
    """Contact impedances: a seeded nominal value per contact, slow drift, measurement noise,
    and faults (an open contact reads +inf).

    Parameters
    ----------
    n_contacts : int
    rng : numpy.random.Generator
    nominal_range_ohm : (float, float)
        Nominal impedances are drawn uniformly from this range.
    """

    def __init__(self, n_contacts: int, rng: np.random.Generator,
                 nominal_range_ohm: tuple[float, float] = (700.0, 1500.0)) -> None:
        self._rng = rng
        self.true_ohm = rng.uniform(*nominal_range_ohm, size=n_contacts)
        self.open = np.zeros(n_contacts, dtype=bool)
        self.measured_ohm = self.true_ohm.copy()

    def measure(self) -> np.ndarray:
        """Take a measurement (1 % noise, 0.2 % random-walk drift); returns ohm per contact."""
        n = self.true_ohm.shape[0]
        self.true_ohm *= 1.0 + 0.002 * self._rng.standard_normal(n)
        self.true_ohm = np.clip(self.true_ohm, 400.0, 2500.0)
        noisy = self.true_ohm * (1.0 + 0.01 * self._rng.standard_normal(n))
        self.measured_ohm = np.where(self.open, math.inf, noisy)
        return self.measured_ohm

    def open_contact(self, contact: int) -> None:
        """Fault: the lead to ``contact`` breaks (reads open from the next measurement on)."""
        self.open[contact] = True
        self.measured_ohm[contact] = math.inf

