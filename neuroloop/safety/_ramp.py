"""Compiled helpers of the supervisor's ramp-rate and blanking stage (invariant 19).

The rules act on the summed cathodic current (a program's amplitude), after the per-cycle
kernel (:mod:`._kernels`) has made the command safe contact by contact; they only ever scale
the output down, so everything the kernel guaranteed still holds.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

__all__ = ["cathodic_total", "scale_output"]


@jit
def cathodic_total(amp: np.ndarray) -> float:
    """Summed cathodic current of ``amp`` (n_contacts,) mA: sum of ``-a`` over ``a < 0``."""
    total = 0.0
    for c in range(amp.shape[0]):
        a = amp[c]
        if a < 0.0:
            total -= a
    return total


@jit
def scale_output(out_amp: np.ndarray, prev_amp: np.ndarray, factor: float) -> None:
    """``out_amp *= factor`` and make it the next cycle's reference (``prev_amp``)."""
    for c in range(out_amp.shape[0]):
        out_amp[c] = out_amp[c] * factor
        prev_amp[c] = out_amp[c]
