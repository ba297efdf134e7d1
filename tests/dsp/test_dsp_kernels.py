"""Every DSP kernel against its SciPy/NumPy reference (tests/reference.py), float64, rtol 1e-6.

Hypothesis drives shapes, filter designs and hop splits: carrying state across any split of
the signal into hops must equal one-shot ``scipy.signal.sosfilt``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from reference import FilterBankLogPowerRef, car_ref, log_power_ref

from neuroloop.dsp import _kernels
from neuroloop.dsp.features import LOG_POWER_EPS
from neuroloop.dsp.filters import (
    CommonAverageReference,
    StreamingSOSFilter,
    design_bandpass_sos,
    design_notch_sos,
    pad_sections,
)

RTOL = 1e-6


def _splits(draw: st.DrawFn, n: int, max_parts: int = 6) -> list[int]:
    """Sorted cut points splitting range(n) into hops of arbitrary, possibly unequal, length."""
    cuts = draw(st.lists(st.integers(1, max(1, n - 1)), max_size=max_parts, unique=True))
    return [0, *sorted(c for c in cuts if 0 < c < n), n]


@st.composite
def signals(draw: st.DrawFn, max_samples: int = 300, max_channels: int = 9) -> np.ndarray:
    n = draw(st.integers(2, max_samples))
    c = draw(st.integers(1, max_channels))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0, 1e4]))
    return np.random.default_rng(seed).standard_normal((n, c)) * scale


@st.composite
def bandpass_designs(draw: st.DrawFn) -> tuple[np.ndarray, float]:
    fs = draw(st.sampled_from([160.0, 250.0, 586.0, 1000.0]))
    nyq = fs / 2
    lo = draw(st.floats(1.0, nyq * 0.7))
    hi = draw(st.floats(lo + 1.0, nyq * 0.95))
    order = draw(st.integers(1, 6))
    return design_bandpass_sos((lo, hi), order, fs), fs


# ---------------------------------------------------------------------------------------- CAR
@given(signals())
def test_car_matches_reference(x: np.ndarray) -> None:
    out = np.empty_like(x)
    _kernels.car(x, out)
    assert_allclose(out, car_ref(x), rtol=RTOL, atol=1e-12 * np.abs(x).max())


@given(signals(), st.data())
def test_car_subset_matches_reference(x: np.ndarray, data: st.DataObject) -> None:
    c = x.shape[1]
    ref = data.draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=c, unique=True))
    out = CommonAverageReference(c, ref).apply(x)
    assert_allclose(out, car_ref(x, ref), rtol=RTOL, atol=1e-12 * np.abs(x).max())


def test_car_in_place_equals_out_of_place() -> None:
    x = np.random.default_rng(0).standard_normal((50, 8))
    expected = car_ref(x)
    _kernels.car(x, x)
    assert_allclose(x, expected, rtol=RTOL, atol=1e-12)


# ------------------------------------------------------------------------------ SOS streaming
@given(signals(), bandpass_designs(), st.data())
def test_streaming_sos_any_split_equals_one_shot_sosfilt(x: np.ndarray, design: tuple,
                                                         data: st.DataObject) -> None:
    sos, _fs = design
    cuts = _splits(data.draw, x.shape[0])
    filt = StreamingSOSFilter(sos, x.shape[1])
    y = np.vstack([filt.step(np.ascontiguousarray(x[a:b])) for a, b in zip(cuts, cuts[1:],
                                                                            strict=False)])
    y_ref, zf = scipy.signal.sosfilt(sos, x, axis=0, zi=np.zeros((sos.shape[0], 2, x.shape[1])))
    scale = np.abs(y_ref).max()
    assert_allclose(y, y_ref, rtol=RTOL, atol=1e-12 * scale)
    # the carried state is SciPy's zi, unchanged in layout
    assert_allclose(filt.state, zf, rtol=RTOL, atol=1e-12 * scale)


@given(signals(max_samples=120), st.data())
def test_notch_cascade_streaming_equals_sosfilt(x: np.ndarray, data: st.DataObject) -> None:
    fs = data.draw(st.sampled_from([250.0, 586.0, 1000.0]))
    line = data.draw(st.sampled_from([50.0, 60.0]))
    q = data.draw(st.floats(5.0, 60.0))
    sos = design_notch_sos([line], q, fs)
    cuts = _splits(data.draw, x.shape[0])
    filt = StreamingSOSFilter(sos, x.shape[1])
    y = np.vstack([filt.step(np.ascontiguousarray(x[a:b])) for a, b in zip(cuts, cuts[1:],
                                                                            strict=False)])
    y_ref = scipy.signal.sosfilt(sos, x, axis=0)
    assert_allclose(y, y_ref, rtol=RTOL, atol=1e-12 * np.abs(y_ref).max())


def test_sos_stream_in_place() -> None:
    x = np.random.default_rng(1).standard_normal((40, 3))
    sos = design_bandpass_sos((10, 40), 3, 250.0)
    expected = scipy.signal.sosfilt(sos, x, axis=0)
    z = np.zeros((sos.shape[0], 2, 3))
    _kernels.sos_stream(x, sos, z, x)
    assert_allclose(x, expected, rtol=RTOL, atol=1e-14)


def test_identity_padding_is_bit_exact() -> None:
    """Padded identity sections leave a finite signal unchanged, bit for bit."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 5)) * 30
    sos = design_bandpass_sos((13, 30), 2, 250.0)
    padded = pad_sections(sos)
    assert padded.shape == (4, 6)
    y1 = np.empty_like(x)
    y2 = np.empty_like(x)
    _kernels.sos_stream(x, sos, np.zeros((2, 2, 5)), y1)
    _kernels.sos_stream(x, padded, np.zeros((4, 2, 5)), y2)
    assert np.array_equal(y1, y2)


