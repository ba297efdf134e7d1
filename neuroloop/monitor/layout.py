"""The electrode array as drawn: contact outlines from the catalogue's real geometry.

Shared by the report (matplotlib) and the live page (sent as JSON, drawn on a canvas), so
both show the same paddle, lead or strip.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..stimulation.electrodes import ElectrodeArray

__all__ = ["contact_shapes", "layout_json"]

#: Drawn contact size (width along x, height along y), mm, of the catalogue's arrays; the
#: catalogue's docstring gives the same dimensions. Other arrays: a square of the contact's
#: area. ``round`` contacts are discs of that diameter.
_SHAPES_MM: dict[str, tuple[float, float, bool]] = {
    "paddle": (1.5, 4.0, False),   # paddle-5-6-5: 4.0 mm x 1.5 mm along the cord
    "dbs": (1.27, 1.5, False),     # dbs-3389: 1.27 mm lead, 1.5 mm contacts
    "S": (3.175, 3.175, True),     # rns strip: 3.175 mm discs
    "D": (1.27, 2.0, False),       # rns depth lead: 1.27 mm x 2.0 mm
}


def contact_shapes(array: ElectrodeArray) -> list[dict[str, Any]]:
    """One outline per contact: ``{"name", "x", "y", "w", "h", "round"}`` in mm (centre, size).

    The sizes come from the catalogue's geometry (see :data:`_SHAPES_MM`); an array the table
    does not know gets a square of the contact's catalogue area.
    """
    out = []
    for i, name in enumerate(array.contact_names):
        key = ("paddle" if array.name.startswith("paddle")
               else "dbs" if array.name.startswith("dbs") else name[:1])
        if key in _SHAPES_MM:
            w, h, rnd = _SHAPES_MM[key]
        else:
            side = math.sqrt(float(array.area_cm2[i]) * 100.0)  # cm^2 -> mm^2 -> side
            w, h, rnd = side, side, False
        x, y = (float(v) for v in array.position_mm[i])
        out.append({"name": name, "x": x, "y": y, "w": w, "h": h, "round": rnd})
    return out


def _columns(shapes: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The carrier behind the contacts: one body per group of contacts sharing an x (a lead,
    a strip), or one around all of them when the groups are closer than 3 contact widths
    (a paddle)."""
    xs = sorted({round(s["x"], 3) for s in shapes})
    wmax = max(s["w"] for s in shapes)
    if len(xs) > 1 and min(np.diff(xs)) < 3 * wmax + 2.0:
        groups = [shapes]
    else:
        groups = [[s for s in shapes if round(s["x"], 3) == x] for x in xs]
    out = []
    for g in groups:
        x0 = min(s["x"] - s["w"] / 2 for s in g) - 1.0
        x1 = max(s["x"] + s["w"] / 2 for s in g) + 1.0
        y0 = min(s["y"] - s["h"] / 2 for s in g) - 1.5
        y1 = max(s["y"] + s["h"] / 2 for s in g) + 1.5
        out.append({"x0": x0, "x1": x1, "y0": y0, "y1": y1})
    return out


def layout_json(array: ElectrodeArray) -> dict[str, Any]:
    """The array for the live page: name, contact outlines and carrier bodies (mm)."""
    shapes = contact_shapes(array)
    return {"name": array.name, "contacts": shapes, "bodies": _columns(shapes)}


def draw_array(ax: Any, array: ElectrodeArray, current_ma: np.ndarray, *, vmax: float,
               title: str = "", label_values: bool = True) -> None:
    """Draw ``array`` on matplotlib axes ``ax`` with each contact coloured by its current.

    Parameters
    ----------
    current_ma : ndarray (n_contacts,)
        Signed current per contact, mA (cathodic negative: blue; anodic: red).
    vmax : float
        Current of full colour, mA (> 0).
    """
    from matplotlib import colormaps
    from matplotlib.patches import Ellipse, FancyBboxPatch, Rectangle

    cmap = colormaps["RdBu_r"]
    shapes = contact_shapes(array)
    for body in _columns(shapes):
        ax.add_patch(FancyBboxPatch((body["x0"], body["y0"]), body["x1"] - body["x0"],
                                    body["y1"] - body["y0"], boxstyle="round,pad=0,rounding_size=1",
                                    facecolor="#e8e8e8", edgecolor="#999999", lw=0.8))
    vmax = vmax if vmax > 0 else 1.0
    for s, i_ma in zip(shapes, current_ma, strict=False):
        colour = cmap(0.5 + 0.5 * float(np.clip(i_ma / vmax, -1, 1)))
        if s["round"]:
            patch: Any = Ellipse((s["x"], s["y"]), s["w"], s["h"], facecolor=colour,
                                 edgecolor="black", lw=0.6)
        else:
            patch = Rectangle((s["x"] - s["w"] / 2, s["y"] - s["h"] / 2), s["w"], s["h"],
                              facecolor=colour, edgecolor="black", lw=0.6)
        ax.add_patch(patch)
        text = s["name"] + (f"\n{i_ma:+.2f}" if label_values and abs(i_ma) > 1e-9 else "")
        ax.text(s["x"] + s["w"] / 2 + 0.4, s["y"], text, fontsize=6, va="center")
    xs = [s["x"] for s in shapes]
    ys = [s["y"] for s in shapes]
    pad = 4.0
    ax.set_xlim(min(xs) - pad, max(xs) + pad + 2.0)
    ax.set_ylim(max(ys) + pad, min(ys) - pad)  # rostral (small y) at the top
    ax.set_aspect("equal")
    ax.set_axis_off()  # a scale bar instead of ticks (ticks cost more to draw than the array)
    x0, y_bar = min(xs) - pad + 0.5, max(ys) + pad - 0.8
    ax.plot([x0, x0 + 5.0], [y_bar, y_bar], color="black", lw=1.5)
    ax.text(x0 + 2.5, y_bar - 0.5, "5 mm", fontsize=6, ha="center", va="bottom")
    if title:
        ax.set_title(title, fontsize=8)
