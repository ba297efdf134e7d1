"""ReplaySource: blocks equal the recorded samples, gaps kept, labels from the recorded
cycles, constant memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_fakes import write_session

from neuroloop.acquisition import NO_LABEL, open_source
from neuroloop.errors import ConfigError, RecordingError
from neuroloop.io import ReplaySource, open_recording


def _drain(src, max_samples):
    blocks = []
    while (b := src.read(max_samples)) is not None:
        blocks.append((b.first_index, b.data.copy(), b.labels.copy(), b.received_ns))
    return blocks


def _expected_labels(session, hop):
    """Label of each recorded sample: true_state of the cycle whose hop contains it."""
    labels = {}
    for row in session.cycles:
        for i in range(hop):
            labels[int(row["first_sample"]) + i] = int(row["true_state"])
    return labels


def test_blocks_equal_recorded_samples(make_session):
    s = make_session(n_cycles=50, hop=10, gaps={5: 3, 20: 40})
    with open_source(f"replay://{s.path}") as src:
        assert isinstance(src, ReplaySource)
        assert src.info.channel_names == tuple(s.meta["channels"]["names"])
        assert src.info.sampling_rate_hz == 100.0
        assert src.info.intention_names == ("rest", "left", "right")
        assert src.paced_by_device is False and src.realtime is False
        blocks = _drain(src, 10)
        assert src.exhausted
        assert src.read(10) is None
    assert [(f, d.shape[0]) for f, d, _, _ in blocks] == s.blocks
    assert np.array_equal(np.concatenate([d for _, d, _, _ in blocks]), s.samples)
    labels = _expected_labels(s, 10)
    for first, data, lab, received in blocks:
        assert [labels[first + i] for i in range(data.shape[0])] == lab.tolist()
        # the cycle whose hop ends with this block gives the recorded availability time
        assert received == (first + 10) * 10_000_000


@settings(max_examples=25)
@given(hop=st.integers(2, 30), read=st.integers(1, 70), split=st.booleans(),
       gaps=st.dictionaries(st.integers(0, 39), st.integers(1, 25), max_size=4),
       seed=st.integers(0, 1000))
def test_any_read_size_reassembles_the_stream(tmp_path_factory, hop, read, split, gaps, seed):
    path = tmp_path_factory.mktemp("rs") / "s"
    s = write_session(path, n_cycles=40, hop=hop, split_blocks=split, gaps=gaps, seed=seed,
                      events_every=0)
    labels = _expected_labels(s, hop)
    src = ReplaySource(path).open()
    got_index, got_data, got_labels = [], [], []
    while (b := src.read(read)) is not None:
        assert 1 <= b.n_samples <= read
        got_index.extend(range(b.first_index, b.first_index + b.n_samples))
        got_data.append(b.data.copy())
        got_labels.extend(b.labels.tolist())
    src.close()
    expected_index = [f + i for f, n in s.blocks for i in range(n)]
    assert got_index == expected_index  # gaps appear exactly where they were recorded
    assert np.array_equal(np.concatenate(got_data), s.samples)
    assert got_labels == [labels.get(i, NO_LABEL) for i in expected_index]


def test_reads_stop_at_gaps(make_session):
    s = make_session(n_cycles=6, hop=10, gaps={2: 5})
    src = ReplaySource(s.path).open()
    firsts = []
    while (b := src.read(25)) is not None:
        firsts.append((b.first_index, b.n_samples))
    assert firsts == [(0, 20), (25, 25), (50, 15)]


def test_recorded_cycles_are_available(make_session):
    s = make_session(n_cycles=300, hop=5)
    src = ReplaySource(s.path)
    assert src.n_recorded_cycles == 300
    for i in (0, 1, 255, 256, 299, 10):
        assert src.recorded_cycle(i).tobytes() == s.cycles[i].tobytes()
    with pytest.raises(IndexError):
        src.recorded_cycle(300)


def test_options_and_errors(make_session, tmp_path):
    s = make_session(n_cycles=3)
    src = open_source(f"replay://{s.path}?realtime=1")
    assert src.realtime is True and src.paced_by_device is False
    with pytest.raises(ConfigError, match="unknown replay option"):
        open_source(f"replay://{s.path}?speed=2")
    with pytest.raises(ConfigError, match="not a boolean"):
        open_source(f"replay://{s.path}?realtime=maybe")
    with pytest.raises(RecordingError, match="does not exist"):
        open_source(f"replay://{tmp_path / 'missing'}")
    # an opened Recording can be passed directly
    rec = open_recording(s.path)
    assert ReplaySource(rec).recording is rec


def test_unlabelled_recording_gives_no_label(tmp_path):
    from neuroloop.io.recorder import SessionRecorder

    r = SessionRecorder(tmp_path / "s")
    r.on_start({"channel_names": ["a"], "channel_types": ["weird"], "sampling_rate_hz": 10.0,
                "n_features": 1, "n_states": 1, "n_contacts": 1})
    r.on_samples(np.ones((30, 1)), 0)
    r.on_stop({})
    src = ReplaySource(tmp_path / "s").open()
    assert src.info.channel_types == ("misc",)  # unknown types are reported as misc
    b = src.read(30)
    assert b is not None and (b.labels == NO_LABEL).all() and b.received_ns == 0


def test_replay_reads_do_not_allocate(tmp_path):
    """Memory does not grow with the recording: 2000 reads keep nothing."""
    s = write_session(tmp_path / "s", n_cycles=2500, n_channels=16, hop=20, events_every=0)
    src = ReplaySource(s.path).open()
    for _ in range(200):
        src.read(20)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(2000):
            assert src.read(20) is not None
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 8_192
    assert peak - before < 65_536


def test_stalled_cycles_give_no_labels_and_no_availability(make_session):
    """A device stall after a hop repeats that hop's ``first_sample`` with the stall flag and
    no true state; the hop's samples keep the label and time of the cycle that read them."""
    s = make_session("stalled", n_cycles=12, hop=10)
    rec = open_recording(s.path)
    rows = np.memmap(s.path / "cycles.rec", dtype=rec.cycle_dtype, mode="r+")
    for k in (5, 6):  # two stalls after cycle 4: nothing read
        rows["first_sample"][k] = rows["first_sample"][4]
        rows["flags"][k] = 2  # FLAG_SOURCE_STALL
        rows["true_state"][k] = -1
        rows["available_ns"][k] = 1
    rows.flush()
    del rows
    src = ReplaySource(s.path).open()
    blocks = _drain(src, 10)
    first, _, labels, received = blocks[4]
    row = np.asarray(s.cycles).reshape(-1)[4]
    assert first == int(row["first_sample"])
    assert labels.tolist() == [int(row["true_state"])] * 10  # not cycle 6's -1
    assert received == int(row["available_ns"])  # not cycle 6's 1


