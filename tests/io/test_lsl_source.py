"""``lsl://`` source: meta-data into SourceInfo, samples bit for bit, gaps (and jitter that is
not a gap), clock mapping, bad input. Real liblsl on loopback, in this process; the
cross-process closed loop is in test_lsl_e2e.py."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("mne_lsl")

from neuroloop.acquisition import open_source  # noqa: E402
from neuroloop.acquisition.lsl import (  # noqa: E402
    LslSource,
    configure_liblsl,
    lsl_unit_to_uv,
)
from neuroloop.errors import ConfigError  # noqa: E402

configure_liblsl()
from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock  # noqa: E402


def _name() -> str:
    return f"nltest-{uuid.uuid4().hex[:10]}"


def _outlet(name: str, n_ch: int = 3, fs: float = 100.0, *, stype: str = "EEG",
            dtype: str = "float64", units: str | list[str] = "microvolts",
            types: str | list[str] = "eeg", labels: list[str] | None = None) -> StreamOutlet:
    info = StreamInfo(name, stype, n_ch, fs, dtype, f"src-{name}")
    if dtype != "string":
        info.set_channel_names(labels or [f"C{i}" for i in range(n_ch)])
        info.set_channel_types(types)
        info.set_channel_units(units)
    return StreamOutlet(info)


def _read_all(src, n: int, timeout: float = 2.0) -> list[tuple[int, np.ndarray, int]]:
    out: list[tuple[int, np.ndarray, int]] = []
    while True:
        block = src.read(n, timeout=timeout)
        if block is None:
            return out
        out.append((block.first_index, block.data.copy(), block.received_ns))


def test_metadata_becomes_source_info_and_units_scale_to_microvolts():
    name = _name()
    out = _outlet(name, 4, 250.0, units=["microvolts", "millivolts", "volts", "none"],
                  types=["eeg", "ecog", "seeg", "stim"], labels=["C3", "C4", "LFP1", "TRIG"])
    src = open_source(f"lsl://{name}?timeout=3")
    assert src.info.channel_names == ("C3", "C4", "LFP1", "TRIG")
    assert src.info.channel_types == ("eeg", "ecog", "lfp", "stim")
    assert src.info.sampling_rate_hz == 250.0 and src.info.unit == "uV"
    with src:
        src.connect()
        x = np.array([[1.0, 2.0, 3.0, 4.0]] * 5)
        out.push_chunk(x, timestamp=local_clock())
        block = src.read(5, timeout=2.0)
        assert block is not None
        np.testing.assert_array_equal(block.data[0], [1.0, 2000.0, 3e6, 4.0])
    assert lsl_unit_to_uv("-6") == 1.0 and lsl_unit_to_uv("-3") == 1e3
    assert lsl_unit_to_uv("furlongs") is None


def test_resolve_by_type_and_samples_arrive_bit_exact_with_contiguous_indices():
    name = _name()
    out = _outlet(name, 3, 100.0, stype=f"T{name[-6:]}")
    src = open_source(f"lsl://?type=T{name[-6:]}&timeout=3")
    rng = np.random.default_rng(0)
    data = rng.normal(scale=50.0, size=(400, 3))
    with src:
        src.connect()
        t0 = local_clock()
        for c in range(0, 400, 16):
            out.push_chunk(data[c:c + 16], timestamp=t0 + (min(400, c + 16) - 1) / 100.0)
        got = _read_all(src, 16, timeout=0.5)
    firsts = [g[0] for g in got]
    assert firsts == list(range(0, 400, 16))
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), data)  # float64: exact
    assert src.stats()["samples_lost"] == 0


def test_timestamps_map_to_the_loop_clock_and_never_after_the_pull():
    name = _name()
    out = _outlet(name, 2, 100.0)
    with open_source(f"lsl://{name}?timeout=3") as src:
        src.connect()
        pushed_ns = time.perf_counter_ns()
        out.push_chunk(np.zeros((10, 2)), timestamp=local_clock())
        block = src.read(10, timeout=2.0)
        pulled_ns = time.perf_counter_ns()
    assert block is not None
    # the LSL push stamp, on perf_counter_ns: between the push and the pull
    assert pushed_ns - 2_000_000 <= block.received_ns <= pulled_ns


def test_a_gap_in_the_timestamps_is_lost_samples_not_papered_over():
    name = _name()
    out = _outlet(name, 1, 100.0)
    data = np.arange(300.0).reshape(300, 1)
    with open_source(f"lsl://{name}?timeout=3") as src:
        src.connect()
        t0 = local_clock()
        for c in range(0, 300, 10):
            if 100 <= c < 130:  # 30 samples never sent
                continue
            out.push_chunk(data[c:c + 10], timestamp=t0 + (c + 9) / 100.0)
        got = _read_all(src, 10, timeout=0.5)
    assert src.stats()["samples_lost"] == 30 and src.stats()["gaps"] == 1
    index_of = {int(b[1][0, 0]): b[0] for b in got}
    assert index_of[0] == 0 and index_of[290] == 290  # the stream index skips the gap
    assert sum(b[1].shape[0] for b in got) == 270


class _FakeInlet:
    """Replays scripted (data, timestamps) chunks, as ``StreamInlet.pull_chunk`` returns them."""

    def __init__(self, chunks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.chunks = list(chunks)

    def pull_chunk(self, timeout: float = 0.0, max_samples: int = 1024):
        if not self.chunks:
            return np.zeros((0, 1)), np.zeros(0)
        data, ts = self.chunks[0]
        if data.shape[0] <= max_samples:
            self.chunks.pop(0)
            return data, ts
        self.chunks[0] = (data[max_samples:], ts[max_samples:])
        return data[:max_samples], ts[:max_samples]

    def time_correction(self, timeout: float = 0.0) -> float:
        return 0.0


def _scripted_source(chunks) -> LslSource:
    """An LslSource reading scripted chunks (the real constructor resolves a stream)."""
    src = LslSource.__new__(LslSource)
    src._is_open = False
    src._label_lut = None
    src._timeout_s = 1.0
    src._factors = None
    src._init_reading(1, 100.0, gap_tolerance=0.75, gap_confirm_s=0.5)
    src._inlet = _FakeInlet(chunks)
    src._streaming = True
    src._tc_next_ns = 1 << 62
    src._is_open = True
    return src


@given(lateness=st.lists(st.floats(0.0, 0.3), min_size=20, max_size=60),
       chunk=st.sampled_from([8, 16, 25]))
def test_push_time_jitter_without_loss_is_never_a_gap(lateness, chunk):
    """Blocks stamped with their push time, some pushed up to 0.3 s late (at most one every
    0.65 s), the ones behind a late push then pushed in a burst: jitter, which the source never
    reads as lost samples; the stream index stays contiguous."""
    fs = 100.0
    chunks = []
    push = 0.0
    every = int(np.ceil(0.65 * fs / chunk))  # spikes at most every 0.65 s (> gap_confirm_s)
    lateness = [late if k % every == 0 else 0.0 for k, late in enumerate(lateness)] + [0.0] * 6
    for k, late in enumerate(lateness):
        due = (k + 1) * chunk / fs
        push = max(push, due + late)  # a late push delays the ones behind it (a burst)
        ts = push - (chunk - 1 - np.arange(chunk)) / fs  # liblsl back-dates a chunk's samples
        chunks.append((np.full((chunk, 1), float(k)), ts))
    src = _scripted_source(chunks)
    got = _read_all(src, chunk, timeout=0.0)
    assert src.samples_lost == 0
    assert [g[0] for g in got] == list(range(0, chunk * len(lateness), chunk))


@given(hole=st.integers(2, 200), at=st.integers(3, 15))
def test_a_hole_in_a_regular_stream_is_counted_exactly(hole, at):
    fs, chunk = 100.0, 10
    chunks = []
    index = 0
    for k in range(25):
        if k == at:
            index += hole
        ts = (index + np.arange(chunk)) / fs
        chunks.append((np.full((chunk, 1), float(k)), ts))
        index += chunk
    src = _scripted_source(chunks)
    got = _read_all(src, chunk, timeout=0.0)
    assert src.samples_lost == hole and src.gaps == 1
    assert got[-1][0] == index - chunk  # the stream index after the hole is the outlet's


def test_no_such_stream_lists_the_visible_ones():
    name = _name()
    _keep = _outlet(name, 2, 100.0)  # noqa: F841 - visible while we look for another
    with pytest.raises(ConfigError) as err:
        open_source(f"lsl://{name}-missing?timeout=0.3")
    msg = str(err.value)
    assert f"{name}-missing" in msg and name in msg and "visible streams" in msg
    assert "\n" not in msg


def test_marker_and_irregular_streams_and_bad_options_are_refused():
    name = _name()
    _m = _outlet(name, 1, 0.0, stype="Markers", dtype="string")  # noqa: F841
    with pytest.raises(ConfigError, match="strings"):
        open_source(f"lsl://{name}?timeout=2")
    name2 = _name()
    _i = _outlet(name2, 2, 0.0)  # noqa: F841
    with pytest.raises(ConfigError, match="irregular"):
        open_source(f"lsl://{name2}?timeout=2")
    for url, what in ((f"lsl://{name2}?timeout=nan", "timeout"),
                      (f"lsl://{name2}?timeout=1e308", "timeout"),
                      (f"lsl://{name2}?bogus=1", "bogus"),
                      (f"lsl://{name2}?scale=0", "scale"),
                      ("lsl://", "names no stream")):
        with pytest.raises(ConfigError, match=what):
            open_source(url)


def test_rate_and_channel_count_must_match_the_scenario():
    from neuroloop.config import load_scenario
    from neuroloop.runtime.session import check_source

    scenario = load_scenario("eeg-bci")  # 32 channels at 250 Hz
    name = _name()
    _o = _outlet(name, 32, 200.0)  # noqa: F841
    src = open_source(f"lsl://{name}?timeout=2")
    with pytest.raises(ConfigError, match="200 Hz .* 250 Hz"):
        check_source(scenario, src, f"lsl://{name}")
    name2 = _name()
    _p = _outlet(name2, 8, 250.0)  # noqa: F841
    src2 = open_source(f"lsl://{name2}?timeout=2")
    with pytest.raises(ConfigError, match="8 channels .* expects 32"):
        check_source(scenario, src2, f"lsl://{name2}")