# ------------------------------------------------------------------- section kinds (fast path)
def test_section_kinds_of_butterworth_bandpass_and_notch() -> None:
    """A Butterworth band-pass is ``[k, 2k, k]`` then ``[1, +-2, 1]``: the fast passes apply."""
    head = design_bandpass_sos((8, 12), 4, 586.0)
    assert [_kernels.section_kind(r) for r in head] == [
        _kernels.SECTION_SYMMETRIC, *[_kernels.SECTION_UNIT] * 3]
    assert _kernels.quad_pattern(head) == _kernels.QUAD_BANDPASS_HEAD
    order8 = design_bandpass_sos((8, 12), 8, 586.0)
    assert _kernels.quad_pattern(order8[4:8]) == _kernels.QUAD_UNIT
    notch = pad_sections(design_notch_sos([50.0, 100.0, 150.0], 30.0, 586.0))
    assert {_kernels.quad_pattern(notch[s:s + 4]) for s in range(0, len(notch), 4)} == {
        _kernels.QUAD_GENERAL}
    general = head.copy()
    general[1, 2] = 0.5  # b2 != b0: the generic pass
    assert _kernels.quad_pattern(general) == _kernels.QUAD_GENERAL
    zero = head.copy()
    zero[0, [0, 2]] = 0.0  # 0 * x is not x: never a symmetric or unit section
    assert _kernels.section_kind(zero[0]) == _kernels.SECTION_GENERAL


@given(signals(max_channels=20), st.sampled_from([1, 2, 4, 8]), st.booleans(),
       st.integers(0, 3))
def test_every_quad_pass_computes_sosfilt_bits(x: np.ndarray, order: int, power: bool,
                                               c0: int) -> None:
    """Each pass (general, band-pass head, unit) gives exactly ``scipy.signal.sosfilt``'s bits
    on its channel range, with the output stored or squared and summed, state carried."""
    sos = pad_sections(design_bandpass_sos((13, 30), order, 250.0))
    c0 = min(c0, x.shape[1] - 1)
    c1 = x.shape[1]
    z = np.zeros((sos.shape[0], 2, c1))
    zi = np.zeros((sos.shape[0], 2, c1 - c0))
    half = x.shape[0] // 2
    for part in (x[:half], x[half:]):
        part = np.ascontiguousarray(part)
        expected, zi = scipy.signal.sosfilt(sos, part[:, c0:], axis=0, zi=zi)
        y = part.copy()
        for s in range(0, sos.shape[0], 4):
            if power and s + 4 == sos.shape[0]:
                acc = np.zeros(c1)
                _kernels._quad_power(y, sos[s:s + 4], z[s:s + 4], acc, c0, c1)
                # the kernel sums in time order, as cumsum does
                assert np.array_equal(acc[c0:], np.cumsum(expected ** 2, axis=0)[-1])
            else:
                out = np.zeros_like(y)
                _kernels._quad_to(y, out, sos[s:s + 4], z[s:s + 4], c0, c1)
                y = out
        if not power:
            assert np.array_equal(y[:, c0:], expected)
        assert np.array_equal(z[:, :, c0:], zi)


# --------------------------------------------------------------------------------- log power
@given(signals())
def test_log_power_matches_reference(y: np.ndarray) -> None:
    out = np.empty(y.shape[1])
    _kernels.log_power(y, LOG_POWER_EPS, out)
    assert_allclose(out, log_power_ref(y, LOG_POWER_EPS), rtol=RTOL, atol=1e-12)


def test_log_power_of_flat_channel_is_finite_floor() -> None:
    out = np.empty(2)
    _kernels.log_power(np.zeros((10, 2)), LOG_POWER_EPS, out)
    assert_allclose(out, np.log(LOG_POWER_EPS))


# ------------------------------------------------------------------------- fused filter bank
@st.composite
def banks(draw: st.DrawFn) -> tuple[list[np.ndarray], float]:
    fs = draw(st.sampled_from([160.0, 250.0, 586.0, 1000.0]))
    nyq = fs / 2
    order = draw(st.integers(1, 7))
    n_bands = draw(st.integers(1, 4))
    designs = []
    for _ in range(n_bands):
        lo = draw(st.floats(1.0, nyq * 0.7))
        hi = draw(st.floats(lo + 1.0, nyq * 0.95))
        designs.append(design_bandpass_sos((lo, hi), order, fs))
    return designs, fs


