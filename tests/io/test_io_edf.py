"""EDF+/BDF+: the real PhysioNet EEG and clinical ECoG files, unit conversion, selection
errors, labels from annotations, and the session exporter read back with pyEDFlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyedflib
import pytest
from io_fakes import write_session

from neuroloop.acquisition import NO_LABEL, open_source
from neuroloop.errors import ConfigError, RecordingError
from neuroloop.io import EdfSource, annotation_labels, export_edf, open_recording, read_edf
from neuroloop.io.edf import Annotation, parse_label_map, unit_to_uv

EEG = "eegmmi/S001R03.edf"
ECOG = "ecog/seizure_ecog.edf"


def _write_edf(path: Path, signals: list[np.ndarray], rates: list[float], *, dims=None,
               labels=None, annotations=(), bdf=False) -> None:
    n = len(signals)
    ftype = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    w = pyedflib.EdfWriter(str(path), n, file_type=ftype)
    dmax = 8388607 if bdf else 32767
    w.setSignalHeaders([{
        "label": (labels or [f"S{i}" for i in range(n)])[i],
        "dimension": (dims or ["uV"] * n)[i], "sample_frequency": rates[i],
        "physical_min": -1000.0, "physical_max": 1000.0, "digital_min": -dmax - 1,
        "digital_max": dmax, "transducer": "", "prefilter": ""} for i in range(n)])
    for onset, dur, text in annotations:
        w.writeAnnotation(onset, dur, text)
    w.writeSamples(signals)
    w.close()


# -- the real recordings ---------------------------------------------------------------------
def test_read_eegmmi(shared_data):
    data, fs, names, ann = read_edf(shared_data / EEG)
    assert data.shape == (20000, 64) and data.dtype == np.float64 and data.flags.c_contiguous
    assert fs == 160.0
    assert names[:3] == ("Fc5.", "Fc3.", "Fc1.") and "C3.." in names and "C4.." in names
    r = pyedflib.EdfReader(str(shared_data / EEG))
    try:
        assert r.getPhysicalDimension(8) == "uV"
        for ch in (0, 8, 63):
            np.testing.assert_array_equal(data[:, ch], r.readSignal(ch))
    finally:
        r.close()
    assert len(ann) == 30 and {a.text for a in ann} == {"T0", "T1", "T2"}
    assert ann[0] == Annotation(0.0, 4.2, "T0")
    assert all(4.0 <= a.duration_s <= 4.3 for a in ann)


def test_eegmmi_source_with_channels_and_labels(shared_data):
    url = f"edf://{shared_data / EEG}?channels=C3..,c4,Cz&labels=T0:rest,T1:left,T2:right"
    full, _, names, ann = read_edf(shared_data / EEG)
    cols = [names.index("C3.."), names.index("C4.."), names.index("Cz..")]
    with open_source(url) as src:
        assert isinstance(src, EdfSource)
        assert src.info.channel_names == ("C3..", "C4..", "Cz..")
        assert src.info.intention_names == ("rest", "left", "right")
        assert src.info.sampling_rate_hz == 160.0 and src.info.unit == "uV"
        assert len(src.annotations) == 30
        chunks, labels, nxt = [], [], 0
        while (b := src.read(37)) is not None:
            assert b.first_index == nxt
            nxt += b.n_samples
            chunks.append(b.data.copy())
            labels.append(b.labels.copy())
        assert src.exhausted
    data = np.concatenate(chunks)
    np.testing.assert_array_equal(data, full[:, cols])
    lab = np.concatenate(labels)
    ref, names_ref = annotation_labels(ann, parse_label_map("T0:rest,T1:left,T2:right"),
                                       20000, 160.0)
    assert names_ref == ("rest", "left", "right")
    np.testing.assert_array_equal(lab, ref)
    code = {"T0": 0, "T1": 1, "T2": 2}
    for a in ann:  # every annotation labels its samples
        s0 = int(round(a.onset_s * 160))
        s1 = int(round((a.onset_s + a.duration_s) * 160))
        assert (lab[s0:s1] == code[a.text]).all()
    assert (lab[int(round((ann[-1].onset_s + ann[-1].duration_s) * 160)):] == NO_LABEL).all()
    events = EdfSource(shared_data / EEG, label_map="T0:rest,T1:left,T2:right"
                       ).annotation_events()
    assert events[1] == {"kind": "annotation", "onset_s": 4.2, "duration_s": 4.1, "text": "T2",
                         "sample": 672, "label": 2}


def test_seizure_ecog(shared_data):
    data, fs, names, ann = read_edf(shared_data / ECOG)
    assert data.shape == (21658, 78)
    assert fs == pytest.approx(999.412, abs=1e-3)
    assert names[0] == "C1"
    assert len(ann) == 1 and ann[0].text == "eeg sz start"
    assert ann[0].onset_s == pytest.approx(10.22874)
    src = EdfSource(shared_data / ECOG, channel_type="ecog", channels=["C1", "C2"],
                    label_map={"eeg sz start": "seizure"}).open()
    assert src.info.channel_types == ("ecog", "ecog")
    labels = []
    while (b := src.read(500)) is not None:
        labels.append(b.labels.copy())
    src.close()
    lab = np.concatenate(labels)
    onset = int(round(10.22874 * fs))
    # a point annotation lasts until the next mapped one (here: the end of the file)
    assert (lab[:onset] == NO_LABEL).all() and (lab[onset:] == 0).all()


# -- units, selection and errors -------------------------------------------------------------
def test_physical_units_are_converted_to_microvolts(tmp_path):
    x = np.linspace(-0.5, 0.5, 200)
    f = tmp_path / "units.edf"
    _write_edf(f, [x, x, x * 1000], [100, 100, 100], dims=["mV", "V", "uV"])
    data, _, _, _ = read_edf(f)
    q = 2000.0 / 65535  # one quantisation step of the file in its own unit
    np.testing.assert_allclose(data[:, 0], x * 1e3, atol=q * 1e3)
    np.testing.assert_allclose(data[:, 1], x * 1e6, atol=q * 1e6)
    np.testing.assert_allclose(data[:, 2], x * 1000, atol=q)
    scaled, _, _, _ = read_edf(f, ["S2"], scale=2.0)
    np.testing.assert_allclose(scaled[:, 0], data[:, 2] * 2.0)
    assert unit_to_uv("\u00b5V") == 1.0 and unit_to_uv("mmHg") is None


def test_unequal_rates_name_channels_and_fix(tmp_path):
    f = tmp_path / "rates.edf"
    _write_edf(f, [np.zeros(200), np.zeros(400)], [100, 200], labels=["EEG C3", "EMG"])
    with pytest.raises(ConfigError) as ei:
        open_source(f"edf://{f}")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "unequal sampling rates" in msg and "100 Hz: EEG C3" in msg and "200 Hz: EMG" in msg
    assert "channels=" in msg
    src = open_source(f"edf://{f}?channels=EMG")
    assert src.info.sampling_rate_hz == 200.0


def test_bad_inputs(tmp_path, shared_data):
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(f"edf://{tmp_path / 'none.edf'}")
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"0       this is not an EDF header" * 10)
    with pytest.raises(RecordingError, match="not a readable EDF/BDF file"):
        read_edf(junk)
    with pytest.raises(ConfigError, match="channel 'Cxx' is not in S001R03.edf"):
        read_edf(shared_data / EEG, ["Cxx"])
    with pytest.raises(ConfigError, match="selected twice"):
        read_edf(shared_data / EEG, ["C3..", "c3"])
    with pytest.raises(ConfigError, match="unknown edf option"):
        open_source(f"edf://{shared_data / EEG}?rate=3")
    with pytest.raises(ConfigError, match="no annotation .* matches labels"):
        open_source(f"edf://{shared_data / EEG}?labels=X:rest")
    with pytest.raises(ConfigError, match="ANNOTATION:NAME"):
        open_source(f"edf://{shared_data / EEG}?labels=T0")
    with pytest.raises(ConfigError, match="not a channel type"):
        open_source(f"edf://{shared_data / EEG}?type=meg")
    with pytest.raises(ConfigError, match="scale"):
        open_source(f"edf://{shared_data / EEG}?scale=abc")
    f = tmp_path / "pressure.edf"
    _write_edf(f, [np.zeros(100)], [100], dims=["mmHg"], labels=["BP"])
    with pytest.raises(ConfigError, match="'BP' .* 'mmHg', not a voltage"):
        read_edf(f)
    assert read_edf(f, unit="uV")[0].shape == (100, 1)


def test_bdf_scheme(tmp_path):
    x = np.sin(np.arange(512) / 10.0) * 300
    f = tmp_path / "sig.bdf"
    _write_edf(f, [x, -x], [256, 256], bdf=True, annotations=[(1.0, 0.5, "T1")])
    src = open_source(f"bdf://{f}?labels=T1:move")
    assert src.info.intention_names == ("move",)
    src.open()
    b = src.read(512)
    src.close()
    np.testing.assert_allclose(b.data[:, 0], x, atol=2000.0 / 2**24 * 2)
    assert (b.labels[256:384] == 0).all() and (b.labels[:256] == NO_LABEL).all()


# -- export ------------------------------------------------------------------------------------
def _read_back(path: Path):
    r = pyedflib.EdfReader(str(path))
    try:
        n = r.signals_in_file
        data = np.stack([r.readSignal(i) for i in range(n)], axis=1)
        info = {"labels": r.getSignalLabels(), "fs": r.getSampleFrequencies(),
                "pmin": np.array([r.getPhysicalMinimum(i) for i in range(n)]),
                "pmax": np.array([r.getPhysicalMaximum(i) for i in range(n)]),
                "dmin": np.array([r.getDigitalMinimum(i) for i in range(n)]),
                "dmax": np.array([r.getDigitalMaximum(i) for i in range(n)]),
                "dims": [r.getPhysicalDimension(i) for i in range(n)],
                "filetype": r.filetype, "equipment": r.getEquipment()}
        onsets, durations, texts = r.readAnnotations()
    finally:
        r.close()
    return data, info, list(zip(onsets, durations, texts, strict=True))


@pytest.mark.parametrize("suffix", [".edf", ".bdf"])
def test_export_round_trip(tmp_path, suffix):
    s = write_session(tmp_path / "s", n_cycles=60, hop=10, rate=100.0, gaps={25: 30},
                      events_every=7)
    out = tmp_path / f"out{suffix}"
    result = export_edf(s.path, out)
    data, info, ann = _read_back(out)
    assert info["labels"] == [f"E{i}" for i in range(4)]
    assert list(info["fs"]) == [100.0] * 4 and info["dims"] == ["uV"] * 4
    assert info["filetype"] == (pyedflib.FILETYPE_BDFPLUS if suffix == ".bdf"
                                else pyedflib.FILETYPE_EDFPLUS)
    assert info["equipment"] == "neuroloop"
    # stream positions: samples before the gap, 30 zeros, samples after
    span = 600 + 30
    assert result["n_samples"] == span and result["gap_samples"] == 30
    assert data.shape[0] >= span and data.shape[0] % 100 == 0  # whole 1-s records
    expected = np.zeros((span, 4))
    expected[:250] = s.samples[:250]
    expected[280:] = s.samples[250:]
    step = (info["pmax"] - info["pmin"]) / (info["dmax"] - info["dmin"])
    assert (np.abs(data[:span] - expected) <= step + 1e-9).all()  # EDFlib truncates
    assert (info["pmin"] <= s.samples.min(axis=0)).all()
    assert (info["pmax"] >= s.samples.max(axis=0)).all()
    texts = [t for _, _, t in ann]
    assert result["annotations"] == len(ann) and result["annotations_dropped"] == 0
    # intention changes at the end of the hop that decided them
    names = ("rest", "left", "right")
    prev = None
    for row in s.cycles:
        t = int(row["true_state"])
        if t != prev:
            onset = (int(row["first_sample"]) + 10) / 100.0
            assert (pytest.approx(onset), -1.0, f"true: {names[t]}") in [
                (o, d, x) for o, d, x in ann]
        prev = t
    assert any(t.startswith("decoded: ") for t in texts)
    assert any(t.startswith("stim on: ") for t in texts) and "stim off" in texts
    assert any(t.startswith("supervisor: STIMULATING") for t in texts)
    assert any(t == "interlock: slew_up" for t in texts)
    assert any(t.startswith("note: note 3") for t in texts)
    gap = [(o, d) for o, d, t in ann if t == "samples lost: 30"]
    assert gap == [(pytest.approx(2.5), pytest.approx(0.3))]
    # 630 samples in 1-s records: 70 zeros of padding, marked so nobody reads them as signal
    assert result["padding_samples"] == data.shape[0] - span == 70
    assert (np.abs(data[span:]) <= step + 1e-9).all()  # zero, to one quantisation step
    pad = [(o, d) for o, d, t in ann if t == "padding: 70 zero samples"]
    assert pad == [(pytest.approx(6.3), pytest.approx(0.7))]


def test_export_coalesces_interlock_runs_and_fits_capacity(tmp_path):
    """One interlock event per cycle for 30 s: runs become one annotation each; nothing is
    silently lost to EDF's annotation capacity."""
    from neuroloop.io.recorder import SessionRecorder
    from neuroloop.records import cycle_dtype

    r = SessionRecorder(tmp_path / "s")
    r.on_start({"channel_names": ["a"], "channel_types": ["eeg"], "sampling_rate_hz": 100.0,
                "hop_samples": 10, "n_features": 1, "n_states": 2, "n_contacts": 1,
                "intention_names": ["rest", "move"]})
    row = np.zeros(1, dtype=cycle_dtype(1, 2, 1))
    for k in range(300):
        r.on_samples(np.full((10, 1), float(k)), 10 * k)
        reason = "slew_up" if (k // 20) % 2 else "shannon"
        r.on_events([{"reason": reason, "cycle": k}])
        row["cycle"] = k
        row["first_sample"] = 10 * k
        row["state"] = k % 2  # a decoded change every cycle: 10 annotations per second
        r.on_cycle(row)
    r.on_stop({})
    result = export_edf(tmp_path / "s", tmp_path / "o.edf")
    _, _, ann = _read_back(tmp_path / "o.edf")
    texts = [t for _, _, t in ann]
    assert result["annotations_dropped"] == 0
    assert texts.count("decoded: move") == 150
    runs = [(o, d, t) for o, d, t in ann if t.startswith("interlock")]
    assert len(runs) == 15 and runs[0][2] == "interlock: shannon x20"
    assert runs[1][0] == pytest.approx(2.1) and runs[1][1] == pytest.approx(1.9)


def test_export_errors(tmp_path):
    with pytest.raises(RecordingError, match="does not exist"):
        export_edf(tmp_path / "missing", tmp_path / "o.edf")
    write_session(tmp_path / "empty", n_cycles=0)
    with pytest.raises(RecordingError, match="no samples"):
        export_edf(tmp_path / "empty", tmp_path / "o.edf")


def test_exported_session_reads_back_through_the_edf_source(tmp_path):
    s = write_session(tmp_path / "s", n_cycles=20, hop=10, rate=100.0)
    export_edf(s.path, tmp_path / "o.edf")
    src = open_source(f"edf://{tmp_path / 'o.edf'}?labels=true: left:left,true: right:right")
    assert src.info.channel_names == tuple(open_recording(s.path).channel_names)
    assert "left" in src.info.intention_names or "right" in src.info.intention_names


def test_scenario_source_options_are_ignored(shared_data, tmp_path):
    """A scenario hands seed/snr to every source; a file ignores them, other keys fail."""
    src = open_source(f"edf://{shared_data / EEG}", seed=5, snr=1.0)
    assert src.info.n_channels == 64
    s = write_session(tmp_path / "s", n_cycles=2)
    assert open_source(f"replay://{s.path}", seed=1, snr=2.0).info.n_channels == 4
    with pytest.raises(ConfigError, match="unknown replay option"):
        open_source(f"replay://{s.path}", gain=2)
