"""Parameter sweeps on Dask: decoders x recordings x parameters, resumable, deterministic.

``neuroloop sweep SPEC.toml`` reads a spec (:mod:`.spec`), expands it into cells (one task
each, keyed by a content hash of its parameters, its input files and the code version,
:mod:`.cells`), runs the cells on a local or remote Dask cluster (:mod:`.driver`; the cell
runners are in :mod:`.runners`, one per mode, registered by name), journals every finished cell
so an interrupted sweep continues where it stopped, and writes one row per cell to Parquet and
CSV with a terminal summary and figures (:mod:`.results`, :mod:`.summary`).
"""

from __future__ import annotations

from .cells import Cell, code_version
from .modes import MODES, CellMode, mode_names
from .spec import SweepSpec, load_spec

__all__ = ["Cell", "CellMode", "MODES", "SweepSpec", "code_version", "load_spec",
           "mode_names", "run_sweep"]


def __getattr__(name: str) -> object:
    if name == "run_sweep":  # the driver imports dask: only when a sweep runs
        from .driver import run_sweep

        return run_sweep
    raise AttributeError(name)
