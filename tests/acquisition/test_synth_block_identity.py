"""The vectorised synthetic patient is bit-identical to the scalar kernel it replaced.

``synth_block_v1`` (a frozen copy of the scalar kernel) is the reference: every sample
(compared as bytes, so ``-0.0``, ``nan`` and ``inf`` count), every label and every carried
state must match, for random small models (shared and distinct filters, identity padding,
lead fields with explicit zero weights, integer and non-integer mains, the mains table's
limit, artifacts of every kind, any block cutting) and for the real presets over 60 s.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from synth_block_v1 import synth_block_v1

from neuroloop.acquisition import _synth_kernels as K
from neuroloop.acquisition.synthetic import SyntheticSource


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint64 if a.dtype == np.float64 else a.dtype)


def _assert_identical(got: np.ndarray, ref: np.ndarray, what: str,
                      any_nan: bool = False) -> None:
    """Equal as bytes; with ``any_nan``, a nan equals any nan (when two different nans meet,
    IEEE 754 leaves open which one an operation returns, and the compiler may swap the
    operands of a commutative one)."""
    assert got.shape == ref.shape, what
    differs = _bits(got) != _bits(ref)
    if any_nan:
        differs &= ~(np.isnan(got) & np.isnan(ref))
    if not differs.any():
        return
    bad = np.argwhere(differs)
    at = tuple(bad[0])
    raise AssertionError(f"{what} differs at {len(bad)} places, first {at}: "
                         f"{got[at]!r} != {ref[at]!r}")


class _Model:
    """A random small patient model and its two argument packings."""

    def __init__(self, seed: int, n_src: int, n_ch: int, max_sec: int, n_filters: int,
                 n_harm: int, integer_mains: bool, n_events: int, first_index: int,
                 n_total: int, unstable: bool) -> None:
        rng = np.random.default_rng(seed)
        specials = np.array([0.0, -0.0, 1.0, -1.0, 0.5])

        def coef(size: tuple[int, ...]) -> np.ndarray:
            c = rng.uniform(-0.9, 0.9, size) * (1e3 if unstable else 1.0)
            pick = rng.random(size) < 0.15
            c[pick] = rng.choice(specials, size=int(pick.sum()))
            return c

        # a pool of cascades shared by runs of sources (and some scattered reuse)
        pool = coef((n_filters, max_sec, 6))
        pool[:, :, 3] = 1.0
        if not unstable:  # keep |a1|, |a2| in the stable triangle
            pool[:, :, 5] = np.clip(pool[:, :, 5], -0.9, 0.9) * 0.9
            pool[:, :, 4] = np.clip(pool[:, :, 4], -0.9, 0.9) * (1.0 + pool[:, :, 5]) * 0.9
        which = np.sort(rng.integers(0, n_filters, n_src))
        which[rng.random(n_src) < 0.2] = rng.integers(0, n_filters)
        sos = pool[which]
        n_sections = rng.integers(0, max_sec + 1, n_src).astype(np.int64)
        n_sections[which == which[0]] = n_sections[0]  # identical runs stay identical
        self.packed = K.pack_sections(sos, n_sections)

        # source-major CSR lead field with explicit zero and negative weights
        cols_ch, cols_w, ptr = [], [], [0]
        for _ in range(n_src):
            chs = np.flatnonzero(rng.random(n_ch) < 0.6)
            w = rng.normal(0.0, 2.0, chs.shape[0])
            w[rng.random(chs.shape[0]) < 0.1] = 0.0
            cols_ch.append(chs)
            cols_w.append(w)
            ptr.append(ptr[-1] + chs.shape[0])
        mix_ptr = np.array(ptr, np.int64)
        mix_ch = np.concatenate(cols_ch).astype(np.int64)
        mix_w = np.concatenate(cols_w).astype(np.float64)
        self.lf = K.lead_field_by_channel(mix_ptr, mix_ch, mix_w, n_ch)
        self.slots = K.lead_field_slots(*self.lf, n_src)

        n_states = int(rng.integers(1, 4))
        self.logmod = rng.normal(0.0, 0.5, (n_states, n_src))
        self.logmod[0] = 0.0
        seg_len = rng.integers(1, max(2, n_total // 2), 6)
        self.onsets = np.concatenate([[0], first_index + np.cumsum(seg_len)]).astype(np.int64)
        self.states = rng.integers(0, n_states, self.onsets.shape[0]).astype(np.int8)
        self.strengths = rng.uniform(0.5, 1.5, self.onsets.shape[0])
        self.env_alpha = float(rng.uniform(0.01, 1.0))

        self.fs = float(rng.integers(20, 1000)) if integer_mains else float(rng.uniform(20, 999))
        if integer_mains:
            self.line_hz = rng.integers(0, int(self.fs) // 2, n_harm).astype(np.float64)
        else:
            self.line_hz = rng.uniform(0.0, self.fs / 2, n_harm)
        self.line_a = rng.normal(0.0, 5.0, (n_harm, n_ch))
        self.line_b = rng.normal(0.0, 5.0, (n_harm, n_ch))
        self.mains = K.mains_table(self.line_hz, self.line_a, self.line_b, self.fs)
        self.rail_uv = float(rng.choice([np.inf, 1e300, 20.0, 5.0]))

        ev_on = np.sort(first_index + rng.integers(0, n_total, n_events)).astype(np.int64)
        self.ev = dict(
            ev_onset=ev_on, ev_len=rng.integers(1, n_total + 1, n_events).astype(np.int64),
            ev_kind=rng.integers(0, 3, n_events).astype(np.int8),
            ev_amp=rng.normal(0.0, 30.0, n_events), ev_tau=rng.uniform(0.5, 20.0, n_events),
            ev_w=np.where(rng.random((n_events, n_ch)) < 0.5, rng.uniform(0.2, 1.0,
                                                                          (n_events, n_ch)), 0.0),
        )
        self.n_src, self.n_ch = n_src, n_ch
        self.rng0 = K.xoshiro_seed_state(seed, 1)

    def state(self) -> dict[str, np.ndarray]:
        return dict(cursor=np.array([0, 0, -1], np.int64), rng=self.rng0.copy(),
                    zi=np.zeros((self.packed.shape[0], 2, self.n_src)),
                    envelope=np.ones((2, self.n_src)),
                    ev_hold=np.zeros((self.ev["ev_onset"].shape[0], self.n_ch)))

    def run_v1(self, first: int, sizes: list[int]) -> tuple[np.ndarray, ...]:
        st_ = self.state()
        scratch = np.zeros((2, self.n_src))
        return self._run(first, sizes, st_, lambda n, i, out, lab: synth_block_v1(
            n, i, out, lab, self.onsets, self.states, self.strengths, st_["cursor"],
            st_["rng"], self.packed, st_["zi"], self.logmod, st_["envelope"][0],
            st_["envelope"][1],
            self.env_alpha, *self.lf, self.line_hz, self.line_a, self.line_b, self.fs,
            self.rail_uv, self.ev["ev_onset"], self.ev["ev_len"], self.ev["ev_kind"],
            self.ev["ev_amp"], self.ev["ev_tau"], self.ev["ev_w"], st_["ev_hold"], scratch))

    def run_new(self, first: int, sizes: list[int]) -> tuple[np.ndarray, ...]:
        st_ = self.state()
        runs = K.source_runs(self.packed)
        scratch = np.full(self.n_src + 1, np.nan)  # the kernel must reset the pad source
        return self._run(first, sizes, st_, lambda n, i, out, lab: K.synth_block(
            n, i, out, lab, self.onsets, self.states, self.strengths, st_["cursor"],
            st_["rng"], *runs, st_["zi"], self.logmod, st_["envelope"],
            self.env_alpha, *self.slots, self.line_hz, self.line_a, self.line_b,
            self.mains, self.fs, self.rail_uv, self.ev["ev_onset"], self.ev["ev_len"],
            self.ev["ev_kind"], self.ev["ev_amp"], self.ev["ev_tau"], self.ev["ev_w"],
            st_["ev_hold"], scratch))

    def _run(self, first: int, sizes: list[int], st_: dict[str, np.ndarray],
             call: object) -> tuple[np.ndarray, ...]:
        total = sum(sizes)
        out = np.full((total, self.n_ch), 123.0)
        lab = np.full(total, -7, np.int8)
        pos = 0
        for n in sizes:
            part = np.full((n + 2, self.n_ch), -5.0)  # larger than n: rows past n untouched
            plab = np.full(n + 2, -3, np.int8)
            call(n, first + pos, part, plab)  # type: ignore[operator]
            assert np.all(part[n:] == -5.0) and np.all(plab[n:] == -3)
            out[pos:pos + n] = part[:n]
            lab[pos:pos + n] = plab[:n]
            pos += n
        return (out, lab, st_["zi"], st_["envelope"], st_["rng"], st_["cursor"],
                st_["ev_hold"])


def _cuts(rng: np.random.Generator, total: int) -> list[int]:
    sizes = []
    while total > 0:
        n = int(min(total, rng.choice([1, 2, 3, 7, 59, rng.integers(1, 80)])))
        sizes.append(n)
        total -= n
    return sizes


@given(seed=st.integers(0, 2**32 - 1), n_src=st.integers(1, 14), n_ch=st.integers(1, 9),
       max_sec=st.integers(1, 4), n_filters=st.integers(1, 3), n_harm=st.integers(0, 3),
       integer_mains=st.booleans(), n_events=st.integers(0, 6),
       near_limit=st.booleans(), unstable=st.booleans(), n_total=st.integers(1, 160))
def test_random_models_are_bit_identical(seed: int, n_src: int, n_ch: int, max_sec: int,
                                         n_filters: int, n_harm: int, integer_mains: bool,
                                         n_events: int, near_limit: bool, unstable: bool,
                                         n_total: int) -> None:
    first = 0
    if near_limit:  # straddle the sample where the mains table stops holding
        m = _Model(seed, n_src, n_ch, max_sec, n_filters, n_harm, integer_mains, 0, 0,
                   n_total, unstable)
        limit = K.mains_table_limit(m.line_hz) if m.mains.shape[0] else 0
        first = max(0, min(limit, 2**62) - n_total // 2)
    m = _Model(seed, n_src, n_ch, max_sec, n_filters, n_harm, integer_mains, n_events,
               first, n_total, unstable)
    rng = np.random.default_rng(seed + 1)
    ref = m.run_v1(first, [n_total])
    got = m.run_new(first, _cuts(rng, n_total))
    for name, g, r in zip(("out", "labels", "zi", "envelope", "rng", "cursor", "ev_hold"), got, ref,
                          strict=True):
        _assert_identical(g, r, name)


def _v1_stream(src: SyntheticSource, n: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples 0..n-1 of a fresh source by the scalar reference, ``hop`` at a time."""
    mdl = src._model
    a = src.artifacts
    s = src.schedule
    src._ensure_horizon(n)
    cursor = np.array([0, 0, -1], np.int64)
    rng = src._rng.copy()
    sos = K.pack_sections(mdl.sos, mdl.n_sections)
    zi = np.zeros_like(src._zi)
    env = np.ones(mdl.sos.shape[0])
    target = np.ones(mdl.sos.shape[0])
    lf = K.lead_field_by_channel(mdl.mix_ptr, mdl.mix_ch, mdl.mix_w, src.info.n_channels)
    hold = a.hold.copy()
    scratch = np.zeros((2, mdl.sos.shape[0]))
    out = np.empty((n, src.info.n_channels))
    lab = np.empty(n, np.int8)
    for i in range(0, n, hop):
        k = min(hop, n - i)
        synth_block_v1(k, i, out[i:i + k], lab[i:i + k], s.onsets, s.states, s.strengths,
                       cursor, rng, sos, zi, mdl.logmod, env, target, src._env_alpha, *lf,
                       mdl.line_hz, mdl.line_a, mdl.line_b, src.info.sampling_rate_hz,
                       src.rail_uv, a.onset, a.length, a.kind, a.amp, a.tau, a.weights, hold,
                       scratch)
    return out, lab


