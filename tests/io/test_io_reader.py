"""open_recording: truncated streams open, corrupt/foreign files raise RecordingError with the
file and the byte offset, newer formats are refused."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from io_fakes import write_session

from neuroloop.errors import NeuroloopError, RecordingError
from neuroloop.io import open_recording
from neuroloop.io.format import (
    CYCLES_FILE,
    EVENTS_FILE,
    FORMAT_VERSION,
    INDEX_FILE,
    META_FILE,
    SAMPLES_FILE,
)


def _edit_meta(path, fn):
    meta = json.loads((path / META_FILE).read_text())
    fn(meta)
    (path / META_FILE).write_text(json.dumps(meta))


def _truncate(path, nbytes_removed):
    size = os.path.getsize(path)
    os.truncate(path, size - nbytes_removed)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_missing_directory(tmp_path):
    with pytest.raises(RecordingError, match="does not exist") as ei:
        open_recording(tmp_path / "nope")
    assert str(tmp_path / "nope") in _one_line(ei.value)
    assert isinstance(ei.value, NeuroloopError)


def test_file_instead_of_directory_and_missing_meta(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(RecordingError, match="not a recording directory"):
        open_recording(f)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="holds no meta.json"):
        open_recording(tmp_path / "empty")


def test_meta_not_json_names_file_and_offset(make_session):
    s = make_session(n_cycles=3)
    text = (s.path / META_FILE).read_text()
    broken = text[:60] + "\u00e9 @" + text[60:]  # a non-ASCII character before the error
    (s.path / META_FILE).write_text(broken, encoding="utf-8")
    with pytest.raises(json.JSONDecodeError) as je:
        json.loads(broken)
    expected = len(broken[:je.value.pos].encode("utf-8"))
    with pytest.raises(RecordingError) as ei:
        open_recording(s.path)
    msg = _one_line(ei.value)
    assert str(s.path / META_FILE) in msg and f"byte offset {expected}" in msg


def test_meta_binary_garbage(make_session):
    s = make_session(n_cycles=3)
    (s.path / META_FILE).write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(RecordingError, match=r"meta.json.*(byte offset|not valid JSON)"):
        open_recording(s.path)


def test_foreign_json_is_refused(make_session):
    s = make_session(n_cycles=3)
    (s.path / META_FILE).write_text('{"name": "some other tool"}')
    with pytest.raises(RecordingError, match="not a neuroloop session"):
        open_recording(s.path)
    (s.path / META_FILE).write_text("[1, 2]")
    with pytest.raises(RecordingError, match="top level is list"):
        open_recording(s.path)


@pytest.mark.parametrize("key,dotted", [
    ("n_features", "sizes.n_features"), ("names", "channels.names"),
    ("sampling_rate_hz", "channels.sampling_rate_hz"), ("sample_dtype", "sample_dtype"),
])
def test_incomplete_meta_names_the_key(make_session, key, dotted):
    s = make_session(n_cycles=3)

    def drop(meta):
        for node in (meta, meta["sizes"], meta["channels"]):
            node.pop(key, None)

    _edit_meta(s.path, drop)
    with pytest.raises(RecordingError) as ei:
        open_recording(s.path)
    msg = _one_line(ei.value)
    assert f"missing key {dotted!r}" in msg and "incomplete" in msg


def test_newer_format_version_is_refused(make_session):
    s = make_session(n_cycles=3)
    _edit_meta(s.path, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(RecordingError, match="upgrade neuroloop") as ei:
        open_recording(s.path)
    assert f"version {FORMAT_VERSION + 1}" in _one_line(ei.value)


def test_sizes_mismatch(make_session):
    s = make_session(n_cycles=3)
    _edit_meta(s.path, lambda m: m["sizes"].update(n_states=5))
    with pytest.raises(RecordingError, match="sizes mismatch.*probabilities"):
        open_recording(s.path)
    s2 = make_session("b", n_cycles=3)
    _edit_meta(s2.path, lambda m: m["channels"].update(n_channels=9))
    with pytest.raises(RecordingError, match="sizes mismatch"):
        open_recording(s2.path)


def test_truncated_streams_ignore_partial_rows(make_session):
    s = make_session(n_cycles=20, close=False)
    # a writer killed mid-write: partial last rows in every stream
    _truncate(s.path / SAMPLES_FILE, 3)
    _truncate(s.path / CYCLES_FILE, 11)
    _truncate(s.path / INDEX_FILE, 5)
    with open(s.path / EVENTS_FILE, "ab") as fh:
        fh.write(b'{"cycle": 99, "kind": "interl')
    rec = open_recording(s.path)
    assert not rec.closed_cleanly
    assert rec.n_cycles == 19
    assert rec.cycles.tobytes() == s.cycles[:19].tobytes()
    # the last block lost its index row and one sample: blocks 0..18 remain whole
    assert rec.n_blocks == 19 and rec.n_samples == 190
    assert np.array_equal(rec.samples, s.samples[:190])
    events = list(rec.events())
    assert len(events) == 2 * len(s.events)  # the partial line is skipped
    assert all(e["cycle"] != 99 for e in events)


def test_cleanly_closed_but_truncated_is_an_error(make_session):
    s = make_session(n_cycles=10)
    row = s.cycles.dtype.itemsize
    _truncate(s.path / CYCLES_FILE, row + 4)
    with pytest.raises(RecordingError) as ei:
        open_recording(s.path)
    msg = _one_line(ei.value)
    assert str(s.path / CYCLES_FILE) in msg and f"byte offset {8 * row}" in msg


def test_foreign_samples_file_sizes_mismatch(make_session):
    s = make_session(n_cycles=10)
    with open(s.path / SAMPLES_FILE, "ab") as fh:
        fh.write(np.zeros((5, 4)).tobytes())
    with pytest.raises(RecordingError, match="sizes mismatch"):
        open_recording(s.path)


def test_corrupt_index_names_block_and_offset(make_session):
    s = make_session(n_cycles=10)
    idx = np.fromfile(s.path / INDEX_FILE, dtype="<i8").reshape(-1, 3)
    idx[6, 2] += 1  # row_offset no longer follows the previous block
    idx.tofile(s.path / INDEX_FILE)
    with pytest.raises(RecordingError) as ei:
        open_recording(s.path)
    msg = _one_line(ei.value)
    assert str(s.path / INDEX_FILE) in msg and "block 6 at byte offset 144" in msg

    s2 = make_session("b", n_cycles=10)
    idx = np.fromfile(s2.path / INDEX_FILE, dtype="<i8").reshape(-1, 3)
    idx[4, 0] = idx[3, 0]  # a block that goes back in the stream
    idx.tofile(s2.path / INDEX_FILE)
    with pytest.raises(RecordingError, match="block 4 at byte offset 96"):
        open_recording(s2.path)


def test_events_line_not_json_names_line_and_offset(make_session):
    s = make_session(n_cycles=20)
    lines = (s.path / EVENTS_FILE).read_bytes().splitlines(keepends=True)
    offset = len(lines[0]) + len(lines[1])
    lines[2] = b"this is not json\n"
    (s.path / EVENTS_FILE).write_bytes(b"".join(lines))
    rec = open_recording(s.path)
    it = rec.events()
    next(it)
    next(it)
    with pytest.raises(RecordingError) as ei:
        next(it)
    msg = _one_line(ei.value)
    assert str(s.path / EVENTS_FILE) in msg and f"line 3 at byte offset {offset}" in msg


def test_events_line_not_an_object(make_session):
    s = make_session(n_cycles=5)  # two events: the line count still matches meta.json
    (s.path / EVENTS_FILE).write_bytes(b"[1, 2]\n{}\n")
    with pytest.raises(RecordingError, match="line 1 at byte offset 0 is not a JSON object"):
        list(open_recording(s.path).events())


def test_read_helpers_match_memmaps(make_session):
    s = make_session(n_cycles=30, gaps={7: 4})
    rec = open_recording(s.path)
    out = np.zeros((17, 4))
    assert rec.read_samples(100, out) == 17
    assert np.array_equal(out, rec.samples[100:117])
    assert rec.read_samples(rec.n_samples - 5, out) == 5
    cyc = np.zeros(8, dtype=rec.cycle_dtype)
    assert rec.read_cycles(25, cyc) == 5
    assert cyc[:5].tobytes() == rec.cycles[25:].tobytes()
    blk = np.zeros((4, 3), dtype=np.int64)
    assert rec.read_blocks(6, blk) == 4
    assert np.array_equal(blk, rec.blocks[6:10])
    assert rec.hop_samples == 10
    assert "30 cycles" in repr(rec)
    rec.close()


def test_empty_recording_opens(tmp_path):
    write_session(tmp_path / "e", n_cycles=0)
    rec = open_recording(tmp_path / "e")
    assert rec.samples.shape == (0, 4) and rec.cycles.shape == (0,)
    assert list(rec.events()) == []


# -- metadata integrity: sizes, counts, hop, rate and decoder agree with the data -------------
def _refused(path, needle):
    with pytest.raises(RecordingError) as ei:
        open_recording(path)
    msg = _one_line(ei.value)
    assert needle in msg, msg
    return msg


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda m: m["sizes"].update(n_features=-1), "sizes.n_features = -1 is too small"),
    (lambda m: m["sizes"].update(n_contacts=0), "sizes.n_contacts = 0 is too small"),
    (lambda m: m["channels"].update(sampling_rate_hz=float("nan")),
     "channels.sampling_rate_hz = nan"),
    (lambda m: m["channels"].update(n_channels=1e308), "'channels.n_channels' has an invalid"),
    (lambda m: m.update(sample_dtype="bogus"), "sample_dtype 'bogus' is not supported"),
    (lambda m: m["channels"].update(unit="mV"), "channels.unit = 'mV'"),
    (lambda m: m["streams"].update(samples="other.f64"), "streams.samples = 'other.f64'"),
    (lambda m: m.update(flush_interval_s=-1), "flush_interval_s = -1"),
    (lambda m: m.update(summary=[1, 2]), "summary = [1, 2] must be an object"),
    (lambda m: m["counts"].update(cycles=3), "counts.cycles = 3 but cycles.rec holds 10"),
    (lambda m: m["counts"].update(events=0), "counts.events = 0 but events.jsonl holds 2"),
    (lambda m: m["counts"].update(blocks=-1), "counts.blocks = -1"),
    (lambda m: m.pop("counts"), "missing key 'counts'"),
    (lambda m: m.update(hop_samples=11), "hop_samples = 11 but config.dsp.hop_samples = 10"),
])
def test_meta_that_disagrees_with_itself_or_the_data(make_session, edit, needle):
    s = make_session(n_cycles=10)
    _edit_meta(s.path, edit)
    msg = _refused(s.path, needle)
    assert str(s.path / META_FILE) in msg or str(s.path) in msg


def test_hop_and_rate_are_checked_against_the_recorded_cycles(make_session):
    s = make_session(n_cycles=30, hop=10, rate=100.0)

    def hop(m):
        m["hop_samples"] = m["config"]["dsp"]["hop_samples"] = 12

    _edit_meta(s.path, hop)
    _refused(s.path, "hop_samples = 12 but the recorded cycles advance by 10 samples per cycle")
    s2 = make_session("b", n_cycles=30, hop=10, rate=100.0)
    _edit_meta(s2.path, lambda m: m["channels"].update(sampling_rate_hz=150.0))
    _refused(s2.path, "channels.sampling_rate_hz = 150 but the recorded cycles advance at 100 "
                      "samples/s")
    s3 = make_session("c", n_cycles=30, hop=10, rate=100.0, gaps={5: 7, 9: 3})
    assert open_recording(s3.path).hop_samples == 10  # gaps are not hop changes


def test_decoder_file_is_verified_against_its_hash(make_session):
    import hashlib

    s = make_session(n_cycles=5)
    blob = b"a decoder file"
    (s.path / "decoder.npz").write_bytes(blob)
    _edit_meta(s.path, lambda m: m.update(
        decoder={"path": None, "sha256": hashlib.sha256(blob).hexdigest()}))
    assert open_recording(s.path).n_cycles == 5
    (s.path / "decoder.npz").write_bytes(blob + b"!")
    msg = _refused(s.path, "decoder.npz does not match")
    assert "decoder.sha256" in msg
    _edit_meta(s.path, lambda m: m["decoder"].update(sha256="zz"))
    _refused(s.path, "decoder.sha256 = 'zz' is not a SHA-256 hex digest")
    _edit_meta(s.path, lambda m: m.update(decoder=None))
    _refused(s.path, "no decoder.sha256 to verify")


def test_oversized_meta_is_refused_without_reading_it(make_session):
    s = make_session(n_cycles=3)
    os.truncate(s.path / META_FILE, 65 << 20)  # sparse: nothing is written
    _refused(s.path, "more than a meta.json may have")


def test_config_is_verified_against_its_digest(make_session):
    from neuroloop.io.format import config_sha256

    s = make_session(n_cycles=5)
    _edit_meta(s.path, lambda m: m["options"].update(config_sha256=config_sha256(m["config"])))
    assert open_recording(s.path).n_cycles == 5
    _edit_meta(s.path, lambda m: m["config"]["source"].update(url="synthetic://other"))
    _refused(s.path, "config does not match options.config_sha256")
    _edit_meta(s.path, lambda m: m["options"].update(config_sha256=-1))
    _refused(s.path, "options.config_sha256 = -1 is not a SHA-256 hex digest")
