"""EDF labels map to the scenario's intention states by name, in any order.

``edf://FILE?labels=T2:right,T1:left,T0:rest`` must train and score exactly as
``labels=T0:rest,T1:left,T2:right``: a sample's label is the index of its state in the
scenario's intention list, not the position in the URL. A label naming a state the scenario
does not have, and a scenario state that no annotation is mapped to, are one-line errors.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyedflib
import pytest

from neuroloop.acquisition import NO_LABEL, open_source
from neuroloop.acquisition.base import BaseSource, Block, SourceInfo
from neuroloop.config import load_scenario
from neuroloop.errors import ConfigError
from neuroloop.io import annotation_labels, read_edf
from neuroloop.io.edf import parse_label_map
from neuroloop.records import LoopListener
from neuroloop.runtime.session import (
    RunOptions,
    Session,
    build_pipeline,
    calibration_data,
    check_source,
    train_decoder,
)

CLI = [sys.executable, "-c", "import sys; from neuroloop.cli import main; sys.exit(main())"]
EEG = "eegmmi/S001R03.edf"
NAMES = ("rest", "left", "right")  # the eeg-bci scenario's intentions
CODE = {"T0": 0, "T1": 1, "T2": 2}  # annotation -> index of its state in NAMES
ORDERS = [",".join(p) for p in itertools.permutations(("T0:rest", "T1:left", "T2:right"))]
FS, N_CH, SEG_S, N_SEG = 100.0, 4, 3.0, 30


def _write_tiny_edf(path: Path) -> None:
    """4 channels at 100 Hz, 90 s: T0/T1/T2 segments of 3 s in turn, each with its own
    10 Hz amplitude pattern (so a decoder has something to learn)."""
    rng = np.random.default_rng(7)
    n = int(N_SEG * SEG_S * FS)
    t = np.arange(n) / FS
    gain = {"T0": (40, 40, 20, 20), "T1": (10, 40, 20, 20), "T2": (40, 10, 20, 20)}
    data = rng.normal(0, 10, (N_CH, n))
    seg = int(SEG_S * FS)
    texts = []
    for k in range(N_SEG):
        text = ("T0", "T1", "T2", "T0", "T2", "T1")[k % 6]
        texts.append(text)
        sl = slice(k * seg, (k + 1) * seg)
        for ch in range(N_CH):
            data[ch, sl] += gain[text][ch] * np.sin(2 * np.pi * 10 * t[sl] + ch)
    w = pyedflib.EdfWriter(str(path), N_CH, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setSignalHeaders([{"label": f"E{i}", "dimension": "uV", "sample_frequency": FS,
                             "physical_min": -1000.0, "physical_max": 1000.0,
                             "digital_min": -32768, "digital_max": 32767, "transducer": "",
                             "prefilter": ""} for i in range(N_CH)])
        for k, text in enumerate(texts):
            w.writeAnnotation(k * SEG_S, SEG_S, text)
        w.writeSamples(list(data))
    finally:
        w.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "tiny.edf"
    _write_tiny_edf(path)
    return path


def _config(tmp_path: Path, url: str, *, rate: float = FS, n_channels: int = N_CH,
            hop: int = 10, calibration_s: float = 80.0, name: str = "tiny") -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f"""base = "eeg-bci"
[scenario]
name = "{name}"
[source]
url = "{url}"
sampling_rate_hz = {rate}
n_channels = {n_channels}
[dsp]
hop_samples = {hop}
notch_hz = []
[decoder]
calibration_s = {calibration_s}
""")
    return cfg


def _reference_labels(path: Path) -> np.ndarray:
    """Per-sample labels written out by hand from the file's annotations."""
    _, fs, _, ann = read_edf(path)
    r = pyedflib.EdfReader(str(path))
    try:
        n = int(r.getNSamples()[0])
    finally:
        r.close()
    ref = np.full(n, NO_LABEL, dtype=np.int8)
    for a in ann:
        ref[int(round(a.onset_s * fs)):int(round((a.onset_s + a.duration_s) * fs))] = CODE[a.text]
    return ref


def _mapped_labels(scenario, url: str) -> np.ndarray:
    """All labels of ``url`` as the session sees them (after check_source binds the names)."""
    chunks = []
    with open_source(url) as src:
        check_source(scenario, src, url)
        while (b := src.read(37)) is not None:
            chunks.append(b.labels.copy())
    return np.concatenate(chunks)


def _decoder_arrays(scenario, url: str, path: Path) -> dict[str, np.ndarray]:
    decoder, _ = train_decoder(scenario, build_pipeline(scenario), url=url)
    decoder.save(path)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


