"""The BaseDecoder contract, checked for every registered decoder (scikit-learn style)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from neuroloop._jit import total_compiled_signatures
from neuroloop.decoders import (
    DECODER_FILE_FORMAT,
    BaseDecoder,
    Intention,
    decoder_names,
    load_decoder,
    make_decoder,
)
from neuroloop.decoders.base import _decoder_class
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


@pytest.fixture(params=decoder_names())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def example(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Calibration data the kind can be fitted on (each kind provides its own)."""
    cls = _decoder_class(name)
    assert cls is not None
    return cls.example_data(600, seed)


@pytest.fixture
def fitted(name: str) -> BaseDecoder:
    X, y = example(name)
    return make_decoder(name).fit(X, y)


def test_lda_is_registered() -> None:
    assert "lda" in decoder_names()


def test_unknown_decoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown decoder 'nope'; use one of: .*lda"):
        make_decoder("nope")


def test_fit_returns_self_and_sets_shapes(name: str) -> None:
    X, y = example(name)
    dec = make_decoder(name)
    assert dec.fit(X, y) is dec
    assert dec.n_features == X.shape[1]
    if dec.continuous_targets:
        assert dec.output_schema_.n_outputs == (y.shape[1] if y.ndim == 2 else 1)
    else:
        assert dec.n_states == int(y.max()) + 1


def test_params_are_json_and_reconstruct(fitted: BaseDecoder, name: str) -> None:
    params = fitted.get_params()
    assert json.loads(json.dumps(params)) == params
    assert make_decoder(name, **params).get_params() == params


def test_step_output_contract(fitted: BaseDecoder, name: str) -> None:
    X, _ = example(name, seed=1)
    fitted.warmup()
    first = fitted.step(X[0])
    assert isinstance(first, Intention)
    n_states = fitted.n_states
    for x in X[:50]:
        it = fitted.step(x)
        assert it is first  # owned by the decoder, overwritten each hop
        assert it.valid
        assert it.values.shape == (fitted.output_schema_.n_outputs,)
        assert np.all(np.isfinite(it.values))
        assert it.probabilities.shape == (n_states,)
        assert np.isclose(it.probabilities.sum(), 1.0)
        assert 0 <= it.state < n_states and 0 <= it.raw_state < n_states
        assert it.raw_state == int(np.argmax(it.probabilities))
        assert 0.0 <= it.confidence <= 1.0
        assert it.confidence == pytest.approx(it.probabilities[it.state])


def test_predict_proba_contract(fitted: BaseDecoder, name: str) -> None:
    X, _ = example(name, seed=2)
    P = fitted.predict_proba(X)
    assert P.shape == (X.shape[0], fitted.n_states)
    assert np.allclose(P.sum(axis=1), 1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e308])
def test_invalid_features_give_rest(fitted: BaseDecoder, name: str, bad: float) -> None:
    X, _ = example(name, seed=3)
    fitted.step(X[0])
    x = X[1].copy()
    x[2] = bad
    it = fitted.step(x)
    if bad == 1e308:  # finite but absurd: either refused or decoded to finite numbers
        assert it.valid is False or np.all(np.isfinite(it.probabilities))
        fitted.reset()
    else:
        assert (it.valid, it.state, it.confidence) == (False, 0, 0.0)
        assert np.all(np.isnan(it.values))
    assert fitted.step(X[2]).valid


def test_determinism(name: str) -> None:
    X, y = example(name)
    a, b = make_decoder(name).fit(X, y), make_decoder(name).fit(X, y)
    Xt, _ = example(name, seed=6)
    for x in Xt[:100]:
        oa, ob = a.step(x), b.step(x)
        assert (oa.state, oa.valid) == (ob.state, ob.valid)
        assert np.array_equal(oa.probabilities, ob.probabilities)
        assert np.array_equal(oa.values, ob.values, equal_nan=True)


def test_save_load_round_trip_gives_identical_outputs(fitted: BaseDecoder,
                                                      tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "dec.npz")
    loaded = load_decoder(path)
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    X, _ = example(fitted.name, seed=4)
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


def test_step_does_not_allocate_or_compile_after_warmup(fitted: BaseDecoder,
                                                        name: str) -> None:
    X, _ = example(name, seed=5)
    X[::97, 0] = np.nan  # invalid hops take the same path
    fitted.warmup()
    compiled = total_compiled_signatures()
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
    assert total_compiled_signatures() == compiled