@given(signals(max_samples=240), banks(), st.data())
def test_filterbank_log_power_matches_reference_across_hops(x: np.ndarray, bank: tuple,
                                                            data: st.DataObject) -> None:
    designs, _fs = bank
    c = x.shape[1]
    bank_sos = np.stack([pad_sections(s) for s in designs])
    bank_z = np.zeros((len(designs), bank_sos.shape[1], 2, c))
    ref = FilterBankLogPowerRef(designs, c, LOG_POWER_EPS)
    cuts = _splits(data.draw, x.shape[0])
    for a, b in zip(cuts, cuts[1:], strict=False):
        hop = np.ascontiguousarray(x[a:b])
        work = np.zeros((2, b - a, c))
        out = np.empty(len(designs) * c)
        _kernels.filterbank_log_power(hop, bank_sos, bank_z, work, np.zeros(c), LOG_POWER_EPS,
                                      out)
        assert_allclose(out, ref.step(hop), rtol=RTOL, atol=1e-9)
    # the carried states equal SciPy's zi for every band (padding sections stay at zero)
    for k, f in enumerate(ref.filters):
        n = designs[k].shape[0]
        scale = max(1.0, np.abs(f.zi).max())
        assert_allclose(bank_z[k, :n], f.zi, rtol=RTOL, atol=1e-12 * scale)
        assert not np.any(bank_z[k, n:])


def test_bsi_bank_layout_is_band_major() -> None:
    """features[b * n_channels + c] belongs to band b, channel c."""
    fs, c, hop = 586.0, 4, 59
    designs = [design_bandpass_sos(b, 4, fs) for b in [(8, 12), (70, 90)]]
    bank_sos = np.stack(designs)
    t = np.arange(hop * 20) / fs
    x = np.zeros((t.size, c))
    x[:, 2] = 100 * np.sin(2 * np.pi * 80 * t)  # only channel 2, only in the 70-90 Hz band
    bank_z = np.zeros((2, 4, 2, c))
    out = np.empty(2 * c)
    for h in range(20):
        _kernels.filterbank_log_power(np.ascontiguousarray(x[h * hop:(h + 1) * hop]), bank_sos,
                                      bank_z, np.zeros((2, hop, c)), np.zeros(c),
                                      LOG_POWER_EPS, out)
    assert np.argmax(out) == 1 * c + 2
    assert out[1 * c + 2] > np.log(1000)  # most of the 5000 µV² sine power
    assert out[0 * c + 2] < out[1 * c + 2] - 5


@pytest.mark.parametrize("n_channels", [1, 3, 64])
def test_pipeline_step_resets_state_after_nonfinite_input(n_channels: int) -> None:
    """A NaN hop gives non-finite features, then the state is zeroed so decoding resumes."""
    fs, hop = 250.0, 25
    designs = [design_bandpass_sos((8, 13), 4, fs)]
    bank_sos = np.stack(designs)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((hop * 6, n_channels)) * 10
    bank_z = np.zeros((1, 4, 2, n_channels))
    notch = np.zeros((0, 6))
    notch_z = np.zeros((0, 2, n_channels))
    no_car = np.zeros(0, dtype=np.int64)
    work = np.zeros((4, hop, n_channels))
    out = np.empty(n_channels)
    for h in range(3):
        _kernels.pipeline_step(np.ascontiguousarray(x[h * hop:(h + 1) * hop]), no_car, notch,
                               notch_z, bank_sos, bank_z, work, np.zeros(n_channels),
                               LOG_POWER_EPS, out)
    bad = x[3 * hop:4 * hop].copy()
    bad[5, 0] = np.nan
    n_reset = _kernels.pipeline_step(bad, no_car, notch, notch_z, bank_sos, bank_z, work,
                                     np.zeros(n_channels), LOG_POWER_EPS, out)
    assert n_reset == 1
    assert not np.isfinite(out[0])
    assert np.all(np.isfinite(out[1:]))
    assert np.all(bank_z[0, :, :, 0] == 0.0)
    # channel 0 restarts from zero state; the others are unaffected
    ref_fresh = FilterBankLogPowerRef(designs, 1, LOG_POWER_EPS)
    ref_cont = FilterBankLogPowerRef(designs, n_channels, LOG_POWER_EPS)
    for h in range(4):
        ref_cont.step(np.ascontiguousarray(x[h * hop:(h + 1) * hop]))
    for h in range(4, 6):
        hop_x = np.ascontiguousarray(x[h * hop:(h + 1) * hop])
        _kernels.pipeline_step(hop_x, no_car, notch, notch_z, bank_sos, bank_z, work,
                               np.zeros(n_channels), LOG_POWER_EPS, out)
        assert_allclose(out[:1], ref_fresh.step(np.ascontiguousarray(hop_x[:, :1])), rtol=RTOL)
        if n_channels > 1:
            assert_allclose(out[1:], ref_cont.step(hop_x)[1:], rtol=RTOL)
