"""The kalman family: least-squares fit, online step == textbook reference, steady state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.decoders import load_decoder, make_decoder
from neuroloop.decoders.kalman import KalmanDecoder
from neuroloop.errors import ConfigError
from tests.reference import kalman_ref


def _data(seed: int = 0, n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    return KalmanDecoder.example_data(n, seed)


@pytest.mark.parametrize("steady", [False, True])
def test_online_step_equals_textbook_reference(steady: bool) -> None:
    X, V = _data()
    dec = make_decoder("kalman", steady_state=steady).fit(X, V)
    Xt, _ = _data(seed=1, n=300)
    Xt[100, 3] = np.nan  # an invalid hop restarts the filter
    ref = kalman_ref(Xt, dec.mu_z_, dec.mu_x_, dec.A_, dec.W_, dec.H_, dec.Q_, dec.P0_,
                     dec.K_ if steady else None)
    dec.reset()
    got = np.array([dec.step(x).values.copy() for x in Xt])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dec.predict_outputs(Xt), ref, rtol=1e-9, atol=1e-12)
    assert not dec.step(Xt[100]).valid


def test_decodes_velocity_well() -> None:
    X, V = _data(n=1500)
    dec = make_decoder("kalman").fit(X[:1000], V[:1000])
    got = dec.predict_outputs(X[1000:])
    for i in range(2):
        assert np.corrcoef(got[:, i], V[1000:, i])[0, 1] > 0.9
    assert dec.output_schema_.output_names == ("velocity_x_m_per_s", "velocity_y_m_per_s")
    assert dec.output_schema_.output_units == ("m/s", "m/s")


def test_steady_state_gain_is_the_limit_of_the_recursion() -> None:
    X, V = _data()
    full = make_decoder("kalman").fit(X, V)
    steady = make_decoder("kalman", steady_state=True).fit(X, V)
    Xt, _ = _data(seed=3, n=400)
    a, b = full.predict_outputs(Xt), steady.predict_outputs(Xt)
    np.testing.assert_allclose(a[-100:], b[-100:], rtol=1e-6, atol=1e-9)


def test_named_outputs_round_trip(tmp_path: Path) -> None:
    X, V = _data()
    dec = make_decoder("kalman", output_names=["cursor_vx", "cursor_vy"],
                       output_units=["px/s", "px/s"]).fit(X, V, state_names=["still", "go"])
    back = load_decoder(dec.save(tmp_path / "k.npz"))
    assert back.output_schema_ == dec.output_schema_
    assert back.output_schema_.state_names == ("still", "go")


def test_bad_input() -> None:
    X, V = _data()
    with pytest.raises(ConfigError, match="output names"):
        make_decoder("kalman", output_names=["a"]).fit(X, V)
    with pytest.raises(ConfigError, match="ridge"):
        make_decoder("kalman", ridge=float("nan"))
    with pytest.raises(ConfigError, match="two states"):
        make_decoder("kalman", n_states=3)
    with pytest.raises(ConfigError, match="at least"):
        make_decoder("kalman").fit(X[:5], V[:5])
    with pytest.raises(ConfigError, match="not integer state labels"):
        make_decoder("kalman").fit(X, np.arange(X.shape[0]) % 3)
