"""Copying inputs into preallocated buffers, so compiled kernels keep one signature."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["copy_into"]


def copy_into(value: npt.ArrayLike, out: np.ndarray, name: str, shape_hint: str = "") -> np.ndarray:
    """Copy ``value`` (right shape, any dtype/layout, possibly a read-only memmap) into ``out``.

    A kernel called with another dtype or memory layout would be compiled again inside the
    loop; copying into the one preallocated float64 buffer avoids that.

    Parameters
    ----------
    value : array_like
        Input of shape ``out.shape``.
    out : ndarray
        Preallocated C-contiguous float64 buffer.
    name : str
        What the input is, for the error message (``"hop"``, ``"features"``).
    shape_hint : str
        Meaning of the axes, appended to the expected shape in the message.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    ValueError
        Wrong or ragged shape, or a dtype that cannot be read as float64.
    """
    try:
        shape = np.shape(value)
    except ValueError:  # ragged nested sequences
        shape = None
    if shape != out.shape:
        hint = f" {shape_hint}" if shape_hint else ""
        got = shape if shape is not None else "a ragged sequence"
        raise ValueError(f"{name} must have shape {out.shape}{hint}, got {got}")
    try:
        np.copyto(out, value, casting="same_kind")
    except TypeError:
        raise ValueError(f"{name} of dtype {getattr(value, 'dtype', '?')} cannot be read as "
                         f"float64; convert it with .astype(np.float64)") from None
    return out