@pytest.mark.parametrize(("preset", "options"), [
    ("bsi", {}),
    ("bsi", {"artifact_rate_per_min": 30.0, "line_hz": 60.0, "snr": 2.0}),
    ("bsi", {"line_hz": 50.5, "seed": 3}),  # non-integer mains: computed per sample
    ("bsi", {"line_hz": 0.0, "segment": 1, "patient": 2}),
    ("eeg-bci", {}),
    ("eeg-bci", {"artifact_rate_per_min": 30.0, "line_hz": 60.0, "seed": 5}),
])
def test_presets_are_bit_identical_over_60_s(preset: str, options: dict[str, float]) -> None:
    seconds = 60.0
    src = SyntheticSource(preset, duration_s=seconds, max_block_samples=997, **options)
    n = src.n_samples_total
    assert n is not None
    ref_out, ref_lab = _v1_stream(SyntheticSource(preset, duration_s=seconds, **options), n,
                                  hop=59)
    got = np.empty_like(ref_out)
    lab = np.empty(n, np.int8)
    pos = 0
    cut = np.random.default_rng(n)
    with src:
        while pos < n:
            block = src.read(int(cut.choice([1, 25, 59, 60, 997, cut.integers(1, 400)])))
            assert block is not None
            got[pos:pos + block.n_samples] = block.data
            lab[pos:pos + block.n_samples] = block.labels
            pos += block.n_samples
    _assert_identical(got, ref_out, "samples")
    _assert_identical(lab, ref_lab, "labels")


