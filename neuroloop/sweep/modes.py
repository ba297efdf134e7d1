"""The cell modes of a sweep, registered by name: what each takes and which function runs it.

A mode is a small record: the parameters a cell of that mode accepts (and requires), which of
them name input files (their digests go into the cell's content hash and are checked before
anything is scheduled), whether scenario overrides (``"source.snr"``, ``"control.
confidence_threshold"``) apply, the runner (``"module:function"``, imported on the worker), the
metric columns that depend on timing (left out of determinism checks) and the headline metrics
the summary table shows. Adding a mode (``evaluate``, ``compare``) is one :func:`register_mode`
call and one runner function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CellMode", "MODES", "RUN_PARAMS", "mode_names", "register_mode", "resolve_runner"]

#: A runner: the cell's parameters (paths already absolute) -> flat metrics (str -> scalar).
Runner = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class CellMode:
    """One kind of cell.

    Attributes
    ----------
    name : str
        The ``mode`` value in a spec (``"run"``, ``"replay"``).
    runner : str
        ``"module:function"`` of the :data:`Runner`, imported where the cell runs.
    params : tuple of str
        Parameters a cell of this mode accepts (besides ``mode``).
    required : tuple of str
        Parameters it must have.
    file_params : tuple of str
        Parameters naming an input file or recording directory (relative to the spec file).
    overrides : bool
        Whether dotted scenario keys (``"source.snr"``) are accepted.
    timing_columns : tuple of str
        Metric columns (or prefixes ending in ``"."``) that depend on wall-clock time.
    headline : tuple of str
        Metrics the terminal summary shows.
    description : str
        One line for ``--help`` and the docs.
    """

    name: str
    runner: str
    params: tuple[str, ...]
    required: tuple[str, ...] = ()
    file_params: tuple[str, ...] = ()
    overrides: bool = False
    timing_columns: tuple[str, ...] = ()
    headline: tuple[str, ...] = ()
    description: str = ""
    #: ``decoder`` may be a registered kind with parameters (``"lda:shrinkage=0.3"``) as well
    #: as a trained decoder file; checked with :func:`neuroloop.evaluation.parse_decoder_spec`.
    decoder_kinds: bool = False

    def is_timing(self, column: str) -> bool:
        """Whether ``column`` depends on wall-clock time (not compared for determinism)."""
        return any(column == t or (t.endswith(".") and column.startswith(t))
                   for t in self.timing_columns)


#: Parameters of a ``run --fast`` cell.
RUN_PARAMS = ("scenario", "seed", "duration_s", "deadline_ms", "source", "decoder")

MODES: dict[str, CellMode] = {}


def register_mode(mode: CellMode) -> None:
    """Add (or replace) a cell mode; its runner must be importable on every worker."""
    MODES[mode.name] = mode


def mode_names() -> list[str]:
    """Registered mode names, in registration order."""
    return list(MODES)


def resolve_runner(mode: CellMode) -> Runner:
    """Import the runner function of ``mode``."""
    module, _, name = mode.runner.partition(":")
    fn: Runner = getattr(importlib.import_module(module), name)
    return fn


register_mode(CellMode(
    name="run",
    runner="neuroloop.sweep.runners:run_fast_cell",
    params=RUN_PARAMS,
    file_params=("decoder",),  # and the file of an edf:// or replay:// source, see cells.py
    overrides=True,
    # On the simulated clock the latency of a cycle is its measured compute time, so these
    # (and a deadline miss, which a stalled worker can cause) depend on the machine.
    timing_columns=("wall_s", "realtime_factor", "compute_us.", "e2e_us.", "deadline_misses",
                    "intent_to_stim_ms", "intent_to_stim.median_ms", "intent_to_stim.p90_ms",
                    "interlock_events.deadline_miss", "jit_compiles_in_loop"),
    headline=("accuracy", "intent_to_stim_ms", "cycles"),
    description="`neuroloop run --fast`: calibrate, then run the closed loop on a simulated "
                "clock (synthetic seeds, an EDF/recording source, scenario overrides)",
))

register_mode(CellMode(
    name="replay",
    runner="neuroloop.sweep.runners:replay_check_cell",
    params=("recording", "decoder", "scenario"),
    required=("recording",),
    file_params=("recording", "decoder"),
    timing_columns=("wall_s", "realtime_factor", "compute_us.", "e2e_us."),
    headline=("identical", "first_divergent_cycle", "accuracy"),
    description="`neuroloop replay --check`: replay a recording through the current code and "
                "compare every cycle",
))

register_mode(CellMode(
    name="evaluate",
    runner="neuroloop.sweep.runners:evaluate_cell",
    params=("scenario", "decoder", "train", "test", "folds", "duration_s", "seed",
            "n_permutations"),
    required=("decoder", "test"),
    file_params=("decoder", "train", "test"),
    overrides=True,
    decoder_kinds=True,
    headline=("accuracy", "kappa", "itr_bits_per_min"),
    description="`neuroloop evaluate`: fit a decoder (train set or blocked folds) and test it "
                "offline through its online path on one dataset",
))

register_mode(CellMode(
    name="compare",
    runner="neuroloop.sweep.runners:compare_cell",
    params=("decoder", "recording", "train", "scenario", "duration_s", "seed",
            "n_permutations"),
    required=("decoder", "recording"),
    file_params=("decoder", "recording", "train"),
    decoder_kinds=True,
    headline=("accuracy", "stim_on_rest_fraction", "first_stim_latency_s"),
    description="`neuroloop compare`: one decoder in closed loop on one recording through "
                "replay (the stimulation actually delivered)",
))
