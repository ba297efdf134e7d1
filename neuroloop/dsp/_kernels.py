"""Compiled streaming DSP kernels (private; use the wrappers in :mod:`neuroloop.dsp`).

Every kernel takes arrays and scalars only, writes into caller-owned outputs and allocates
nothing. Arrays are C-contiguous float64, signals laid out samples x channels so that the
innermost loop runs over contiguous channels and vectorises.

Second-order sections
---------------------
Coefficients use SciPy's SOS layout: one row ``[b0, b1, b2, a0, a1, a2]`` per section with
``a0 == 1``. Filtering is direct-form II transposed, exactly the recursion of
``scipy.signal.sosfilt``::

    y      = b0 * x + z0
    z0_new = b1 * x - a1 * y + z1
    z1_new = b2 * x - a2 * y

State layout (documented contract, shared with :mod:`neuroloop.dsp.filters`):

* single cascade: ``z[s, k, c]`` with shape (n_sections, 2, n_channels): delay ``k`` of
  section ``s`` for channel ``c``. This is SciPy's ``zi`` for ``sosfilt(..., axis=0)`` on a
  (n_samples, n_channels) signal, so ``zi = z`` carries over unchanged.
* filter bank: ``z[b, s, k, c]`` with shape (n_bands, n_sections, 2, n_channels): the same
  per band.

The fast kernels (:func:`filterbank_log_power`, :func:`pipeline_step`) apply sections four at
a time, fused in registers per channel; their coefficient arrays must therefore hold a
multiple of four sections. :func:`neuroloop.dsp.filters.pad_sections` appends identity
sections (``[1, 0, 0, 1, 0, 0]``), which pass a finite signal through unchanged, bit for bit.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

#: Channels per cache tile of the fused kernels: one tile of a hop (59 x 128 float64 = 60 KB at
#: 586 Hz) and its filter states stay in the L1/L2 cache while every section runs over it.
TILE_CHANNELS = 128

__all__ = [
    "car",
    "car_subset",
    "sos_stream",
    "log_power",
    "filterbank_log_power",
    "pipeline_step",
    "pipeline_process",
]


# ----------------------------------------------------------------------------------------------
# common average reference
# ----------------------------------------------------------------------------------------------
@jit
def car(x, out):
    """Common average reference over all channels.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_channels), float64
    out : ndarray, shape (n_samples, n_channels), float64
        ``out[t, c] = x[t, c] - mean(x[t, :])``. May be ``x`` itself (in place).
    """
    n_samples, n_channels = x.shape
    inv = 1.0 / n_channels
    for t in range(n_samples):
        xr = x[t]
        s = 0.0
        for c in range(n_channels):
            s += xr[c]
        m = s * inv
        orow = out[t]
        for c in range(n_channels):
            orow[c] = xr[c] - m


@jit
def car_subset(x, ref_index, out):
    """Common average reference over a subset of channels, subtracted from every channel.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_channels), float64
    ref_index : ndarray, shape (n_ref,), int64
        Channels whose mean is the reference (e.g. all but known-bad channels).
    out : ndarray, shape (n_samples, n_channels), float64
        ``out[t, c] = x[t, c] - mean(x[t, ref_index])``. May be ``x`` itself.
    """
    n_samples, n_channels = x.shape
    n_ref = ref_index.shape[0]
    inv = 1.0 / n_ref
    for t in range(n_samples):
        xr = x[t]
        s = 0.0
        for i in range(n_ref):
            s += xr[ref_index[i]]
        m = s * inv
        orow = out[t]
        for c in range(n_channels):
            orow[c] = xr[c] - m


# ----------------------------------------------------------------------------------------------
# generic streaming SOS cascade
# ----------------------------------------------------------------------------------------------
@jit
def sos_stream(x, sos, z, out):
    """Filter a block through an SOS cascade, carrying the state ``z`` across calls.

    Equal to ``y, z[:] = scipy.signal.sosfilt(sos, x, axis=0, zi=z)``.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_channels), float64
    sos : ndarray, shape (n_sections, 6), float64
    z : ndarray, shape (n_sections, 2, n_channels), float64
        Filter state, updated in place.
    out : ndarray, shape (n_samples, n_channels), float64
        Filtered block. May be ``x`` itself (in place).
    """
    n_samples, n_channels = x.shape
    n_sections = sos.shape[0]
    if n_sections == 0:
        for t in range(n_samples):
            for c in range(n_channels):
                out[t, c] = x[t, c]
    for s in range(n_sections):
        b0 = sos[s, 0]
        b1 = sos[s, 1]
        b2 = sos[s, 2]
        a1 = sos[s, 4]
        a2 = sos[s, 5]
        z0 = z[s, 0]
        z1 = z[s, 1]
        for t in range(n_samples):
            src = x[t] if s == 0 else out[t]
            dst = out[t]
            for c in range(n_channels):
                xi = src[c]
                yi = b0 * xi + z0[c]
                z0[c] = b1 * xi - a1 * yi + z1[c]
                z1[c] = b2 * xi - a2 * yi
                dst[c] = yi


@jit
def log_power(y, eps, out):
    """Log mean power per channel of one block.

    Parameters
    ----------
    y : ndarray, shape (n_samples, n_channels), float64
    eps : float
        Floor added to the mean power before the log (same unit as the power).
    out : ndarray, shape (n_channels,), float64
        ``out[c] = log(mean(y[:, c] ** 2) + eps)``.
    """
    n_samples, n_channels = y.shape
    for c in range(n_channels):
        out[c] = 0.0
    for t in range(n_samples):
        yr = y[t]
        for c in range(n_channels):
            out[c] += yr[c] * yr[c]
    inv = 1.0 / n_samples
    for c in range(n_channels):
        out[c] = np.log(out[c] * inv + eps)


# ----------------------------------------------------------------------------------------------
# fused four-section passes (the fast path)
# ----------------------------------------------------------------------------------------------
#: Section kinds. A Butterworth band-pass from ``scipy.signal.butter(..., output="sos")`` has a
#: first section ``[k, 2k, k]`` and then ``[1, +-2, 1]`` numerators: multiplying by 1 is exact and
#: ``b0 * x`` equals ``b2 * x`` when ``b0 == b2``, so such sections skip one or two of their five
#: products and still compute SciPy's bits exactly (a fifth fewer operations per band-pass).
SECTION_GENERAL = 0
#: ``b0 == b2 != 0``: one product serves both.
SECTION_SYMMETRIC = 1
#: ``b0 == b2 == 1``: no product at all for them.
SECTION_UNIT = 2


@jit
def _section(kind, x, s0, s1, b0, b1, b2, a1, a2):
    """One direct-form II transposed step: returns ``(y, s0_new, s1_new)``.

    ``kind`` is a compile-time constant at every call site, so only one branch is compiled.
    """
    if kind == SECTION_UNIT:
        y = x + s0
        return y, b1 * x - a1 * y + s1, x - a2 * y
    if kind == SECTION_SYMMETRIC:
        bx = b0 * x
        y = bx + s0
        return y, b1 * x - a1 * y + s1, bx - a2 * y
    y = b0 * x + s0
    return y, b1 * x - a1 * y + s1, b2 * x - a2 * y


@jit
def _quad(src, dst, q, z, acc, c0, c1, k0, k1, k2, k3, power):
    """A pass of four sections of kinds ``k0..k3`` (:data:`SECTION_GENERAL` ...) over
    channels ``c0 <= c < c1``: store the output in ``dst`` or, with ``power``, set
    ``acc[c] = sum_t y[t, c] ** 2`` (``dst`` is then not used).

    Every call site passes the kinds and ``power`` as constants, so Numba compiles one
    specialisation per pattern (literal arguments) with the branches folded away. Not
    closures made by a factory: closures share one qualified name, and with the on-disk
    cache a process can link one variant's cached code in place of another's (seen with
    Numba 0.68: a cached caller ran a stale variant after the source changed and changed back).
    """
    n_samples = src.shape[0]
    b00 = q[0, 0]
    b01 = q[0, 1]
    b02 = q[0, 2]
    a01 = q[0, 4]
    a02 = q[0, 5]
    b10 = q[1, 0]
    b11 = q[1, 1]
    b12 = q[1, 2]
    a11 = q[1, 4]
    a12 = q[1, 5]
    b20 = q[2, 0]
    b21 = q[2, 1]
    b22 = q[2, 2]
    a21 = q[2, 4]
    a22 = q[2, 5]
    b30 = q[3, 0]
    b31 = q[3, 1]
    b32 = q[3, 2]
    a31 = q[3, 4]
    a32 = q[3, 5]
    # 1-D slices of the tile, indexed from 0: the loops then vectorise (an index that
    # could be negative would need wrap-around code in every access)
    s00 = z[0, 0, c0:c1]
    s01 = z[0, 1, c0:c1]
    s10 = z[1, 0, c0:c1]
    s11 = z[1, 1, c0:c1]
    s20 = z[2, 0, c0:c1]
    s21 = z[2, 1, c0:c1]
    s30 = z[3, 0, c0:c1]
    s31 = z[3, 1, c0:c1]
    n_channels = c1 - c0
    acc_t = acc[c0:c1]
    if power:
        for c in range(n_channels):
            acc_t[c] = 0.0
    for t in range(n_samples):
        xr = src[t, c0:c1]
        dr = acc_t if power else dst[t, c0:c1]
        for c in range(n_channels):
            y, s00[c], s01[c] = _section(k0, xr[c], s00[c], s01[c], b00, b01, b02, a01, a02)
            y, s10[c], s11[c] = _section(k1, y, s10[c], s11[c], b10, b11, b12, a11, a12)
            y, s20[c], s21[c] = _section(k2, y, s20[c], s21[c], b20, b21, b22, a21, a22)
            y, s30[c], s31[c] = _section(k3, y, s30[c], s31[c], b30, b31, b32, a31, a32)
            if power:
                dr[c] += y * y
            else:
                dr[c] = y


_G, _S, _U = SECTION_GENERAL, SECTION_SYMMETRIC, SECTION_UNIT
#: Quad patterns with a compiled pass: any four sections, a Butterworth band-pass of order 4
#: (or the first quad of a higher order), and the later quads of a higher order.
QUAD_GENERAL, QUAD_BANDPASS_HEAD, QUAD_UNIT = 0, 1, 2


@jit
def section_kind(row):
    """The :data:`SECTION_GENERAL`/``SYMMETRIC``/``UNIT`` kind of one SOS row (shape (6,))."""
    b0 = row[0]
    if b0 != row[2] or b0 == 0.0:
        return SECTION_GENERAL
    if b0 == 1.0:
        return SECTION_UNIT
    return SECTION_SYMMETRIC


@jit
def quad_pattern(q):
    """The compiled pass that computes the four sections ``q`` (shape (4, 6)) exactly:
    :data:`QUAD_UNIT`, :data:`QUAD_BANDPASS_HEAD` or :data:`QUAD_GENERAL`."""
    k1 = section_kind(q[1])
    k2 = section_kind(q[2])
    k3 = section_kind(q[3])
    if k1 != SECTION_UNIT or k2 != SECTION_UNIT or k3 != SECTION_UNIT:
        return QUAD_GENERAL
    k0 = section_kind(q[0])
    if k0 == SECTION_UNIT:
        return QUAD_UNIT
    if k0 == SECTION_SYMMETRIC:
        return QUAD_BANDPASS_HEAD
    return QUAD_GENERAL


@jit
def _quad_to(src, dst, q, z, c0, c1):
    """Apply sections ``q[0..3]`` (shape (4, 6)) with state ``z`` (shape (4, 2, C)) from
    ``src`` to ``dst`` (both (T, C); may be the same array), channels ``c0 <= c < c1``."""
    pattern = quad_pattern(q)
    acc = z[0, 0]  # not used by a pass that stores its output
    if pattern == QUAD_BANDPASS_HEAD:
        _quad(src, dst, q, z, acc, c0, c1, _S, _U, _U, _U, False)
    elif pattern == QUAD_UNIT:
        _quad(src, dst, q, z, acc, c0, c1, _U, _U, _U, _U, False)
    else:
        _quad(src, dst, q, z, acc, c0, c1, _G, _G, _G, _G, False)


@jit
def _quad_power(src, q, z, acc, c0, c1):
    """Like :func:`_quad_to` but, instead of storing the output, set
    ``acc[c] = sum_t y[t, c] ** 2`` for ``c0 <= c < c1``."""
    pattern = quad_pattern(q)
    if pattern == QUAD_BANDPASS_HEAD:
        _quad(src, src, q, z, acc, c0, c1, _S, _U, _U, _U, True)
    elif pattern == QUAD_UNIT:
        _quad(src, src, q, z, acc, c0, c1, _U, _U, _U, _U, True)
    else:
        _quad(src, src, q, z, acc, c0, c1, _G, _G, _G, _G, True)


@jit
def _cascade_quads(src, dst, tmp, sos, z, c0, c1):
    """Apply a padded cascade ``sos`` (shape (4*k, 6)) with state ``z`` (4*k, 2, C) to
    channels ``c0 <= c < c1`` of ``src``, leaving the result in ``dst``.

    Passes alternate between ``dst`` and ``tmp`` so that no pass filters in place (an in-place
    pass defeats the vectoriser's aliasing check). ``src``, ``dst`` and ``tmp`` must be three
    distinct arrays of shape (T, C).
    """
    n_quads = sos.shape[0] // 4
    prev = src
    for i in range(n_quads):
        s = 4 * i
        target = dst if (n_quads - 1 - i) % 2 == 0 else tmp
        _quad_to(prev, target, sos[s:s + 4], z[s:s + 4], c0, c1)
        prev = target


@jit
def _bank_tile(x, bank_sos, bank_z, work, acc, eps, out, c0, c1):
    """Every band of the filter bank on channels ``c0 <= c < c1`` (one cache tile)."""
    n_samples, n_channels = x.shape
    n_bands = bank_sos.shape[0]
    n_sections = bank_sos.shape[1]
    inv = 1.0 / n_samples
    last = n_sections - 4
    for b in range(n_bands):
        sos_b = bank_sos[b]
        z_b = bank_z[b]
        if last == 0:
            _quad_power(x, sos_b[0:4], z_b[0:4], acc, c0, c1)
        else:
            _cascade_quads(x, work[0], work[1], sos_b[0:last], z_b[0:last], c0, c1)
            _quad_power(work[0], sos_b[last:], z_b[last:], acc, c0, c1)
        base = b * n_channels
        for c in range(c0, c1):
            out[base + c] = np.log(acc[c] * inv + eps)


@jit
def filterbank_log_power(x, bank_sos, bank_z, work, acc, eps, out):
    """Band-pass filter bank and log mean power of one hop, state carried across hops.

    Cache-blocked: the channels are cut into tiles of :data:`TILE_CHANNELS`, and every band
    (every section) runs over one tile before the next tile is touched, so that a tile's
    samples and filter states stay in cache however many channels there are. Each channel
    sees exactly the same arithmetic as without tiling (results are bit-identical).

    Parameters
    ----------
    x : ndarray, shape (hop, n_channels), float64
        One hop of (already referenced / notched) samples. Not modified.
    bank_sos : ndarray, shape (n_bands, 4*k, 6), float64
        SOS per band, padded to a multiple of four sections.
    bank_z : ndarray, shape (n_bands, 4*k, 2, n_channels), float64
        Filter state, updated in place.
    work : ndarray, shape (2, hop, n_channels), float64
        Scratch (used when a band has more than four sections); must not contain ``x``.
    acc : ndarray, shape (n_channels,), float64
        Scratch.
    eps : float
        Power floor added before the log.
    out : ndarray, shape (n_bands * n_channels,), float64
        Band-major features: ``out[b * n_channels + c] = log(mean_t y_b[t, c]**2 + eps)``.
    """
    n_channels = x.shape[1]
    for c0 in range(0, n_channels, TILE_CHANNELS):
        c1 = min(c0 + TILE_CHANNELS, n_channels)
        _bank_tile(x, bank_sos, bank_z, work, acc, eps, out, c0, c1)


@jit
def _reset_nonfinite(out, n_channels, notch_z, bank_z):
    """Zero the filter state of every channel whose features are not finite.

    Returns the number of channels reset. A NaN or infinity that entered an IIR state would
    stay there forever; resetting lets the next clean hop decode again (after the filter's
    transient) while this hop's non-finite features mark it invalid downstream.
    """
    n_features = out.shape[0]
    n_bands = n_features // n_channels
    n_reset = 0
    for c in range(n_channels):
        bad = False
        for b in range(n_bands):
            v = out[b * n_channels + c]
            if not np.isfinite(v):
                bad = True
        if bad:
            n_reset += 1
            for s in range(notch_z.shape[0]):
                notch_z[s, 0, c] = 0.0
                notch_z[s, 1, c] = 0.0
            for b in range(bank_z.shape[0]):
                for s in range(bank_z.shape[1]):
                    bank_z[b, s, 0, c] = 0.0
                    bank_z[b, s, 1, c] = 0.0
    return n_reset


@jit
def pipeline_step(x, car_index, notch_sos, notch_z, bank_sos, bank_z, work, acc, eps, out):
    """One hop of the whole feature pipeline: CAR, notch, filter bank, log power.

    Parameters
    ----------
    x : ndarray, shape (hop, n_channels), float64
        Raw samples of one hop (not modified).
    car_index : ndarray, shape (n_ref,), int64
        Distinct reference channels for the common average; empty to skip CAR.
    notch_sos : ndarray, shape (4*m, 6), float64
        Notch cascade padded to a multiple of four sections; ``m = 0`` to skip.
    notch_z : ndarray, shape (4*m, 2, n_channels), float64
        Notch state, updated in place.
    bank_sos, bank_z : see :func:`filterbank_log_power`.
    work : ndarray, shape (4, hop, n_channels), float64
        Scratch: [0] referenced hop, [1] notched hop, [1..3] ping-pong passes.
    acc : ndarray, shape (n_channels,), float64
        Scratch.
    eps : float
        Power floor added before the log.
    out : ndarray, shape (n_bands * n_channels,), float64
        Band-major log powers.

    Returns
    -------
    int
        Number of channels whose state was reset because their features were not finite.
    """
    n_channels = x.shape[1]
    src = x
    if car_index.shape[0] == n_channels:
        car(x, work[0])
        src = work[0]
    elif car_index.shape[0] > 0:
        car_subset(x, car_index, work[0])
        src = work[0]
    # cache-blocked: notch and every band run over one channel tile before the next
    bank_work = work[2:4]
    for c0 in range(0, n_channels, TILE_CHANNELS):
        c1 = min(c0 + TILE_CHANNELS, n_channels)
        tile_src = src
        if notch_sos.shape[0] > 0:
            _cascade_quads(src, work[1], work[2], notch_sos, notch_z, c0, c1)
            tile_src = work[1]
        _bank_tile(tile_src, bank_sos, bank_z, bank_work, acc, eps, out, c0, c1)
    n_bad = 0
    for i in range(out.shape[0]):
        if not np.isfinite(out[i]):
            n_bad += 1
    if n_bad == 0:
        return 0
    return _reset_nonfinite(out, n_channels, notch_z, bank_z)


@jit
def pipeline_process(x, hop, car_index, notch_sos, notch_z, bank_sos, bank_z, work, acc, eps,
                     out):
    """Run :func:`pipeline_step` over consecutive hops of a long signal.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_channels), float64
    hop : int
        Samples per hop; ``out.shape[0] * hop <= n_samples`` (trailing samples are ignored).
    out : ndarray, shape (n_hops, n_features), float64
    Other parameters as in :func:`pipeline_step` (states are updated in place).

    Returns
    -------
    int
        Total number of channel resets over all hops.
    """
    n_hops = out.shape[0]
    n_reset = 0
    for h in range(n_hops):
        n_reset += pipeline_step(x[h * hop:(h + 1) * hop], car_index, notch_sos, notch_z,
                                 bank_sos, bank_z, work, acc, eps, out[h])
    return n_reset
