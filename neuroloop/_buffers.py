"""Copying inputs into preallocated buffers, so compiled kernels keep one signature; reading
a buffer once to bring it into this core's cache."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._jit import jit

__all__ = ["copy_into", "touch", "byte_view"]

#: Bytes per cache line on the machines we run on (x86-64, arm64).
CACHE_LINE_BYTES = 64


@jit
def _touch_bytes(b: np.ndarray) -> int:
    total = 0
    for i in range(0, b.shape[0], CACHE_LINE_BYTES):
        total += b[i]
    return total


def byte_view(a: np.ndarray) -> np.ndarray | None:
    """``a``'s memory as a flat uint8 array (a view), or None when ``a`` is not contiguous."""
    if not a.flags.c_contiguous or a.size == 0:
        return None
    return a.reshape(-1).view(np.uint8)


def touch(b: np.ndarray) -> int:
    """Read one byte per cache line of ``b`` (a :func:`byte_view`), without changing it.

    Used in idle time to bring memory another core wrote, or that other work evicted, back
    into this core's cache before a deadline-critical step reads it. Returns the byte sum
    (so that the reads cannot be optimised away).
    """
    return int(_touch_bytes(b))


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
