"""MNE-Python interoperability: ``to_mne`` (types, units, annotations), our EDF+ export read by
MNE with the same annotations, ``neuroloop export --fif``, and ``mne://`` sources (EDF, FIF,
BrainVision) with annotations as labels by name; a file MNE cannot read is one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

mne = pytest.importorskip("mne")

from neuroloop.acquisition import open_source  # noqa: E402
from neuroloop.io import open_recording  # noqa: E402
from neuroloop.io.edf import export_edf, session_annotations  # noqa: E402
from neuroloop.io.mne_export import to_mne  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from neuroloop.cli import main; sys.exit(main())"]
LABELS = "T0:rest,T1:left,T2:right"


def neuroloop(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """A 15 s bsi session on the simulated clock with a fault injected (interlock events)."""
    d = tmp_path_factory.mktemp("mne") / "bsi"
    r = neuroloop("run", "--scenario", "bsi", "--duration", "15", "--fast", "--record", str(d),
                  "--inject", "decoder-max@5:2", "--json")
    assert r.returncode == 0, r.stderr
    return d


def _ann(raw) -> list[tuple[str, float, float]]:
    return sorted((str(d), round(float(o), 3), round(float(du), 3))
                  for o, du, d in zip(raw.annotations.onset - (raw.first_time if raw.annotations.orig_time else 0.0),
                                      raw.annotations.duration, raw.annotations.description,
                                      strict=True))


def _same_annotations(a: list, b: list) -> None:
    assert [x[0] for x in a] == [x[0] for x in b]
    np.testing.assert_allclose([x[1:] for x in a], [x[1:] for x in b], rtol=0, atol=1.5e-3)


def test_to_mne_has_types_units_data_and_the_session_annotations(session):
    rec = open_recording(session)
    raw = to_mne(rec)
    assert raw.ch_names == list(rec.channel_names)
    assert raw.info["sfreq"] == rec.sampling_rate_hz
    assert set(raw.get_channel_types()) == {"ecog"}  # bsi records ECoG
    assert all(ch["unit"] == mne.io.constants.FIFF.FIFF_UNIT_V for ch in raw.info["chs"])
    n = rec.n_samples
    np.testing.assert_allclose(raw.get_data()[:, :n], rec.samples[:n].T * 1e-6, rtol=0,
                               atol=1e-15)  # microvolts -> volts, no gaps in this session
    items, _, span, _ = session_annotations(rec)
    assert raw.n_times == span
    texts = [str(t) for t in raw.annotations.description]
    assert sorted(texts) == sorted(a[2] for a in items)
    assert any(t.startswith("interlock: ") for t in texts)
    assert any(t.startswith("decoded: ") for t in texts) and any(t.startswith("stim on") for t in texts)
    assert raw.info["description"].endswith("bsi")


def test_our_edf_export_opens_in_mne_with_the_same_annotations(session, tmp_path):
    out = tmp_path / "s.edf"
    export_edf(session, out)
    edf = mne.io.read_raw_edf(out, preload=True, verbose="error")
    ours = to_mne(session)
    edf_ann = [a for a in _ann(edf) if not a[0].startswith("padding")]
    _same_annotations(edf_ann, _ann(ours))  # same texts, onsets and durations (to the ms)
    assert edf.ch_names == ours.ch_names
    n = ours.n_times
    # 16-bit EDF: within one quantisation step of each channel's range
    step = (ours.get_data().max(axis=1) - ours.get_data().min(axis=1)) * 1.03 / 65535
    assert np.all(np.abs(edf.get_data()[:, :n] - ours.get_data()).max(axis=1) <= step + 1e-12)


def test_export_fif_from_the_command_line(session, tmp_path):
    out = tmp_path / "s_raw.fif"
    r = neuroloop("export", str(session), "--fif", str(out), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)["fif"]
    fif = mne.io.read_raw_fif(out, preload=True, verbose="error")
    ours = to_mne(session)
    assert result["n_channels"] == len(fif.ch_names) and result["annotations"] == len(fif.annotations)
    _same_annotations(_ann(fif), _ann(ours))
    np.testing.assert_allclose(fif.get_data(), ours.get_data(), rtol=1e-6, atol=1e-12)
    assert fif.get_channel_types() == ours.get_channel_types()
    r = neuroloop("export", str(session))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--fif" in r.stderr


def test_mne_source_equals_edf_source_on_eegmmi(shared_data):
    f = shared_data / "eegmmi" / "S001R04.edf"
    a = open_source(f"edf://{f}?labels={LABELS}")
    b = open_source(f"mne://{f}?labels={LABELS}")
    assert a.info == b.info
    with a, b:
        while True:
            x, y = a.read(1000), b.read(1000)
            if x is None:
                assert y is None
                break
            np.testing.assert_allclose(y.data, x.data, rtol=0, atol=1e-9)
            np.testing.assert_array_equal(y.labels, x.labels)


def _write_brainvision(base: Path, data_uv: np.ndarray, fs: float, names: list[str],
                       annotations: list[tuple[float, float, str]]) -> Path:
    """A minimal BrainVision file set (.vhdr/.vmrk/.eeg, float32, microvolts)."""
    vhdr, vmrk, eeg = base.with_suffix(".vhdr"), base.with_suffix(".vmrk"), base.with_suffix(".eeg")
    data_uv.astype("<f4").tofile(eeg)
    chans = "\n".join(f"Ch{i + 1}={n},,1,µV" for i, n in enumerate(names))
    vhdr.write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={eeg.name}\nMarkerFile={vmrk.name}\nDataFormat=BINARY\n"
        f"DataOrientation=MULTIPLEXED\nNumberOfChannels={len(names)}\n"
        f"SamplingInterval={1e6 / fs:g}\n\n[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n\n"
        f"[Channel Infos]\n{chans}\n", encoding="utf-8")
    marks = "\n".join(f"Mk{i + 2}=Comment,{t},{int(round(o * fs)) + 1},{max(1, int(round(d * fs)))},0"
                      for i, (o, d, t) in enumerate(annotations))
    vmrk.write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={eeg.name}\n\n[Marker Infos]\nMk1=New Segment,,1,1,0\n{marks}\n",
        encoding="utf-8")
    return vhdr


def test_mne_source_reads_fif_and_brainvision_with_annotations_as_labels(shared_data, tmp_path):
    from neuroloop.io.edf import read_edf

    f = shared_data / "eegmmi" / "S001R04.edf"
    ref = open_source(f"edf://{f}?labels={LABELS}&channels=C3..,Cz..,C4..")
    with ref:
        want = ref.read(ref.n_samples)
        want_data, want_labels = want.data.copy(), want.labels.copy()
    raw = mne.io.read_raw_edf(f, preload=True, verbose="error").pick(["C3..", "Cz..", "C4.."])
    fif = tmp_path / "r04_raw.fif"
    raw.save(fif, verbose="error")
    src = open_source(f"mne://{fif}?labels={LABELS}")
    assert src.info.channel_names == ("C3..", "Cz..", "C4..")
    assert src.info.intention_names == ("rest", "left", "right")
    with src:
        got = src.read(src.n_samples)
    np.testing.assert_array_equal(got.labels, want_labels)
    np.testing.assert_allclose(got.data, want_data, rtol=1e-6, atol=1e-6)  # FIF is float32

    data, fs, names, anns = read_edf(f, ["C3..", "Cz..", "C4.."])
    vhdr = _write_brainvision(tmp_path / "r04", data, fs, list(names),
                              [(a.onset_s, a.duration_s, a.text) for a in anns])
    bv = open_source(f"mne://{vhdr}?labels=Comment/T0:rest,Comment/T1:left,Comment/T2:right")
    with bv:
        got = bv.read(bv.n_samples)
    assert bv.info.intention_names == ("rest", "left", "right")
    np.testing.assert_array_equal(got.labels, want_labels)
    np.testing.assert_allclose(got.data, want_data, rtol=1e-6, atol=1e-3)


def test_a_file_mne_cannot_read_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "noise.fif"
    bad.write_bytes(bytes(range(256)) * 64)
    r = neuroloop("train", "--scenario", "eeg-bci", "--source", f"mne://{bad}", "--out",
                  str(tmp_path / "d.npz"), "--json")  # train opens the source first
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "MNE-Python cannot read" in lines[0] and "Traceback" not in r.stderr
    from neuroloop.errors import NeuroloopError

    for url in (f"mne://{tmp_path / 'missing.vhdr'}", f"mne://{tmp_path}", "mne://"):
        with pytest.raises(NeuroloopError) as err:
            open_source(url)
        assert "\n" not in str(err.value)


@pytest.mark.slow  # four command-line runs; the calibration bar is tested in process below
def test_progress_bars_on_a_terminal_and_never_with_json(session, tmp_path):
    import os

    env = {**os.environ, "NEUROLOOP_PROGRESS": "1"}  # as on a terminal
    r = neuroloop("export", str(session), "--edf", str(tmp_path / "a.edf"), env=env)
    assert r.returncode == 0 and "export EDF" in r.stderr and "record" in r.stderr
    assert r.stdout.strip() == f"wrote {tmp_path / 'a.edf'}"
    r = neuroloop("export", str(session), "--edf", str(tmp_path / "b.edf"), "--fif",
                  str(tmp_path / "b_raw.fif"), "--json", env=env)
    assert r.returncode == 0 and "export EDF" not in r.stderr and "to MNE" not in r.stderr
    assert set(json.loads(r.stdout)) == {"edf", "fif"}
    r = neuroloop("replay", str(session), "--check", env=env)
    assert r.returncode == 0 and "cycle" in r.stderr and "replay:" in r.stderr
    r = neuroloop("replay", str(session), "--check", "--json", env=env)
    assert r.returncode == 0 and "replay:" not in r.stderr
    json.loads(r.stdout)


def test_calibration_shows_a_progress_bar(monkeypatch, capsys):
    from neuroloop.config import load_scenario
    from neuroloop.runtime.session import build_pipeline, calibration_data

    scenario = load_scenario("eeg-bci")
    monkeypatch.setenv("NEUROLOOP_PROGRESS", "1")
    calibration_data(scenario, build_pipeline(scenario), duration_s=5.0)
    assert "calibrate" in capsys.readouterr().err
    calibration_data(scenario, build_pipeline(scenario), duration_s=5.0, as_json=True)
    assert "calibrate" not in capsys.readouterr().err


def test_to_mne_puts_samples_at_their_stream_positions_around_a_gap(tmp_path):
    from io_fakes import write_session

    s = write_session(tmp_path / "s", n_cycles=60, hop=10, rate=100.0, gaps={25: 30},
                      events_every=7)
    raw = to_mne(s.path)
    assert raw.n_times == 630 and raw.info["sfreq"] == 100.0
    expected = np.zeros((630, 4))
    expected[:250] = s.samples[:250]
    expected[280:] = s.samples[250:]
    np.testing.assert_allclose(raw.get_data().T, expected * 1e-6, rtol=0, atol=1e-18)
    gap = [(o, d) for o, d, t in zip(raw.annotations.onset - raw.first_time
                                     if raw.annotations.orig_time else raw.annotations.onset,
                                     raw.annotations.duration, raw.annotations.description,
                                     strict=True) if t == "samples lost: 30"]
    assert gap == [(pytest.approx(2.5), pytest.approx(0.3))]
    assert "interlock: slew_up" in set(raw.annotations.description)
