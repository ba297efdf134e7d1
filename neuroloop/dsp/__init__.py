"""Streaming DSP: common average reference, notch, band-pass filter bank, log band power.

Filters are designed with SciPy at configuration time; the per-hop work runs in Numba kernels
(:mod:`neuroloop.dsp._kernels`) that carry filter state across hops and write into
preallocated arrays. Signals are laid out samples x channels, C-contiguous float64.
"""

from __future__ import annotations

from .covariance import CovariancePipeline
from .features import LOG_POWER_EPS, FeaturePipeline
from .filters import (
    CommonAverageReference,
    StreamingSOSFilter,
    check_band,
    check_sampling_rate,
    design_bandpass_sos,
    design_notch_sos,
    notch_frequencies,
    pad_sections,
)

__all__ = [
    "CovariancePipeline",
    "FeaturePipeline",
    "LOG_POWER_EPS",
    "CommonAverageReference",
    "StreamingSOSFilter",
    "check_band",
    "check_sampling_rate",
    "design_bandpass_sos",
    "design_notch_sos",
    "notch_frequencies",
    "pad_sections",
]
