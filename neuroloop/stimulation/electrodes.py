"""Electrode arrays: a catalogue of real arrays with their contact geometry and areas.

Geometry is a fact of the hardware, not a setting. A scenario names its array
(``[stimulation] array = "paddle-5-6-5"``) and every charge limit is computed from the
catalogue's contact areas; a setting may only state a *smaller* effective area (stricter).
The device reports its own array and areas at connect (INFO), and the host refuses to arm
when they disagree with the scenario's.

Areas are per contact because Shannon's limit and the charge-density limit are per contact.

Catalogue (sources in :data:`ELECTRODE_CATALOGUE` and docs/safety.md):

=====================  ========  ==========================  ===========================
name                   contacts  contact                     area per contact
=====================  ========  ==========================  ===========================
``paddle-5-6-5``       16        4.0 mm x 1.5 mm rectangle   0.0600 cm^2
``dbs-3389``           4         cylinder 1.27 mm x 1.5 mm   0.0598 cm^2
``rns-strip-depth``    8         strip: 3.18 mm disc;        strip 0.0792 cm^2,
                                 depth: 1.27 mm x 2.0 mm     depth 0.0798 cm^2
=====================  ========  ==========================  ===========================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["ElectrodeArray", "CatalogueEntry", "ELECTRODE_CATALOGUE", "electrode_array",
           "array_names", "paddle_5_6_5", "dbs_3389", "rns_strip_depth",
           "DEFAULT_CONTACT_AREA_CM2", "AREA_MATCH_RTOL"]

#: Area of one 5-6-5 paddle contact (4 mm x 1.5 mm = 6 mm^2), cm^2.
DEFAULT_CONTACT_AREA_CM2 = 0.06

#: Relative tolerance when comparing the areas a device reports with the catalogue's
#: (the INFO frame carries them as float32).
AREA_MATCH_RTOL = 1e-5


@dataclass(frozen=True)
class ElectrodeArray:
    """A stimulation electrode array.

    Attributes
    ----------
    name : str
        Catalogue name (``"paddle-5-6-5"``).
    contact_names : tuple of str, length n_contacts
    area_cm2 : ndarray, shape (n_contacts,), float64
        Geometric area of each contact, cm^2 (> 0).
    position_mm : ndarray, shape (n_contacts, 2), float64
        (medio-lateral x, rostro-caudal y) of each contact centre, mm; x < 0 is left. For a
        lead, y runs along the lead from its tip.
    """

    name: str
    contact_names: tuple[str, ...]
    area_cm2: np.ndarray
    position_mm: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.contact_names)
        if self.area_cm2.shape != (n,) or self.position_mm.shape != (n, 2):
            raise ValueError("area_cm2 must be (n,) and position_mm (n, 2)")
        if not np.all(np.isfinite(self.area_cm2)) or np.any(self.area_cm2 <= 0):
            raise ValueError("every contact area must be finite and > 0 cm^2")

    @property
    def n_contacts(self) -> int:
        return len(self.contact_names)

    def index(self, contact: str | int) -> int:
        """Contact index from its name (``"E3"``) or index; raises KeyError if unknown."""
        if isinstance(contact, int) and not isinstance(contact, bool):
            if 0 <= contact < self.n_contacts:
                return contact
            raise KeyError(f"contact index {contact} outside 0..{self.n_contacts - 1}")
        try:
            return self.contact_names.index(str(contact))
        except ValueError:
            raise KeyError(
                f"unknown contact {contact!r}; contacts are {', '.join(self.contact_names)}"
            ) from None

    def mismatch(self, name: str, area_cm2: np.ndarray | tuple[float, ...]) -> str | None:
        """Why a reported (``name``, ``area_cm2``) is not this array, or None when it is.

        Used at connect: the device's INFO names its array and areas, and the host refuses to
        arm when they disagree with the scenario's.
        """
        areas = np.asarray(area_cm2, dtype=np.float64)
        if name != self.name:
            return f"array {name!r}, the scenario's is {self.name!r}"
        if areas.shape != self.area_cm2.shape:
            return (f"array {name!r} with {areas.shape[0] if areas.ndim else 0} contacts, the "
                    f"scenario's has {self.n_contacts}")
        if not np.allclose(areas, self.area_cm2, rtol=AREA_MATCH_RTOL, atol=0.0):
            i = int(np.argmax(~np.isclose(areas, self.area_cm2, rtol=AREA_MATCH_RTOL, atol=0.0)))
            return (f"contact {self.contact_names[i]} of {name!r} with {areas[i]:.4g} cm^2, the "
                    f"catalogue has {self.area_cm2[i]:.4g} cm^2")
        return None


def paddle_5_6_5(area_cm2: float = DEFAULT_CONTACT_AREA_CM2) -> ElectrodeArray:
    """The 16-contact 5-6-5 epidural paddle.

    Contacts are numbered ``E0``..``E15`` column by column: left column E0-E4 (rostral to
    caudal), middle column E5-E10, right column E11-E15. Columns are 4 mm apart; rows are
    6 mm apart, the middle column offset by half a row.

    ``area_cm2`` exists for tests that need another geometry; the catalogue's entry uses the
    real one (:data:`DEFAULT_CONTACT_AREA_CM2`).
    """
    names: list[str] = []
    pos: list[tuple[float, float]] = []
    for x_mm, n_rows, y0 in ((-4.0, 5, 3.0), (0.0, 6, 0.0), (4.0, 5, 3.0)):
        for r in range(n_rows):
            names.append(f"E{len(names)}")
            pos.append((x_mm, y0 + 6.0 * r))
    n = len(names)
    return ElectrodeArray(
        name="paddle-5-6-5",
        contact_names=tuple(names),
        area_cm2=np.full(n, float(area_cm2)),
        position_mm=np.asarray(pos, dtype=np.float64),
    )


#: Medtronic 3389: 1.27 mm diameter, 1.5 mm contacts, 0.5 mm spacing -> pi * d * h.
_DBS_3389_AREA_CM2 = math.pi * 0.127 * 0.15


def dbs_3389() -> ElectrodeArray:
    """A 4-contact DBS lead of the Medtronic 3389 kind: contacts ``C0`` (tip) .. ``C3``.

    Cylindrical contacts 1.27 mm in diameter and 1.5 mm long, 0.5 mm apart (2.0 mm pitch):
    pi x 1.27 mm x 1.5 mm = 5.98 mm^2 = 0.0598 cm^2 each.
    """
    n = 4
    return ElectrodeArray(
        name="dbs-3389",
        contact_names=tuple(f"C{i}" for i in range(n)),
        area_cm2=np.full(n, _DBS_3389_AREA_CM2),
        position_mm=np.asarray([(0.0, 0.75 + 2.0 * i) for i in range(n)], dtype=np.float64),
    )


#: NeuroPace cortical strip (CL-335-10): platinum-iridium discs 3.175 mm across.
_RNS_STRIP_AREA_CM2 = math.pi * (0.3175 / 2.0) ** 2
#: NeuroPace depth lead (DL-330-3.5): 1.27 mm diameter, 2.0 mm contacts, 3.5 mm pitch.
_RNS_DEPTH_AREA_CM2 = math.pi * 0.127 * 0.20


def rns_strip_depth() -> ElectrodeArray:
    """A responsive-neurostimulator pair: a 4-contact cortical strip and a 4-contact depth lead.

    Contacts ``S0``..``S3`` (strip, 10 mm pitch, discs of 3.175 mm: 0.0792 cm^2) and
    ``D0``..``D3`` (depth, 3.5 mm pitch, cylinders 1.27 mm x 2.0 mm: 0.0798 cm^2). The strip
    lies at x = -20 mm, the depth lead at x = +20 mm, so the two never share a position.
    """
    names = tuple([f"S{i}" for i in range(4)] + [f"D{i}" for i in range(4)])
    areas = np.asarray([_RNS_STRIP_AREA_CM2] * 4 + [_RNS_DEPTH_AREA_CM2] * 4)
    pos = [(-20.0, 10.0 * i) for i in range(4)] + [(20.0, 1.0 + 3.5 * i) for i in range(4)]
    return ElectrodeArray(name="rns-strip-depth", contact_names=names, area_cm2=areas,
                          position_mm=np.asarray(pos, dtype=np.float64))


@dataclass(frozen=True)
class CatalogueEntry:
    """One array of the catalogue: how to build it and where its geometry comes from."""

    name: str
    build: Callable[[], ElectrodeArray]
    description: str
    source: str


#: Every array neuroloop knows, by name. Limits are computed from these areas only.
ELECTRODE_CATALOGUE: Mapping[str, CatalogueEntry] = {
    "paddle-5-6-5": CatalogueEntry(
        "paddle-5-6-5", paddle_5_6_5,
        "16-contact 5-6-5 epidural paddle (lumbosacral spinal cord stimulation)",
        "Medtronic Specify 5-6-5 paddle lead, as used in the brain-spine interface "
        "(Rowald et al., Nat Med 2022; Lorach et al., Nature 2023): 4 mm x 1.5 mm contacts"),
    "dbs-3389": CatalogueEntry(
        "dbs-3389", dbs_3389,
        "4-contact deep-brain stimulation lead, 0.5 mm spacing",
        "Medtronic DBS lead model 3389 manual: 1.27 mm diameter, 1.5 mm contacts, 0.5 mm "
        "spacing (area 0.0598 cm^2, SAFETY.md worked example)"),
    "rns-strip-depth": CatalogueEntry(
        "rns-strip-depth", rns_strip_depth,
        "responsive neurostimulation: 4-contact cortical strip + 4-contact depth lead",
        "NeuroPace RNS System lead manual: cortical strip CL-335-10 (3.175 mm discs, 10 mm "
        "spacing) and depth lead DL-330-3.5 (1.27 mm x 2.0 mm contacts, 3.5 mm spacing)"),
}


def array_names() -> tuple[str, ...]:
    """Names of the catalogue's arrays."""
    return tuple(ELECTRODE_CATALOGUE)


def electrode_array(name: str) -> ElectrodeArray:
    """The catalogue's array called ``name``.

    Raises
    ------
    KeyError
        ``name`` is not in the catalogue; the message lists the known arrays.
    """
    entry = ELECTRODE_CATALOGUE.get(name) if isinstance(name, str) else None
    if entry is None:
        raise KeyError(f"unknown electrode array {name!r}; the catalogue has "
                       f"{', '.join(array_names())}")
    return entry.build()
