"""Compiled kernels of the synthetic patient (private; see :mod:`.synthetic`).

Random numbers
    ``xoshiro256**`` (Blackman & Vigna 2018) on an explicit ``uint64[4]`` state array, so
    that a stream is a pure function of its seed and never touches Numba's global
    ``np.random`` state. Normal deviates come from a 256-layer ziggurat (Marsaglia & Tsang
    2000, in Doornik's 2005 "ZIGNOR" form, which avoids the correlation of the original):
    one 64-bit draw gives both the layer (low 8 bits) and the abscissa (top 53 bits).
    Because every deviate is drawn in a fixed order (sample-major, then source), the stream
    does not depend on how the caller cuts it into blocks.

Signal synthesis
    :func:`synth_block` advances the patient model by ``n`` samples: for every source a
    white deviate goes through that source's SOS cascade (direct form II transposed, exactly
    the recursion of ``scipy.signal.sosfilt``; the states are carried across calls), is
    scaled by a smoothed task envelope and is gathered by the channels through a sparse
    lead field; line noise and artifacts are added and the result clipped at the
    amplifier rail.

Layouts for SIMD (built once, in Python)
    Within a sample the work runs as vectors, and every value is still computed by the same
    IEEE operations in the same order as the scalar recursion (no reassociation, no fused
    multiply-add), so the output is bit-identical to the plain loops whatever the vector
    width (``tests/acquisition/test_synth_block_identity.py`` checks it against the scalar
    kernel this one replaced):

    * :func:`source_runs` groups consecutive sources with the same cascade (the presets have
      three filters in three runs), so a run is filtered with scalar coefficients;
    * :func:`lead_field_slots` lays the lead field out in slots across channels, each slot a
      contiguous (diagonal), broadcast or gathered read of the sources, each channel still
      adding its sources in source order;
    * :func:`mains_table` tabulates one period of the mains when the sampling rate and the
      mains frequencies are whole numbers (the phase is then exactly periodic in the sample
      index), with the kernel's own code.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit

__all__ = [
    "ZIG_LAYERS", "ZIG_R", "ZIG_V", "ziggurat_tables", "xoshiro_seed_state",
    "splitmix64", "ARTIFACT_SPIKE", "ARTIFACT_SATURATION", "ARTIFACT_FLAT",
    "xoshiro_fill", "normal_fill", "fill_labels", "synth_block", "pack_sections",
    "lead_field_by_channel", "source_runs", "lead_field_slots", "mains_table",
    "MAINS_TABLE_MAX_ENTRIES", "mains_table_limit", "SLOT_GATHER", "SLOT_DIAGONAL",
    "SLOT_BROADCAST", "SLOT_HEADER",
]

_MASK64 = (1 << 64) - 1

#: Ziggurat constants for 256 layers (Marsaglia & Tsang 2000): tail start R and layer area V.
ZIG_LAYERS = 256
ZIG_R = 3.6541528853610088
ZIG_V = 0.00492867323399

#: Artifact kinds (``ev_kind`` codes of :func:`synth_block`).
ARTIFACT_SPIKE = 0
ARTIFACT_SATURATION = 1
ARTIFACT_FLAT = 2


def ziggurat_tables(
    n_layers: int = ZIG_LAYERS, r: float = ZIG_R, v: float = ZIG_V
) -> tuple[np.ndarray, np.ndarray]:
    """Layer edges and ratios of the normal ziggurat (Doornik 2005, ``zigNorInit``).

    Returns
    -------
    x : ndarray, shape (n_layers + 1,)
        Right edge of each layer; ``x[0] = V / f(R)`` is the base strip's virtual width,
        ``x[1] = R`` and ``x[n_layers] = 0``.
    ratio : ndarray, shape (n_layers,)
        ``x[i + 1] / x[i]``: a draw with ``|u| < ratio[i]`` lies inside the rectangle.
    """
    x = np.empty(n_layers + 1)
    f = math.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    x[n_layers] = 0.0
    for i in range(2, n_layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    ratio = x[1:] / x[:-1]
    return x, ratio


_ZIG_X, _ZIG_RATIO = ziggurat_tables()
_TWO_M53 = 1.0 / 9007199254740992.0


def splitmix64(value: int) -> tuple[int, int]:
    """One step of SplitMix64 (Steele et al. 2014) on Python ints.

    Returns ``(next_state, output)``; used to expand a seed into a xoshiro state, as the
    xoshiro authors recommend.
    """
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = value
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value, z ^ (z >> 31)


def xoshiro_seed_state(*keys: int) -> np.ndarray:
    """A ``uint64[4]`` xoshiro256** state derived from integer keys (seed, segment, stream).

    Each key is folded into a SplitMix64 chain, so ``(1, 0)`` and ``(0, 1)`` give unrelated
    streams. The state is never all zero.
    """
    acc = 0x6A09E667F3BCC909
    for k in keys:
        acc, out = splitmix64(acc ^ (int(k) & _MASK64))
        acc ^= out
    state = np.empty(4, dtype=np.uint64)
    for i in range(4):
        acc, out = splitmix64(acc)
        state[i] = out
    if not state.any():  # pragma: no cover - probability 2**-256
        state[0] = 1
    return state


# --------------------------------------------------------------------------------------------
# RNG primitives
# --------------------------------------------------------------------------------------------
@jit
def _rotl(x: np.uint64, k: np.uint64) -> np.uint64:
    return (x << k) | (x >> (np.uint64(64) - k))


@jit
def _next_u64(s: np.ndarray) -> np.uint64:
    """xoshiro256** step: returns the next 64-bit output and advances ``s`` in place."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s1 * np.uint64(5), np.uint64(7)) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, np.uint64(45))
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@jit
def _open_uniform(s: np.ndarray) -> float:
    """Uniform deviate in the open interval (0, 1) (safe for ``log``)."""
    return (float(np.int64(_next_u64(s) >> np.uint64(11))) + 0.5) * _TWO_M53