def test_a_stall_before_the_first_block_is_not_a_gap():
    """Replay of a device run whose first cycles stalled (``first_sample == -hop``) and whose
    first block starts late in the device's stream: no samples are counted lost, as live."""
    from neuroloop.acquisition.base import Block, SourceInfo
    from neuroloop.runtime.clock import SimClock
    from neuroloop.runtime.hop_reader import HOP_FULL, HopReader

    class OneBlock:
        info = SourceInfo(("a", "b"), ("eeg", "eeg"), 100.0)
        paced_by_device = False
        exhausted = False

        def read(self, n, timeout=None):
            return Block(data=np.ones((n, 2)), first_index=4661,
                         labels=np.zeros(n, dtype=np.int8))

    reader = HopReader(OneBlock(), SimClock(), hop_samples=10, sampling_rate_hz=100.0,
                       read_timeout_s=1.0, on_samples=lambda data, first: None)
    reader.skip_to(-10)  # cycles stalled before any block arrived
    reader.skip_to(-10)
    assert reader.read_hop() == HOP_FULL
    assert not reader.gap and reader.samples_lost == 0 and reader.next_index == 4671
    reader.skip_to(4661)  # a stall once started: a block that does not follow is a gap
    assert reader.read_hop() == HOP_FULL and reader.gap