# -- a file the test writes itself (always runs) ----------------------------------------------
def test_annotation_labels_number_states_by_scenario_name(tiny):
    _, _, _, ann = read_edf(tiny)
    ref = _reference_labels(tiny)
    for order in ORDERS:
        labels, names = annotation_labels(ann, parse_label_map(order), ref.shape[0], FS,
                                          intention_names=NAMES)
        assert names == NAMES
        np.testing.assert_array_equal(labels, ref, err_msg=order)
    with pytest.raises(ConfigError, match="labels= maps T2 to 'forward'"):
        annotation_labels(ann, parse_label_map("T0:rest,T2:forward"), ref.shape[0], FS,
                          intention_names=NAMES)


def test_source_labels_follow_the_scenario_in_every_order(tiny, tmp_path):
    ref = _reference_labels(tiny)
    assert set(np.unique(ref)) == {0, 1, 2}
    for order in ORDERS:
        url = f"edf://{tiny}?labels={order}"
        scenario = load_scenario(_config(tmp_path, url))
        assert scenario.intention_names == NAMES
        with open_source(url) as src:  # the source keeps its own names, in URL order
            assert src.info.intention_names == tuple(p.split(":")[1] for p in order.split(","))
            check_source(scenario, src, url)
            events = src.annotation_events()
        assert [e["label"] for e in events] == [CODE[e["text"]] for e in events]
        np.testing.assert_array_equal(_mapped_labels(scenario, url), ref, err_msg=order)


def test_fitted_decoder_is_identical_in_every_order(tiny, tmp_path):
    first: dict[str, np.ndarray] | None = None
    first_y: np.ndarray | None = None
    for i, order in enumerate(ORDERS):
        url = f"edf://{tiny}?labels={order}"
        scenario = load_scenario(_config(tmp_path, url))
        _, y = calibration_data(scenario, build_pipeline(scenario))
        arrays = _decoder_arrays(scenario, url, tmp_path / f"dec{i}.npz")
        if first is None:
            first, first_y = arrays, y
            assert set(np.unique(y)) == {0, 1, 2}
            continue
        np.testing.assert_array_equal(y, first_y, err_msg=order)
        _assert_same_arrays(arrays, first, order)


class _Truth(LoopListener):
    def __init__(self) -> None:
        self.true: list[int] = []
        self.state: list[int] = []

    def on_cycle(self, record: np.ndarray) -> None:
        self.true.append(int(record["true_state"][0]))
        self.state.append(int(record["state"][0]))


def test_closed_loop_scores_by_name(tiny, tmp_path):
    """The loop's ground truth (accuracy, recordings) uses the scenario's indices too."""
    runs = []
    for order in (ORDERS[0], ORDERS[-1]):  # T0:rest,T1:left,T2:right and its reverse
        url = f"edf://{tiny}?labels={order}"
        scenario = load_scenario(_config(tmp_path, url))
        truth = _Truth()
        session = Session(scenario, RunOptions(duration_s=30.0, fast=True, source_url=url,
                                               listeners=[truth], realtime_priority=None))
        session.open()
        summary = session.run()
        runs.append((truth, summary))
    (a, sa), (b, sb) = runs
    assert a.true == b.true and a.state == b.state
    assert sa["accuracy"] == sb["accuracy"]
    hop_last = [(k + 1) * 10 - 1 for k in range(len(a.true))]
    assert a.true == [int(_reference_labels(tiny)[s]) for s in hop_last]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_cli_label_naming_an_unknown_state(tiny, tmp_path):
    url = f"edf://{tiny}?labels=T0:rest,T1:left,T2:forward"
    cfg = _config(tmp_path, url)
    line = _one_error_line(_run("run", "--config", str(cfg), "--fast", "--duration", "5",
                                "--source", url))
    assert ("labels= maps T2 to 'forward', which is not a state of scenario tiny "
            "(rest, left, right); map each annotation to one of those names") in line


def test_cli_state_without_a_label(tiny, tmp_path):
    url = f"edf://{tiny}?labels=T1:left,T0:rest"
    cfg = _config(tmp_path, url)
    line = _one_error_line(_run("run", "--config", str(cfg), "--fast", "--duration", "5",
                                "--source", url))
    assert ("calibration data of tiny.edf has no hops labelled 'right' (labels= gives "
            "T1:left, T0:rest); add an annotation mapped to right, e.g. T2:right") in line
    assert "calibration_s" not in line


def test_state_mapped_to_an_annotation_the_file_lacks(tiny, tmp_path):
    url = f"edf://{tiny}?labels=T0:rest,T1:left,T9:right"
    scenario = load_scenario(_config(tmp_path, url))
    with pytest.raises(ConfigError, match=r"no hops labelled 'right': labels= maps T9 to "
                                          r"right but the file has no such annotation "
                                          r"\(its annotations: T0, T1, T2\); fix labels="):
        train_decoder(scenario, build_pipeline(scenario))