@jit
def _normal_slow(s: np.ndarray, u: float, i: np.int64, zx: np.ndarray, zr: np.ndarray) -> float:
    """Rest of the ZIGNOR ziggurat after the rectangle test of ``(u, i)`` failed.

    Callers inline the fast path (about 98.5 % of draws)::

        bits = _next_u64(s)
        u = 2.0 * float(np.int64(bits >> 11)) * 2**-53 - 1.0    # uniform in [-1, 1)
        i = np.int64(bits & 0xFF)                                # layer
        z = u * zx[i] if abs(u) < zr[i] else _normal_slow(s, u, i, zx, zr)

    (a non-inlined call per deviate costs Numba an order of magnitude in speed).
    """
    while True:
        if i == 0:
            # tail beyond R (Marsaglia 1964)
            while True:
                xt = math.log(_open_uniform(s)) / zx[1]
                yt = math.log(_open_uniform(s))
                if -2.0 * yt >= xt * xt:
                    break
            if u < 0.0:
                return xt - zx[1]
            return zx[1] - xt
        # wedge between layer i and i + 1
        xx = u * zx[i]
        f0 = math.exp(-0.5 * (zx[i] * zx[i] - xx * xx))
        f1 = math.exp(-0.5 * (zx[i + 1] * zx[i + 1] - xx * xx))
        if f1 + _open_uniform(s) * (f0 - f1) < 1.0:
            return xx
        # rejected: a fresh draw, starting with the rectangle test
        bits = _next_u64(s)
        u = 2.0 * (float(np.int64(bits >> np.uint64(11))) * _TWO_M53) - 1.0
        i = np.int64(bits & np.uint64(0xFF))
        if abs(u) < zr[i]:
            return u * zx[i]


