"""Electrode arrays: contact names, positions and geometric areas.

The default is a 16-contact epidural paddle in a 5-6-5 layout (three columns of 5, 6 and 5
contacts), the geometry of the lumbosacral paddles used in the brain-spine interface work.
Areas are per contact because Shannon's limit and the charge-density limit are per contact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ElectrodeArray", "paddle_5_6_5", "DEFAULT_CONTACT_AREA_CM2"]

#: Nominal area of one paddle contact (4 mm x 1.5 mm = 6 mm^2), cm^2.
DEFAULT_CONTACT_AREA_CM2 = 0.06


@dataclass(frozen=True)
class ElectrodeArray:
    """A stimulation electrode array.

    Attributes
    ----------
    name : str
    contact_names : tuple of str, length n_contacts
    area_cm2 : ndarray, shape (n_contacts,), float64
        Geometric area of each contact, cm^2 (> 0).
    position_mm : ndarray, shape (n_contacts, 2), float64
        (medio-lateral x, rostro-caudal y) of each contact centre, mm; x < 0 is left.
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


def paddle_5_6_5(area_cm2: float = DEFAULT_CONTACT_AREA_CM2) -> ElectrodeArray:
    """The 16-contact 5-6-5 epidural paddle.

    Contacts are numbered ``E0``..``E15`` column by column: left column E0-E4 (rostral to
    caudal), middle column E5-E10, right column E11-E15. Columns are 4 mm apart; rows are
    6 mm apart, the middle column offset by half a row.
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
