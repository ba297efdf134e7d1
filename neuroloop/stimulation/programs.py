"""Stimulation programs: one per intention, as a clinician would configure them.

A program names its cathodes and anodes with current fractions, the pulse frequency, pulse
width, interphase gap and the clinician's amplitude envelope ``[amplitude_min_ma,
amplitude_max_ma]``. The *program amplitude* is the total cathodic current (mA); contact
``c`` carries ``-A * cathode_fraction[c] + A * anode_fraction[c]``. With no anodes the case
returns the current (monopolar).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ..config import StimulationConfig
from ..errors import ConfigError
from .electrodes import ElectrodeArray, electrode_array

__all__ = ["StimProgram", "ProgramSet", "build_program_set"]

#: Contacts by name (``"E3"``) or by index, each with its current fraction.
ContactMap = Mapping[str, float] | Mapping[int, float] | Mapping[str | int, float]


@dataclass(frozen=True)
class StimProgram:
    """One stimulation program.

    Attributes
    ----------
    program_id : int
        Index of the intention this program serves (0 is rest and has no program).
    name : str
        Intention name, e.g. ``"left_hip_flexion"``.
    cathode_fraction, anode_fraction : ndarray, shape (n_contacts,)
        Non-negative fractions; cathodes sum to 1, anodes sum to 1 or are all zero (case return).
    frequency_hz, pulse_width_us, interphase_gap_us : float
    amplitude_min_ma, amplitude_max_ma : float
        Clinician envelope of the program amplitude (total cathodic current), mA.
    """

    program_id: int
    name: str
    cathode_fraction: np.ndarray
    anode_fraction: np.ndarray
    frequency_hz: float
    pulse_width_us: float
    interphase_gap_us: float
    amplitude_min_ma: float
    amplitude_max_ma: float

    @property
    def uses_case(self) -> bool:
        return not bool(np.any(self.anode_fraction))

    def contact_currents(self, amplitude_ma: float, out: np.ndarray) -> float:
        """Write the signed contact currents for ``amplitude_ma`` into ``out``.

        Returns the case current (mA) so that contacts plus case sum to zero.
        """
        for c in range(out.shape[0]):
            out[c] = amplitude_ma * (self.anode_fraction[c] - self.cathode_fraction[c])
        return amplitude_ma if self.uses_case else 0.0

    @classmethod
    def from_contacts(
        cls,
        array: ElectrodeArray,
        program_id: int,
        name: str,
        cathodes: ContactMap,
        anodes: ContactMap,
        frequency_hz: float,
        pulse_width_us: float,
        amplitude_range_ma: tuple[float, float],
        interphase_gap_us: float = 50.0,
    ) -> StimProgram:
        """Build a program from ``{contact: fraction}`` maps (fractions are normalised)."""
        cath = _fractions(array, cathodes, "cathodes", name)
        if not cath.any():
            raise ValueError(f"program {name!r} needs at least one cathode")
        an = _fractions(array, anodes, "anodes", name) if anodes else np.zeros(array.n_contacts)
        if np.any((cath > 0) & (an > 0)):
            raise ValueError(f"program {name!r}: a contact cannot be both cathode and anode")
        lo, hi = float(amplitude_range_ma[0]), float(amplitude_range_ma[1])
        if not (0.0 <= lo <= hi):
            raise ValueError(f"program {name!r}: amplitude range must satisfy 0 <= min <= max")
        return cls(program_id, name, cath, an, float(frequency_hz), float(pulse_width_us),
                   float(interphase_gap_us), lo, hi)


def _fractions(array: ElectrodeArray, spec: ContactMap, what: str,
               name: str) -> np.ndarray:
    out = np.zeros(array.n_contacts, dtype=np.float64)
    for contact, frac in spec.items():
        f = float(frac)
        if not 0 < f <= 1:
            raise ValueError(f"program {name!r}: {what} fraction for {contact!r} must be in "
                             f"(0, 1], got {f!r}")
        out[array.index(contact)] += f
    total = out.sum()
    return out / total if total > 0 else out


@dataclass(frozen=True)
class ProgramSet:
    """All programs of a scenario, indexed by intention id.

    Attributes
    ----------
    array : ElectrodeArray
    intention_names : tuple of str
        Intention states; index 0 is rest and never has a program (a scenario without a
        rest state, e.g. left/right only, has programs for every state).
    programs : tuple of StimProgram
    """

    array: ElectrodeArray
    intention_names: tuple[str, ...]
    programs: tuple[StimProgram, ...]

    def __post_init__(self) -> None:
        ids = [p.program_id for p in self.programs]
        if len(set(ids)) != len(ids):
            raise ValueError("two programs serve the same intention")
        first = 1 if self.intention_names[0] == "rest" else 0  # rest never has a program
        for p in self.programs:
            if not first <= p.program_id < len(self.intention_names):
                raise ValueError(f"program {p.name!r} has no intention (id {p.program_id})")

    def __iter__(self) -> Iterator[StimProgram]:
        return iter(self.programs)

    def __len__(self) -> int:
        return len(self.programs)

    def get(self, program_id: int) -> StimProgram | None:
        """The program for ``program_id`` or None (rest, unknown)."""
        for p in self.programs:
            if p.program_id == program_id:
                return p
        return None

    def table(self) -> dict[str, np.ndarray]:
        """Dense per-intention arrays for compiled code.

        Returns
        -------
        dict with ``signed_fraction`` (n_intentions, n_contacts) = anode - cathode fraction,
        ``uses_case`` (n_intentions,) bool, ``frequency_hz``, ``pulse_width_us``,
        ``interphase_gap_us``, ``amplitude_min_ma``, ``amplitude_max_ma`` (n_intentions,),
        ``has_program`` (n_intentions,) bool. Row 0 (rest) is all zeros.
        """
        n_int, n_c = len(self.intention_names), self.array.n_contacts
        t = {
            "signed_fraction": np.zeros((n_int, n_c)),
            "uses_case": np.zeros(n_int, dtype=np.bool_),
            "frequency_hz": np.zeros(n_int),
            "pulse_width_us": np.zeros(n_int),
            "interphase_gap_us": np.zeros(n_int),
            "amplitude_min_ma": np.zeros(n_int),
            "amplitude_max_ma": np.zeros(n_int),
            "has_program": np.zeros(n_int, dtype=np.bool_),
        }
        for p in self.programs:
            i = p.program_id
            t["signed_fraction"][i] = p.anode_fraction - p.cathode_fraction
            t["uses_case"][i] = p.uses_case
            t["frequency_hz"][i] = p.frequency_hz
            t["pulse_width_us"][i] = p.pulse_width_us
            t["interphase_gap_us"][i] = p.interphase_gap_us
            t["amplitude_min_ma"][i] = p.amplitude_min_ma
            t["amplitude_max_ma"][i] = p.amplitude_max_ma
            t["has_program"][i] = True
        return t


def build_program_set(config: StimulationConfig, intention_names: tuple[str, ...]) -> ProgramSet:
    """Build the electrode array and programs of a scenario's ``[stimulation]`` section.

    Raises
    ------
    ConfigError
        For an array that is not in the catalogue or a program the array cannot carry.
    """
    try:
        array: ElectrodeArray = electrode_array(config.array)
    except KeyError as exc:
        raise ConfigError(f"stimulation.array = {config.array!r}: {exc.args[0]}; choose one of "
                          "those") from None
    programs: list[StimProgram] = []
    for p in config.programs:
        pid = intention_names.index(p.intention)
        try:
            programs.append(StimProgram.from_contacts(
                array, pid, p.intention, p.cathodes, p.anodes, p.frequency_hz,
                p.pulse_width_us, p.amplitude_ma, p.interphase_gap_us))
        except (KeyError, ValueError) as exc:
            msg = exc.args[0] if exc.args else str(exc)
            raise ConfigError(f"stimulation program {p.intention!r}: {msg}") from None
    return ProgramSet(array, intention_names, tuple(programs))
