"""The BaseDecoder contract, checked for every registered decoder (scikit-learn style)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from neuroloop._jit import compiled_signature_count
from neuroloop.decoders import (
    DECODER_FILE_FORMAT,
    BaseDecoder,
    Intention,
    decoder_names,
    load_decoder,
    make_decoder,
)
from neuroloop.decoders import _kernels as dk
from neuroloop.errors import ConfigError, DecoderFileError

N_STATES = 3
N_FEATURES = 6


def gaussian_data(n: int = 600, seed: int = 0, sep: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 6 dimensions, in blocks of 20 hops (like an intention schedule)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, sep, (N_STATES, N_FEATURES))
    y = np.repeat(np.arange(n // 20) % N_STATES, 20)
    X = means[y] + rng.normal(0.0, 1.0, (y.size, N_FEATURES))
    return X, y


def _classifiers() -> list[str]:
    """Every registered kind calibrated from labels (``supervised``); a biomarker decoder
    (two fixed states, no labels) has its own contract test in tests/adbs."""
    from neuroloop.decoders.base import decoder_class

    return [n for n in decoder_names() if getattr(decoder_class(n), "supervised", True)]


@pytest.fixture(params=_classifiers())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fitted(name: str) -> BaseDecoder:
    X, y = gaussian_data()
    return make_decoder(name).fit(X, y)


def test_lda_is_registered() -> None:
    assert "lda" in decoder_names()


def test_unknown_decoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown decoder 'nope'; use one of: .*lda"):
        make_decoder("nope")


def test_fit_returns_self_and_sets_shapes(name: str) -> None:
    X, y = gaussian_data()
    dec = make_decoder(name)
    assert dec.fit(X, y) is dec
    assert dec.n_features == N_FEATURES
    assert dec.n_states == N_STATES


def test_params_are_json_and_reconstruct(fitted: BaseDecoder, name: str) -> None:
    params = fitted.get_params()
    assert json.loads(json.dumps(params)) == params
    assert make_decoder(name, **params).get_params() == params


def test_step_output_contract(fitted: BaseDecoder) -> None:
    X, _ = gaussian_data(seed=1)
    fitted.warmup()
    first = fitted.step(X[0])
    assert isinstance(first, Intention)
    for x in X[:50]:
        it = fitted.step(x)
        assert it is first  # owned by the decoder, overwritten each hop
        assert it.valid
        assert it.probabilities.shape == (N_STATES,)
        assert np.isclose(it.probabilities.sum(), 1.0)
        assert 0 <= it.state < N_STATES and 0 <= it.raw_state < N_STATES
        assert it.raw_state == int(np.argmax(it.probabilities))
        assert 0.0 <= it.confidence <= 1.0
        assert it.confidence == pytest.approx(it.probabilities[it.state])


def test_predict_proba_contract(fitted: BaseDecoder) -> None:
    X, _ = gaussian_data(seed=2)
    P = fitted.predict_proba(X)
    assert P.shape == (X.shape[0], N_STATES)
    assert np.allclose(P.sum(axis=1), 1.0)


def test_invalid_features_give_rest(fitted: BaseDecoder) -> None:
    X, _ = gaussian_data(seed=3)
    fitted.step(X[0])
    for bad in (np.nan, np.inf, -np.inf):
        x = X[1].copy()
        x[2] = bad
        it = fitted.step(x)
        assert (it.valid, it.state, it.confidence) == (False, 0, 0.0)
    assert fitted.step(X[2]).valid


def test_save_load_round_trip_gives_identical_outputs(fitted: BaseDecoder,
                                                      tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "dec.npz")
    loaded = load_decoder(path)
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    X, _ = gaussian_data(seed=4)
    assert np.array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    fitted.reset()
    loaded.reset()
    for x in X:
        a, b = fitted.step(x), loaded.step(x)
        assert (a.state, a.raw_state, a.valid, a.confidence) == \
               (b.state, b.raw_state, b.valid, b.confidence)
        assert np.array_equal(a.probabilities, b.probabilities)
        assert np.array_equal(a.values, b.values, equal_nan=True)
    assert type(BaseDecoder.load(path)) is type(fitted)


def _rewrite_header(src: Path, dst: Path, **changes: object) -> None:
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    header.update(changes)
    with open(dst, "wb") as fh:
        np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)


def test_other_format_version_is_refused(fitted: BaseDecoder, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "dec.npz")
    other = tmp_path / "other.npz"
    _rewrite_header(path, other, format=DECODER_FILE_FORMAT + 1)
    with pytest.raises(DecoderFileError, match="format") as info:
        load_decoder(other)
    assert "\n" not in str(info.value)


def test_missing_garbage_and_unknown_kind_files_are_refused(fitted: BaseDecoder,
                                                            tmp_path: Path) -> None:
    with pytest.raises(DecoderFileError, match="does not exist"):
        load_decoder(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(DecoderFileError, match="not a neuroloop decoder file"):
        load_decoder(junk)
    path = fitted.save(tmp_path / "dec.npz")
    alien = tmp_path / "alien.npz"
    _rewrite_header(path, alien, kind="martian")
    with pytest.raises(DecoderFileError, match="martian"):
        load_decoder(alien)


def test_step_does_not_allocate_or_compile_after_warmup(fitted: BaseDecoder) -> None:
    X, _ = gaussian_data(seed=5)
    X[::97, 0] = np.nan  # invalid hops take the same path
    fitted.warmup()
    kernels = [dk.hmm_gate_step, dk.linear_softmax, dk.linear_softmax_rows, dk.lda_outputs]
    counts = [compiled_signature_count(k) for k in kernels]
    for x in X[:50]:
        fitted.step(x)
    rows = [np.ascontiguousarray(x) for x in X]
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(2000):
            fitted.step(rows[i % len(rows)])
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 1024, f"step allocated {peak - base} bytes over 2000 hops"
    assert current - base < 256
    assert [compiled_signature_count(k) for k in kernels] == counts