def test_preset_plans_use_runs_slots_and_a_mains_table() -> None:
    """The layouts the speed depends on (not needed for identity): bsi has 3 filter runs,
    no gather slot and a mains table of one 293-sample period (586 Hz / gcd(586, 50))."""
    bsi = SyntheticSource("bsi")
    assert bsi._runs[0].tolist() == [0, 65, 129, 193]
    assert K.SLOT_GATHER not in bsi._slots[0][:, 0]
    assert bsi._mains.shape == (293, 64)
    eeg = SyntheticSource("eeg-bci")
    assert K.SLOT_GATHER not in eeg._slots[0][:, 0]
    assert eeg._mains.shape == (5, 32)
    assert SyntheticSource("bsi", line_hz=50.5)._mains.shape[0] == 0


_SPECIALS = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e308, -1e308]


@given(x=st.lists(st.sampled_from(_SPECIALS) | st.floats(allow_nan=True), min_size=1,
                  max_size=9),
       z=st.lists(st.sampled_from(_SPECIALS), min_size=6, max_size=6),
       real=st.lists(st.sampled_from([0.0, -0.0, 1.0, -0.5, 0.3, 2.0, np.nan]), min_size=12,
                     max_size=12),
       third=st.sampled_from(["identity", "negative-zero", "real"]))