def test_too_short_calibration_keeps_the_length_hint(tiny, tmp_path):
    """Mapped and present in the file, but not in the calibration segment: the segment is
    too short, and the message says so."""
    url = f"edf://{tiny}?labels=T2:right,T0:rest,T1:left"
    scenario = load_scenario(_config(tmp_path, url, calibration_s=5.0))  # T0 then T1 only
    with pytest.raises(ConfigError, match=r"no hops of right; lengthen decoder.calibration_s"):
        train_decoder(scenario, build_pipeline(scenario))


# -- every labelled source: the lookup table in BaseSource.read ------------------------------
class _Fake(BaseSource):
    scheme = "fake"

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.info = SourceInfo(("a",), ("eeg",), 100.0, intention_names=names)
        self.own = np.array([0, 1, 2, NO_LABEL] * 4, dtype=np.int8)
        self.block = Block(data=np.zeros((16, 1)), labels=self.own)

    def _read(self, max_samples: int, timeout: float | None) -> Block:
        return self.block


def test_base_source_maps_labels_by_name_without_allocating():
    src = _Fake(("right", "left", "rest")).open()
    src.map_intentions(NAMES, "x")
    b = src.read(16)
    np.testing.assert_array_equal(b.labels, [2, 1, 0, NO_LABEL] * 4)
    np.testing.assert_array_equal(src.own, [0, 1, 2, NO_LABEL] * 4)  # the source's own array
    assert b.data is src.block.data
    tracemalloc.start()
    try:
        peaks = []
        for _ in range(200):
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            src.read(16)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert max(peaks[10:]) < 1024, max(peaks[10:])
    same = _Fake(NAMES).open()
    same.map_intentions(NAMES, "x")  # the scenario's own names: blocks pass untouched
    assert same.read(16) is same.block
    assert same.missing_intention_message("rest", "u") is None
    part = _Fake(("rest", "left")).open()
    part.map_intentions(NAMES, "x")
    assert "has no hops labelled 'right' (the source labels only rest, left)" in (
        part.missing_intention_message("right", "fake://u") or "")
    with pytest.raises(ConfigError, match=r"fake source labels intention 'up', which is not "
                                          r"a state of scenario x \(rest, left, right\)"):
        _Fake(("rest", "up")).map_intentions(NAMES, "x")


# -- the real PhysioNet recording (skips without ../shared/data) ------------------------------
def test_eegmmi_labels_and_decoder_identical_in_every_order(shared_data, tmp_path):
    path = shared_data / EEG
    ref = _reference_labels(path)
    first: dict[str, np.ndarray] | None = None
    for i, order in enumerate(ORDERS):
        url = f"edf://{path}?labels={order}"
        scenario = load_scenario(_config(tmp_path, url, rate=160.0, n_channels=64, hop=16,
                                         calibration_s=120.0, name="eegmmi"))
        np.testing.assert_array_equal(_mapped_labels(scenario, url), ref, err_msg=order)
        arrays = _decoder_arrays(scenario, url, tmp_path / f"dec{i}.npz")
        if first is None:
            first = arrays
        else:
            _assert_same_arrays(arrays, first, order)


def test_cli_eegmmi_errors(shared_data, tmp_path):
    path = shared_data / EEG
    bad = f"edf://{path}?labels=T2:forward,T1:left,T0:rest"
    cfg = _config(tmp_path, bad, rate=160.0, n_channels=64, hop=16, name="eegmmi")
    line = _one_error_line(_run("run", "--config", str(cfg), "--fast", "--duration", "5",
                                "--source", bad))
    assert line == ("neuroloop: error: labels= maps T2 to 'forward', which is not a state of "
                    "scenario eegmmi (rest, left, right); map each annotation to one of those "
                    "names")
    missing = f"edf://{path}?labels=T1:left,T0:rest"
    cfg = _config(tmp_path, missing, rate=160.0, n_channels=64, hop=16, name="eegmmi")
    line = _one_error_line(_run("run", "--config", str(cfg), "--fast", "--duration", "5",
                                "--source", missing))
    assert line == ("neuroloop: error: calibration data of S001R03.edf has no hops labelled "
                    "'right' (labels= gives T1:left, T0:rest); add an annotation mapped to "
                    "right, e.g. T2:right")
    # The old failure: rest left unmapped used to be blamed on the calibration length.
    missing = f"edf://{path}?labels=T1:left,T2:right"
    cfg = _config(tmp_path, missing, rate=160.0, n_channels=64, hop=16, name="eegmmi")
    line = _one_error_line(_run("run", "--config", str(cfg), "--fast", "--duration", "5",
                                "--source", missing))
    assert "no hops labelled 'rest'" in line and "e.g. T0:rest" in line
    assert "calibration_s" not in line
