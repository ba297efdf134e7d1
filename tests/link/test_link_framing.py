"""COBS against the paper's and Wikipedia's vectors; frame splitting and resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import cobs_decode_ref, cobs_encode_ref

from neuroloop.errors import ProtocolError
from neuroloop.link.framing import FrameSplitter, cobs_decode, cobs_encode, max_encoded_len

# (decoded, encoded) - Cheshire & Baker 1999 (the IP-header example of their figure) and the
# eleven examples of the Wikipedia article "Consistent Overhead Byte Stuffing".
VECTORS = [
    ("45 00 00 2c 4c 79 00 00 40 06 4f 37", "02 45 01 04 2c 4c 79 01 05 40 06 4f 37"),
    ("00", "01 01"),
    ("00 00", "01 01 01"),
    ("00 11 00", "01 02 11 01"),
    ("11 22 00 33", "03 11 22 02 33"),
    ("11 22 33 44", "05 11 22 33 44"),
    ("11 00 00 00", "02 11 01 01 01"),
    (bytes(range(1, 255)).hex(), "ff" + bytes(range(1, 255)).hex()),
    (bytes(range(0, 255)).hex(), "01 ff" + bytes(range(1, 255)).hex()),
    (bytes(range(1, 256)).hex(), "ff" + bytes(range(1, 255)).hex() + "02 ff"),
    ((bytes(range(2, 256)) + b"\x00").hex(), "ff" + bytes(range(2, 256)).hex() + "01 01"),
    ((bytes(range(3, 256)) + b"\x00\x01").hex(), "fe" + bytes(range(3, 256)).hex() + "02 01"),
    ("", "01"),
]


@pytest.mark.parametrize(("decoded", "encoded"), VECTORS)
def test_cobs_vectors(decoded: str, encoded: str) -> None:
    raw, enc = bytes.fromhex(decoded), bytes.fromhex(encoded)
    assert cobs_encode(raw) == enc
    assert cobs_decode(enc) == raw


@given(st.binary(max_size=2000))
def test_cobs_roundtrip_has_no_zero_and_bounded_overhead(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= max_encoded_len(len(data))
    assert cobs_decode(enc) == data


@given(st.binary(max_size=600))
def test_cobs_decode_is_total(data: bytes) -> None:
    try:
        out = cobs_decode(data)
    except ProtocolError:
        return
    assert isinstance(out, bytes)


# bytes that make long zero-free runs (254-byte blocks) and zeros both likely
_COBS_BYTES = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.sampled_from([0, 1, 0x7F, 0xFE, 0xFF]), max_size=3000).map(bytes),
    st.lists(st.integers(1, 255), min_size=250, max_size=1100).map(bytes),
    st.tuples(st.integers(0, 4), st.sampled_from([253, 254, 255, 508, 509])).map(
        lambda t: b"\x00" * t[0] + (bytes(range(1, 255)) * 3)[:t[1]]),
)


@given(_COBS_BYTES, st.integers(0, 600))
def test_compiled_cobs_matches_the_python_reference(data: bytes, cut: int) -> None:
    """The Numba kernels against the plain-Python reference: byte for byte, and the same
    error for a malformed frame."""
    assert cobs_encode(data) == cobs_encode_ref(data)
    data = data[:len(data) - cut] if cut < len(data) else data  # full 254-byte runs at the end
    assert cobs_encode(data) == cobs_encode_ref(data)
    for frame in (cobs_encode_ref(data), data):  # valid, and (mostly) malformed
        want = cobs_decode_ref(frame)
        if isinstance(want, str):
            with pytest.raises(ProtocolError) as exc:
                cobs_decode(frame)
            assert str(exc.value) == want
        else:
            assert cobs_decode(frame) == want


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 507, 508, 509, 7552])
def test_cobs_full_runs_at_the_end(n: int) -> None:
    for data in (bytes((k % 255) + 1 for k in range(n)), b"\x00" * n):
        enc = cobs_encode(data)
        assert enc == cobs_encode_ref(data) and cobs_decode(enc) == data


@pytest.mark.parametrize("bad", [b"", b"\x05\x11", b"\x02\x00\x01", b"\xff" + b"\x01" * 10])
def test_cobs_decode_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        cobs_decode(bad)


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8),
       st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_splitter_is_independent_of_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(cobs_encode(p) + b"\x00" for p in payloads)
    sp = FrameSplitter(4096)
    got: list[bytes] = []
    pos = 0
    for c in sorted(set(min(c, len(stream)) for c in cuts)) + [len(stream)]:
        got += sp.feed(stream[pos:c])
        pos = c
    assert [cobs_decode(f) for f in got] == payloads
    assert sp.pending == 0


def test_splitter_discards_oversize_and_resynchronises() -> None:
    sp = FrameSplitter(16)
    good = cobs_encode(b"hello")
    out = sp.feed(b"\x07" * 40)          # runaway garbage with no delimiter
    out += sp.feed(b"\x01" * 10 + b"\x00")  # ... ends at the next 0x00
    out += sp.feed(good + b"\x00")
    assert out == [good]
    assert sp.oversize == 1
    assert sp.feed(b"\x00\x00") == []  # empty frames are skipped, not errors
