"""Fixtures of the sweep tests: a small scenario, a recording, one shared Dask cluster."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: eeg-bci, calibrated on 20 s and run for 10 s: a cell costs about 0.3 s once a worker is warm.
#: The deadline is the largest allowed so that a cell's result never depends on how busy the
#: machine is (on the simulated clock a cycle's latency is its measured compute time).
SMALL_SCENARIO = """
base = "eeg-bci"
[scenario]
name = "eeg-small"
[decoder]
calibration_s = 20.0
[runtime]
duration_s = 10.0
deadline_ms = 10000.0
"""


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``small.toml`` (the scenario above) for specs to name."""
    d = tmp_path_factory.mktemp("sweep")
    (d / "small.toml").write_text(SMALL_SCENARIO)
    return d


@pytest.fixture(scope="session")
def recording(sweep_dir: Path) -> Path:
    """A recording of the small scenario (``neuroloop run --fast --record``)."""
    from neuroloop.cli import main

    rec = sweep_dir / "rec1"
    code = main(["run", "--config", str(sweep_dir / "small.toml"), "--fast", "--duration", "5",
                 "--seed", "7", "--record", str(rec), "--json"])
    assert code == 0
    return rec


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """One local Dask cluster (2 worker processes, 1 thread each) for every sweep test that
    needs one; tests reach it as an external scheduler by its address."""
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                     dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(c, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        c.close()

