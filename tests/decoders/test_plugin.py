"""A decoder from another installed package (the worked example of docs/decoders.md) is
usable by name: registry, scenario calibration, evaluate, and the contract suite."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuroloop.decoders import decoder_names, make_decoder

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "neuroloop-nearest-mean"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                    "--no-build-isolation", "--no-index", "--quiet", "--target", str(target),
                    str(PLUGIN)], check=True, capture_output=True)
    assert (target / "neuroloop_nearest_mean").is_dir()
    return target


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(installed))
    importlib.invalidate_caches()
    return installed


def test_the_plugin_is_registered_by_its_entry_point(on_path: Path) -> None:
    assert "nearest-mean" in decoder_names()
    X, y = make_decoder("lda").example_data()
    dec = make_decoder("nearest-mean", temperature=2.0).fit(X, y)
    assert type(dec).__module__ == "neuroloop_nearest_mean"
    assert dec.step(X[0]).valid


def test_a_scenario_and_evaluate_use_it_by_name(on_path: Path) -> None:
    import dataclasses

    from neuroloop.config import load_scenario
    from neuroloop.evaluation import parse_decoder_spec
    from neuroloop.evaluation.evaluate import evaluate_datasets
    from neuroloop.runtime.session import build_pipeline, train_decoder
    from tests.evaluation.test_evaluate import _gauss_dataset

    sc = load_scenario("eeg-bci")
    sc = dataclasses.replace(sc, decoder=dataclasses.replace(sc.decoder, kind="nearest-mean",
                                                             params={"temperature": 1.0}))
    dec, info = train_decoder(sc, build_pipeline(sc), duration_s=20.0)
    assert dec.name == "nearest-mean" and info["hops"] > 100
    rows = evaluate_datasets([parse_decoder_spec("nearest-mean")], sc,
                             train=_gauss_dataset(0), tests=[_gauss_dataset(1)],
                             n_permutations=20)
    assert rows[0]["accuracy"] > 0.8


def test_the_contract_suite_runs_over_the_plugin(installed: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(installed), *filter(None, [os.environ.get("PYTHONPATH")])]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/decoders/test_decoder_contract.py", "-k", "nearest-mean"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "passed" in r.stdout and " 0 passed" not in r.stdout