@jit
def xoshiro_fill(state: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (uint64, 1-D) with successive xoshiro256** outputs; advances ``state``."""
    for i in range(out.shape[0]):
        out[i] = _next_u64(state)


@jit
def _normals_into(state: np.ndarray, out: np.ndarray, zx: np.ndarray, zr: np.ndarray) -> None:
    """Fill ``out`` (float64, 1-D) with standard normal deviates; advances ``state``.

    The xoshiro state lives in registers for the whole fill (a load and a store per draw
    would put a store-to-load round trip on the generator's dependency chain); it goes back
    to ``state`` around the rare slow path, which draws through the array.
    """
    s0 = state[0]
    s1 = state[1]
    s2 = state[2]
    s3 = state[3]
    for k in range(out.shape[0]):
        bits = _rotl(s1 * np.uint64(5), np.uint64(7)) * np.uint64(9)
        t = s1 << np.uint64(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, np.uint64(45))
        u = 2.0 * (float(np.int64(bits >> np.uint64(11))) * _TWO_M53) - 1.0
        i = np.int64(bits & np.uint64(0xFF))
        if abs(u) < zr[i]:
            out[k] = u * zx[i]
        else:
            state[0] = s0
            state[1] = s1
            state[2] = s2
            state[3] = s3
            out[k] = _normal_slow(state, u, i, zx, zr)
            s0 = state[0]
            s1 = state[1]
            s2 = state[2]
            s3 = state[3]
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3


@jit
def normal_fill(state: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (float64, 1-D) with standard normal deviates; advances ``state``."""
    _normals_into(state, out, _ZIG_X, _ZIG_RATIO)


# --------------------------------------------------------------------------------------------
# Schedule lookup
# --------------------------------------------------------------------------------------------
@jit
def fill_labels(onsets: np.ndarray, states: np.ndarray, first: int, n: int,
                out: np.ndarray) -> None:
    """Ground-truth state of samples ``first .. first + n - 1`` into ``out[:n]``.

    ``onsets`` (int64, increasing, ``onsets[0] == 0``) are segment starts and ``states``
    (int8) their states; samples past the last onset take the last state.
    """
    n_seg = onsets.shape[0]
    lo = 0
    hi = n_seg
    while hi - lo > 1:  # binary search: last onset <= first
        mid = (lo + hi) // 2
        if onsets[mid] <= first:
            lo = mid
        else:
            hi = mid
    seg = lo
    for k in range(n):
        idx = first + k
        while seg + 1 < n_seg and onsets[seg + 1] <= idx:
            seg += 1
        out[k] = states[seg]


# --------------------------------------------------------------------------------------------
# The patient model
# --------------------------------------------------------------------------------------------
@jit
def _update_targets(seg: int, states: np.ndarray, strengths: np.ndarray,
                    logmod: np.ndarray, target: np.ndarray) -> None:
    st = states[seg]
    g = strengths[seg]
    for src in range(target.shape[0]):
        target[src] = math.exp(g * logmod[st, src])


def pack_sections(sos: np.ndarray, n_sections: np.ndarray) -> np.ndarray:
    """Source filters in the layout :func:`synth_block` vectorises over.

    Parameters
    ----------
    sos : ndarray, shape (n_sources, max_sections, 6)
        Per-source SOS cascades (``a0 == 1``).
    n_sections : ndarray, shape (n_sources,)
        Sections in use per source.

    Returns
    -------
    ndarray, shape (max_sections, 6, n_sources)
        Coefficient-major, source-contiguous; unused sections are the identity
        ``[1, 0, 0, 1, 0, 0]`` (``y = x + z0`` with ``z0`` and ``z1`` staying zero, so the
        result is exactly that of skipping the section).
    """
    n_src, max_sec, _ = sos.shape
    packed = np.zeros((max_sec, 6, n_src))
    packed[:, 0, :] = 1.0
    packed[:, 3, :] = 1.0
    for src in range(n_src):
        for sec in range(int(n_sections[src])):
            packed[sec, :, src] = sos[src, sec]
    return packed


def lead_field_by_channel(mix_ptr: np.ndarray, mix_ch: np.ndarray, mix_w: np.ndarray,
                          n_channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source-major CSR lead field transposed to channel-major (gather form).

    Within a channel the entries keep their source order, so a channel sums its sources in
    exactly the order the source-major scatter would add them.

    Returns
    -------
    ptr : ndarray, shape (n_channels + 1,), int64
    src : ndarray, shape (nnz,), int64
    w : ndarray, shape (nnz,), float64
    """
    src_of = np.repeat(np.arange(mix_ptr.shape[0] - 1), np.diff(mix_ptr))
    order = np.argsort(mix_ch, kind="stable")
    counts = np.bincount(mix_ch, minlength=n_channels)
    ptr = np.zeros(n_channels + 1, np.int64)
    ptr[1:] = np.cumsum(counts)
    return ptr, src_of[order].astype(np.int64), np.ascontiguousarray(mix_w[order])


def source_runs(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group consecutive sources whose filters are bitwise identical (runs).

    :func:`synth_block` filters a run as one vector with scalar coefficients, which the
    compiler vectorises (a per-source coefficient would add five more pointers per loop).

    Parameters
    ----------
    sos : ndarray, shape (max_sections, 6, n_sources)
        Packed by :func:`pack_sections`.

    Returns
    -------
    run_ptr : ndarray, shape (n_runs + 1,), int64
        Run ``r`` is sources ``run_ptr[r] .. run_ptr[r + 1] - 1``.
    run_sos : ndarray, shape (n_runs, max_sections, 6), float64
        The cascade of each run (identity sections included, as packed).
    """
    n_sec, _, n_src = sos.shape
    cols = np.ascontiguousarray(np.moveaxis(sos, 2, 0))  # (n_src, n_sec, 6)
    bits = cols.view(np.uint64).reshape(n_src, -1)
    starts = [0] + [s for s in range(1, n_src) if not np.array_equal(bits[s], bits[s - 1])]
    run_ptr = np.array([*starts, n_src], np.int64)
    return run_ptr, np.ascontiguousarray(cols[run_ptr[:-1]]).reshape(-1, n_sec, 6)


#: Lead-field slot kinds (column 0 of a slot plan, see :func:`lead_field_slots`).
SLOT_GATHER = 0
SLOT_DIAGONAL = 1
SLOT_BROADCAST = 2
#: Columns of a slot plan before the sources: kind, offset, first channel, last channel + 1.
SLOT_HEADER = 4


def lead_field_slots(ptr: np.ndarray, src: np.ndarray, w: np.ndarray, n_sources: int,
                     min_share: float = 0.5
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The channel-major CSR lead field in slots, for SIMD across channels.

    Every channel adds its sources in source order (as in :func:`lead_field_by_channel`),
    one term per slot: slot ``s`` gives channel ``c`` the term
    ``slot_w[s, c] * signal[src]`` with ``src = slot_plan[s, SLOT_HEADER + c]``, or nothing
    (a gap, ``src == n_sources``). A slot is

    * *diagonal* (``SLOT_DIAGONAL``, offset ``d``): ``src == c + d`` for every kept
      channel, so the kernel reads the signal as a contiguous vector;
    * *broadcast* (``SLOT_BROADCAST``, offset ``d``): every kept channel reads source ``d``;
    * *gather* (``SLOT_GATHER``): any sources; a gap reads the pad source ``n_sources``
      (whose signal :func:`synth_block` keeps at ``+0.0``) with weight ``+0.0``.

    A gap adds exactly ``+0.0`` (a gather pad) or is skipped (diagonal and broadcast slots
    select ``+0.0`` instead of the term), and adding ``+0.0`` changes nothing: a sum that
    starts at ``+0.0`` is never ``-0.0`` (round to nearest), and ``nan``/``inf`` stay as they
    are. So the sums are bitwise those of the CSR gather, whatever the slot plan.

    The plan is greedy: each new slot takes, from every channel whose next unplaced entry
    fits, that entry; it is the diagonal or broadcast pattern that fits the most channels'
    next entries, or, when none fits at least ``min_share`` of the channels with entries
    left, a gather slot taking every channel's next entry. The bsi and eeg-bci presets need
    no gather slot.

    Returns
    -------
    slot_plan : ndarray, shape (n_slots, SLOT_HEADER + n_channels), int64
        ``[kind, offset, first channel, last channel + 1]`` (the channels the slot touches),
        then the source of each channel's term (``n_sources`` for a gap).
    slot_w : ndarray, shape (n_slots, n_channels), float64
        Weight of each term (microvolts per unit source; ``+0.0`` for a gap).
    """
    n_ch = ptr.shape[0] - 1
    entries = [[(int(src[j]), float(w[j])) for j in range(ptr[c], ptr[c + 1])]
               for c in range(n_ch)]
    head = [0] * n_ch
    meta: list[list[int]] = []
    cols: list[list[tuple[int, float] | None]] = []
    while True:
        active = [c for c in range(n_ch) if head[c] < len(entries[c])]
        if not active:
            break
        votes: dict[tuple[int, int], int] = {}
        for c in active:
            s_ = entries[c][head[c]][0]
            for key in ((SLOT_DIAGONAL, s_ - c), (SLOT_BROADCAST, s_)):
                votes[key] = votes.get(key, 0) + 1
        # most channels first; a diagonal before a broadcast of the same count
        key, count = max(votes.items(), key=lambda kv: (kv[1], kv[0][0] == SLOT_DIAGONAL))
        if count < min_share * len(active) or count < 2:
            key = (SLOT_GATHER, 0)
        kind, off = key
        col: list[tuple[int, float] | None] = [None] * n_ch
        for c in active:
            s_, w_ = entries[c][head[c]]
            fits = (kind == SLOT_GATHER or (kind == SLOT_DIAGONAL and s_ - c == off)
                    or (kind == SLOT_BROADCAST and s_ == off))
            if fits:
                col[c] = (s_, w_)
                head[c] += 1
        kept = [c for c in range(n_ch) if col[c] is not None]
        meta.append([kind, off, kept[0], kept[-1] + 1])
        cols.append(col)
    n_slots = len(meta)
    slot_plan = np.full((n_slots, SLOT_HEADER + n_ch), n_sources, np.int64)
    slot_plan[:, :SLOT_HEADER] = np.array(meta, np.int64).reshape(n_slots, SLOT_HEADER)
    slot_w = np.zeros((n_slots, n_ch))
    for s_, col in enumerate(cols):
        for c, entry in enumerate(col):
            if entry is not None:
                slot_plan[s_, SLOT_HEADER + c], slot_w[s_, c] = entry
    return slot_plan, slot_w


#: Largest mains table :func:`mains_table` builds (entries = period x channels; 1 MiB).
MAINS_TABLE_MAX_ENTRIES = 1 << 17


def mains_table(line_hz: np.ndarray, line_a: np.ndarray, line_b: np.ndarray,
                sampling_rate_hz: float,
                max_entries: int = MAINS_TABLE_MAX_ENTRIES) -> np.ndarray:
    """The mains interference of one period, when it is periodic in the sample index.

    Sample ``idx`` carries ``sum_h a[h] sin(phi_h) + b[h] cos(phi_h)`` with
    ``phi_h = 2 pi ((idx * f_h) mod fs) / fs``. When ``fs`` and every ``f_h`` are whole
    numbers and ``idx * f_h <= 2**53``, ``idx * f_h`` and the remainder are exact integers,
    so the remainder (hence every later operation) is the same for ``idx`` and
    ``idx mod P`` with ``P = lcm_h(fs / gcd(fs, f_h))``: a table of ``P`` rows, computed by
    the kernel's own code (:func:`_mains_row`), is bit-identical to computing every sample.

    Parameters
    ----------
    line_hz : ndarray, shape (n_harmonics,)
    line_a, line_b : ndarray, shape (n_harmonics, n_channels), microvolts
    sampling_rate_hz : float
    max_entries : int
        No table when ``P * n_channels`` would exceed this.

    Returns
    -------
    ndarray, shape (P, n_channels), float64, microvolts
        Row ``m`` is the mains of every sample ``idx`` with ``idx mod P == m``, for
        ``0 <= idx < mains_table_limit(line_hz)`` (:func:`synth_block` computes later samples
        directly); shape ``(0, n_channels)`` when there is no table.
    """
    n_ch = line_a.shape[1]
    fs = float(sampling_rate_hz)
    freqs = [float(f) for f in line_hz]
    none = np.zeros((0, n_ch))
    if not (math.isfinite(fs) and fs >= 1.0 and fs.is_integer() and fs < 2.0**53):
        return none
    if not all(math.isfinite(f) and 0.0 <= f < 2.0**53 and f.is_integer() for f in freqs):
        return none
    period = 1
    for f in freqs:
        period = math.lcm(period, int(fs) // math.gcd(int(fs), int(f)))
        if period * n_ch > max_entries:
            return none
    table = np.empty((period, n_ch))
    _fill_mains_table(np.ascontiguousarray(line_hz, np.float64),
                      np.ascontiguousarray(line_a, np.float64),
                      np.ascontiguousarray(line_b, np.float64), fs, table)
    return table


@jit
def mains_table_limit(line_hz: np.ndarray) -> int:
    """First sample index a :func:`mains_table` of ``line_hz`` no longer holds for: past
    ``2**53 / max(line_hz)`` the product ``idx * f`` is no longer an exact integer."""
    f_max = 0.0
    for h in range(line_hz.shape[0]):
        f_max = max(f_max, line_hz[h])
    if f_max < 1.0:
        return (1 << 63) - 1  # every harmonic is 0 Hz: idx * 0.0 is exact
    return int((1 << 53) // np.int64(f_max)) + 1  # f_max is a whole number below 2**53


@jit
def _mains_row(idx: int, line_hz: np.ndarray, line_a: np.ndarray, line_b: np.ndarray,
               sampling_rate_hz: float, row: np.ndarray) -> None:
    """The mains interference of sample ``idx`` into ``row`` (n_channels,), microvolts."""
    two_pi = 2.0 * math.pi
    for ch in range(row.shape[0]):
        row[ch] = 0.0
    for h in range(line_hz.shape[0]):
        phase = two_pi * ((idx * line_hz[h]) % sampling_rate_hz) / sampling_rate_hz
        sn = math.sin(phase)
        cs = math.cos(phase)
        for ch in range(row.shape[0]):
            row[ch] += line_a[h, ch] * sn + line_b[h, ch] * cs


@jit
def _fill_mains_table(line_hz: np.ndarray, line_a: np.ndarray, line_b: np.ndarray,
                      sampling_rate_hz: float, table: np.ndarray) -> None:
    for m in range(table.shape[0]):
        _mains_row(m, line_hz, line_a, line_b, sampling_rate_hz, table[m])


@jit
def _one_section(xv: np.ndarray, zi: np.ndarray, sos: np.ndarray, sec: int, s0: int,
                 s1: int) -> None:
    """Section ``sec`` of the cascade ``sos`` (max_sections, 6), in place on sources
    ``s0 <= src < s1`` of ``xv`` with the states ``zi[sec, :, s0:s1]``."""
    b0 = sos[sec, 0]
    b1 = sos[sec, 1]
    b2 = sos[sec, 2]
    a1 = sos[sec, 4]
    a2 = sos[sec, 5]
    # 1-D slices indexed from 0 and scalar coefficients: the loop vectorises
    x = xv[s0:s1]
    z0 = zi[sec, 0, s0:s1]
    z1 = zi[sec, 1, s0:s1]
    for i in range(s1 - s0):
        xi = x[i]
        y = b0 * xi + z0[i]
        z0[i] = b1 * xi - a1 * y + z1[i]
        z1[i] = b2 * xi - a2 * y
        x[i] = y


@jit
def _three_sections(xv: np.ndarray, zi: np.ndarray, sos: np.ndarray, sec: int, s0: int,
                    s1: int) -> None:
    """Sections ``sec .. sec + 2`` in one pass (the signal stays in registers between them);
    the same operations in the same order as three :func:`_one_section` passes."""
    b00 = sos[sec, 0]
    b01 = sos[sec, 1]
    b02 = sos[sec, 2]
    a01 = sos[sec, 4]
    a02 = sos[sec, 5]
    b10 = sos[sec + 1, 0]
    b11 = sos[sec + 1, 1]
    b12 = sos[sec + 1, 2]
    a11 = sos[sec + 1, 4]
    a12 = sos[sec + 1, 5]
    b20 = sos[sec + 2, 0]
    b21 = sos[sec + 2, 1]
    b22 = sos[sec + 2, 2]
    a21 = sos[sec + 2, 4]
    a22 = sos[sec + 2, 5]
    x = xv[s0:s1]
    s00 = zi[sec, 0, s0:s1]
    s01 = zi[sec, 1, s0:s1]
    s10 = zi[sec + 1, 0, s0:s1]
    s11 = zi[sec + 1, 1, s0:s1]
    s20 = zi[sec + 2, 0, s0:s1]
    s21 = zi[sec + 2, 1, s0:s1]
    for i in range(s1 - s0):
        xi = x[i]
        y = b00 * xi + s00[i]
        s00[i] = b01 * xi - a01 * y + s01[i]
        s01[i] = b02 * xi - a02 * y
        xi = y
        y = b10 * xi + s10[i]
        s10[i] = b11 * xi - a11 * y + s11[i]
        s11[i] = b12 * xi - a12 * y
        xi = y
        y = b20 * xi + s20[i]
        s20[i] = b21 * xi - a21 * y + s21[i]
        s21[i] = b22 * xi - a22 * y
        x[i] = y


@jit
def synth_block(
    n: int,
    first_index: int,
    out: np.ndarray,
    labels: np.ndarray,
    onsets: np.ndarray,
    states: np.ndarray,
    strengths: np.ndarray,
    cursor: np.ndarray,
    rng: np.ndarray,
    run_ptr: np.ndarray,
    run_sos: np.ndarray,
    zi: np.ndarray,
    logmod: np.ndarray,
    envelope: np.ndarray,
    env_alpha: float,
    slot_plan: np.ndarray,
    slot_w: np.ndarray,
    line_hz: np.ndarray,
    line_a: np.ndarray,
    line_b: np.ndarray,
    mains: np.ndarray,
    sampling_rate_hz: float,
    rail_uv: float,
    ev_onset: np.ndarray,
    ev_len: np.ndarray,
    ev_kind: np.ndarray,
    ev_amp: np.ndarray,
    ev_tau: np.ndarray,
    ev_w: np.ndarray,
    ev_hold: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Generate samples ``first_index .. first_index + n - 1`` into ``out[:n]``, ``labels[:n]``.

    Sample-major, like the stream; within a sample the sources are processed as vectors:
    the deviates of all sources, then each run of sources with the same filter through each
    section (scalar coefficients, SIMD across the run), the envelopes, the mains (a table row
    when periodic), then the lead field slot by slot (SIMD across channels). Every value is
    computed by the same IEEE operations in the same order as the scalar recursion (no
    reassociation, no fused multiply-add; each channel adds its sources in source order), so
    the output does not depend on the vector width, on the layout the packers chose or on how
    the caller cuts the stream into blocks.

    Parameters
    ----------
    n : int
        Number of samples to generate (``<= out.shape[0]``).
    first_index : int
        Stream index (>= 0) of the first sample; calls must be consecutive (the filter,
        envelope and RNG states carry the stream).
    out : ndarray, shape (>= n, n_channels), float64, microvolts
    labels : ndarray, shape (>= n,), int8
        Ground-truth state per sample (from the schedule).
    onsets, states, strengths : ndarray, shape (n_segments,)
        Schedule: segment start (int64 sample index), state (int8), modulation strength.
    cursor : ndarray, shape (3,), int64
        ``[segment, first unfinished artifact, segment the targets were computed for]``;
        start with ``[0, 0, -1]``.
    rng : ndarray, shape (4,), uint64
        xoshiro256** state (advanced in place); one deviate per source per sample, drawn
        sample-major, then source by source.
    run_ptr, run_sos : ndarray, shapes (n_runs + 1,) int64 and (n_runs, max_sections, 6)
        Source filters by runs of identical cascades (:func:`source_runs` of
        :func:`pack_sections`; ``a0 == 1``, identity sections where a source has fewer).
    zi : ndarray, shape (max_sections, 2, n_sources)
        Direct-form-II-transposed filter states (updated in place).
    logmod : ndarray, shape (n_states, n_sources)
        Natural log of each source's amplitude factor in each state (0 = unmodulated).
    envelope : ndarray, shape (2, n_sources)
        Current envelope (row 0) and its target (row 1, ``exp(strength * logmod[state])``),
        updated in place.
    env_alpha : float
        One-pole smoothing coefficient of the envelope per sample.
    slot_plan, slot_w : ndarray, shapes (n_slots, SLOT_HEADER + n_channels) int64 and
        (n_slots, n_channels) float64
        Lead field in slots (:func:`lead_field_slots`): for ``s = 0 .. n_slots - 1``
        channel ``c`` adds ``slot_w[s, c] * signal[slot_plan[s, SLOT_HEADER + c]]``
        (microvolts per unit source; source ``n_sources`` is a gap).
    line_hz : ndarray, shape (n_harmonics,)
        Frequencies of the mains components.
    line_a, line_b : ndarray, shape (n_harmonics, n_channels)
        Sine and cosine amplitudes (uV) of each component on each channel.
    mains : ndarray, shape (P, n_channels)
        One period of the mains (:func:`mains_table` of ``line_hz``, ``line_a``, ``line_b``
        and ``sampling_rate_hz``), or shape ``(0, n_channels)`` to compute every sample;
        samples from :func:`mains_table_limit` on are computed directly.
    sampling_rate_hz : float
    rail_uv : float
        Amplifier rail: every sample is clipped to ``[-rail_uv, rail_uv]``.
    ev_onset, ev_len, ev_kind, ev_amp, ev_tau : ndarray, shape (n_events,)
        Artifact table sorted by onset: start sample, length (samples), kind code
        (:data:`ARTIFACT_SPIKE`, :data:`ARTIFACT_SATURATION`, :data:`ARTIFACT_FLAT`),
        amplitude (uV; the signed rail value for saturation) and spike time constant
        (samples).
    ev_w : ndarray, shape (n_events, n_channels)
        Per-channel weight of each artifact (0 = channel untouched).
    ev_hold : ndarray, shape (n_events, n_channels)
        Value a flat channel holds (written at the artifact's onset).
    scratch : ndarray, shape (n_sources + 1,), float64
        Work space: the sources' signal of the current sample, then the pad source (kept 0).
    """
    n_runs = run_ptr.shape[0] - 1
    n_sec = run_sos.shape[1]
    env = envelope[0]
    target = envelope[1]
    n_src = env.shape[0]
    n_ch = out.shape[1]
    n_seg = onsets.shape[0]
    n_ev = ev_onset.shape[0]
    n_slots = slot_plan.shape[0]
    zx = _ZIG_X
    zr = _ZIG_RATIO
    scratch[n_src] = 0.0  # the pad source of the lead-field slots
    xv = scratch[:n_src]
    period = max(mains.shape[0], 1)
    mains_limit = mains_table_limit(line_hz) if mains.shape[0] > 0 else 0
    phase_row = first_index % period
    seg = cursor[0]
    while seg > 0 and onsets[seg] > first_index:
        seg -= 1
    for k in range(n):
        idx = first_index + k
        while seg + 1 < n_seg and onsets[seg + 1] <= idx:
            seg += 1
        if seg != cursor[2]:
            _update_targets(seg, states, strengths, logmod, target)
            cursor[2] = seg
        labels[k] = states[seg]

        # sources: white deviate -> SOS cascade -> task envelope (vectors over sources)
        _normals_into(rng, xv, zx, zr)
        for run in range(n_runs):
            s0 = run_ptr[run]
            s1 = run_ptr[run + 1]
            sec = 0
            while n_sec - sec >= 3:
                _three_sections(xv, zi, run_sos[run], sec, s0, s1)
                sec += 3
            while sec < n_sec:
                _one_section(xv, zi, run_sos[run], sec, s0, s1)
                sec += 1
        for src in range(n_src):
            e = env[src] + env_alpha * (target[src] - env[src])
            env[src] = e
            xv[src] = xv[src] * e

        # mains interference (a function of the absolute sample index only), then each
        # channel gathers its sources in source order, slot by slot
        row = out[k]
        if idx < mains_limit:
            mrow = mains[phase_row]
            for ch in range(n_ch):
                row[ch] = mrow[ch]
        else:
            _mains_row(idx, line_hz, line_a, line_b, sampling_rate_hz, row)
        phase_row += 1
        if phase_row == period:
            phase_row = 0
        for s in range(n_slots):
            kind = slot_plan[s, 0]
            off = slot_plan[s, 1]
            c0 = slot_plan[s, 2]
            c1 = slot_plan[s, 3]
            ss = slot_plan[s, SLOT_HEADER + c0:SLOT_HEADER + c1]
            sw = slot_w[s, c0:c1]
            acc = row[c0:c1]
            if kind == SLOT_DIAGONAL:
                sx = scratch[c0 + off:c1 + off]
                for i in range(c1 - c0):
                    acc[i] += sw[i] * sx[i] if ss[i] != n_src else 0.0
            elif kind == SLOT_BROADCAST:
                xb = scratch[off]
                for i in range(c1 - c0):
                    acc[i] += sw[i] * xb if ss[i] != n_src else 0.0
            else:
                for i in range(c1 - c0):
                    acc[i] += sw[i] * scratch[ss[i]]

        # artifacts
        ev = cursor[1]
        while ev < n_ev and ev_onset[ev] + ev_len[ev] <= idx:
            ev += 1
        cursor[1] = ev
        while ev < n_ev and ev_onset[ev] <= idx:
            t = idx - ev_onset[ev]
            if t < ev_len[ev]:
                kind = ev_kind[ev]
                if kind == ARTIFACT_SPIKE:
                    r = t / ev_tau[ev]
                    shape = ev_amp[ev] * r * math.exp(1.0 - r)
                    for ch in range(n_ch):
                        out[k, ch] += ev_w[ev, ch] * shape
                elif kind == ARTIFACT_SATURATION:
                    for ch in range(n_ch):
                        if ev_w[ev, ch] != 0.0:
                            out[k, ch] = ev_amp[ev]
                else:
                    for ch in range(n_ch):
                        if ev_w[ev, ch] != 0.0:
                            if t == 0:
                                ev_hold[ev, ch] = out[k, ch]
                            out[k, ch] = ev_hold[ev, ch]
            ev += 1

        for ch in range(n_ch):
            val = out[k, ch]
            if val > rail_uv:
                out[k, ch] = rail_uv
            elif val < -rail_uv:
                out[k, ch] = -rail_uv
    cursor[0] = seg