def test_fused_sections_match_one_section_passes(x: list[float], z: list[float],
                                                 real: list[float], third: str) -> None:
    """``_three_sections`` (one pass) against three ``_one_section`` passes, identity padding
    included, on zeros of both signs, infinities, nan and subnormals (nan coefficients and
    nan inputs of other payloads: which nan comes out is not compared)."""
    sos = np.zeros((3, 6))
    sos[:2, [0, 1, 2, 4, 5]] = np.array(real).reshape(2, 6)[:, :5]
    sos[:, 3] = 1.0
    sos[2] = {"identity": [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
              "negative-zero": [1.0, -0.0, 0.0, 1.0, 0.0, 0.0],
              "real": [0.5, 0.25, -0.125, 1.0, 0.5, 0.25]}[third]
    n = len(x)
    xv = np.array(x)
    zi = np.repeat(np.array(z).reshape(3, 2, 1), n, axis=2)
    x1, z1 = xv.copy(), zi.copy()
    for sec in range(3):
        K._one_section(x1, z1, sos, sec, 0, n)
    x3, z3 = xv.copy(), zi.copy()
    K._three_sections(x3, z3, sos, 0, 0, n)
    _assert_identical(x3, x1, "signal", any_nan=True)
    _assert_identical(z3, z1, "states", any_nan=True)
