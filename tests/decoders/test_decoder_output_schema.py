"""DecoderOutput's continuous values, the declared OutputSchema, and decoder file format 2
(format-1 files, such as the 0.1.0 fixture's decoder, still load)."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from reference import lda_outputs_ref
from test_decoder_contract import gaussian_data

from neuroloop.decoders import (
    DECODER_FILE_FORMAT,
    BaseDecoder,
    DecoderOutput,
    Intention,
    LDADecoder,
    OutputSchema,
    decoder_names,
    load_decoder,
    make_decoder,
)
from neuroloop.decoders import base as dbase
from neuroloop.errors import ConfigError, DecoderFileError

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "recording-0.1.0-bsi"
NAMES = ("rest", "left", "right")
LDA_OUTPUTS = ("confidence", "state_margin", "movement_probability")


def _classifiers() -> list[str]:
    """Kinds calibrated from labels with any number of states (the biomarker decoder has two
    fixed states and is checked in tests/adbs)."""
    return [n for n in decoder_names()
            if getattr(dbase.decoder_class(n), "supervised", True)]


@pytest.fixture(params=_classifiers())
def fitted(request: pytest.FixtureRequest) -> BaseDecoder:
    X, y = gaussian_data()
    return make_decoder(request.param).fit(X, y, state_names=NAMES)


def test_intention_is_the_old_name_of_decoder_output() -> None:
    assert Intention is DecoderOutput
    out = Intention(state=1, probabilities=np.zeros(3), confidence=0.5)  # the old call
    assert out.values.shape == (0,) and out.schema is None


def test_fit_declares_the_schema(fitted: BaseDecoder) -> None:
    schema = fitted.output_schema_
    assert schema.state_names == NAMES and schema.states_named
    assert schema.output_names == tuple(n for n, _ in fitted.outputs)
    assert len(schema.output_units) == schema.n_outputs
    out = fitted.step(gaussian_data(seed=1)[0][0])
    assert out.schema is schema
    assert out.values.shape == (schema.n_outputs,) and out.values.dtype == np.float64


def test_without_state_names_states_are_numbered() -> None:
    X, y = gaussian_data()
    dec = LDADecoder().fit(X, y)
    assert dec.output_schema_.state_names == ("state0", "state1", "state2")
    assert not dec.output_schema_.states_named
    with pytest.raises(ConfigError, match="2 state names for 3 states"):
        LDADecoder().fit(X, y, state_names=["rest", "go"])


def test_lda_outputs_follow_their_definition() -> None:
    X, y = gaussian_data(seed=2)
    X[::37, 1] = np.nan
    dec = LDADecoder().fit(*gaussian_data(), state_names=NAMES)
    assert dec.output_schema_.output_names == LDA_OUTPUTS
    assert dec.output_schema_.output_units == ("1", "1", "1")
    values_before = dec.step(X[0]).values
    for x in X:
        out = dec.step(x)
        assert out.values is values_before  # preallocated, overwritten in place
        ref = lda_outputs_ref(out.probabilities, out.state, out.valid)
        np.testing.assert_allclose(out.values, ref, rtol=0, atol=1e-15, equal_nan=True)
        if out.valid:
            assert out.values[0] == out.confidence
            assert 0.0 <= out.values[1] <= 1.0 and 0.0 <= out.values[2] <= 1.0
            assert out.value("state_margin") == out.values[1]
        else:
            assert np.all(np.isnan(out.values))


def test_schema_validation() -> None:
    with pytest.raises(ValueError, match="one unit per output"):
        OutputSchema(NAMES, ("a",), ())
    with pytest.raises(ValueError, match="not a lower-case identifier"):
        OutputSchema(NAMES, ("Beta Power",), ("dB",))
    with pytest.raises(ValueError, match="not distinct"):
        OutputSchema(NAMES, ("a", "a"), ("1", "1"))
    with pytest.raises(ValueError, match="at least two distinct"):
        OutputSchema(("rest",))
    s = OutputSchema(NAMES, ("beta_power_db", "detector_score"), ("dB", "1"))
    assert s.index("detector_score") == 1 and OutputSchema.from_dict(s.to_dict()) == s
    assert s.describe_outputs() == "beta_power_db [dB], detector_score [1]"
    with pytest.raises(KeyError):
        s.index("velocity_x_m_per_s")


def test_format_2_records_the_schema(fitted: BaseDecoder, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "d.npz")
    with np.load(path) as npz:
        header = json.loads(bytes(npz["header"]).decode())
    assert DECODER_FILE_FORMAT == 2 and header["format"] == 2
    assert header["schema"] == fitted.output_schema_.to_dict()
    loaded = load_decoder(path)
    assert loaded.output_schema_ == fitted.output_schema_
    assert loaded.step(gaussian_data()[0][0]).schema == fitted.output_schema_


def _rewrite(src: Path, dst: Path, drop: tuple[str, ...] = (), **changes: object) -> Path:
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    header.update(changes)
    for k in drop:
        header.pop(k, None)
    with open(dst, "wb") as fh:
        np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    return dst


def test_the_0_1_0_fixture_decoder_loads_with_a_derived_schema() -> None:
    dec = load_decoder(FIXTURE / "decoder.npz")
    schema = dec.output_schema_
    assert schema.n_states == 7 and not schema.states_named
    assert schema.output_names == LDA_OUTPUTS
    out = dec.step(dec.mean_.copy())
    assert out.valid and np.all(np.isfinite(out.values))


def test_format_1_and_2_decode_identically(tmp_path: Path) -> None:
    v1 = load_decoder(FIXTURE / "decoder.npz")
    v2 = load_decoder(v1.save(tmp_path / "v2.npz"))
    rng = np.random.default_rng(3)
    X = v1.mean_ + rng.normal(0, 1, (300, v1.n_features)) * v1.scale_
    for x in X:
        a, b = v1.step(x), v2.step(x)
        assert (a.state, a.confidence) == (b.state, b.confidence)
        assert np.array_equal(a.values, b.values, equal_nan=True)


def test_a_format_1_file_written_now_still_loads(fitted: BaseDecoder, tmp_path: Path) -> None:
    v1 = _rewrite(fitted.save(tmp_path / "d.npz"), tmp_path / "v1.npz", drop=("schema",),
                  format=1)
    assert load_decoder(v1).output_schema_.state_names == ("state0", "state1", "state2")


@pytest.mark.parametrize(("schema", "pattern"), [
    (None, "malformed output schema"),
    ({"state_names": ["a", "b", "c"]}, "malformed output schema"),
    ({"state_names": ["a", "b"], "output_names": list(LDA_OUTPUTS),
      "output_units": ["1"] * 3}, "names 2 states but its model has 3"),
    ({"state_names": list(NAMES), "output_names": ["beta_power_db"], "output_units": ["dB"]},
     r"records outputs beta_power_db \[dB\] but decoder kind lda now computes confidence"),
])
def test_a_bad_recorded_schema_is_refused(tmp_path: Path, schema: object, pattern: str) -> None:
    dec = LDADecoder().fit(*gaussian_data(), state_names=NAMES)
    bad = _rewrite(dec.save(tmp_path / "d.npz"), tmp_path / "bad.npz", schema=schema)
    with pytest.raises(DecoderFileError, match=pattern) as info:
        load_decoder(bad)
    assert "\n" not in str(info.value)


def test_a_decoder_kind_from_an_entry_point(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    eps = [EntryPoint("lda2", "neuroloop.decoders.lda:LDADecoder", dbase.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(dbase, "entry_points", lambda *, group: [e for e in eps
                                                                   if e.group == group])
    monkeypatch.setattr(dbase, "_REGISTRY", dict(dbase._REGISTRY))
    assert "lda2" in decoder_names()
    dec = make_decoder("lda2")
    assert isinstance(dec, LDADecoder)
    eps.append(EntryPoint("bogus", "neuroloop.errors:ConfigError", dbase.ENTRY_POINT_GROUP))
    with pytest.raises(ConfigError, match="not a BaseDecoder subclass"):
        make_decoder("bogus")
