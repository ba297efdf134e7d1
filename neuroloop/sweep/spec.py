"""Sweep spec files (TOML): parse, validate everything, expand into cells.

Every problem is found here, before anything is scheduled, and reported as one line naming
the spec file, the key or cell and the fix (:class:`~neuroloop.errors.ConfigError`). Input
files that do not exist are all listed in one message.

The format (``docs/sweep.md``)::

    [sweep]
    name = "snr-study"          # default: the spec file's stem
    time_limit_s = 600          # per cell, wall clock on its worker
    figures = ["accuracy"]      # a metric per (figure_group, figure_item), one PNG each

    [fixed]                     # parameters of every cell
    mode = "run"                # run (default) | replay | every registered mode
    scenario = "eeg-bci"
    duration_s = 30
    "decoder.calibration_s" = 30

    [grid]                      # the cartesian product of these axes
    seed = [1, 2, 3, 4]
    "source.snr" = [0.5, 1.0]

    [[cells]]                   # and/or an explicit list of cells (each on top of [fixed])
    mode = "replay"
    recording = "sessions/s1"
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _checks as B
from .._files import read_text_capped
from ..errors import ConfigError
from .cells import Cell, cell_hash, code_version, path_digest
from .modes import MODES, CellMode

__all__ = ["SweepSpec", "load_spec", "parse_spec", "MAX_CELLS", "TIME_LIMIT_S"]

#: Most cells one spec may expand to.
MAX_CELLS = 100_000
#: Per-cell time limit, seconds (default one hour).
TIME_LIMIT_S = B.Range(0.0, 7 * 86400.0, lo_open=True, unit="s")
DEFAULT_TIME_LIMIT_S = 3600.0
#: ``folds`` of an evaluate cell (blocked cross-validation) and its label permutations.
FOLDS = B.Range(2, 100, integer=True)
PERMUTATIONS = B.Range(0, 100_000, integer=True)

_TABLES = ("sweep", "fixed", "grid", "cells")
_SWEEP_KEYS = ("name", "description", "time_limit_s", "figures", "figure_group",
               "figure_item")
#: Scenario sections a dotted override may name (``"source.snr"``).
_OVERRIDE_SECTIONS = ("scenario", "source", "dsp", "decoder", "stimulation", "control",
                      "safety", "runtime")
_DEVICE_SCHEMES = ("serial", "socket", "rfc2217", "loop", "spy")


@dataclass(frozen=True)
class SweepSpec:
    """A validated, expanded sweep.

    Attributes
    ----------
    path : Path
        The spec file.
    name : str
    cells : list of Cell
        In expansion order (the grid first, then the explicit list).
    columns : list of str
        Parameter columns of the result rows, in the order the spec names them.
    varying : list of str
        The parameters whose value differs between cells.
    time_limit_s : float
    figures : list of str
        Metrics drawn with :func:`neuroloop.monitor.metric_grid.metric_grid_png`.
    figure_group, figure_item : str or None
        Parameter naming the bars and the x-axis groups of the figures.
    code_version : str
    """

    path: Path
    name: str
    cells: list[Cell]
    columns: list[str]
    varying: list[str]
    time_limit_s: float
    figures: list[str]
    figure_group: str | None
    figure_item: str | None
    code_version: str


def load_spec(path: str | Path) -> SweepSpec:
    """Read, validate and expand the spec file ``path`` (see the module docstring)."""
    p = Path(path)
    text = read_text_capped(p, f"sweep spec {p}")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep spec {p} is not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"sweep spec {p} nests arrays or tables too deeply") from None
    return parse_spec(table, path=p)


def _fail(label: str, key: str, value: Any, what: str) -> ConfigError:
    return ConfigError(f"{label}: {key} = {B.show_value(value)} {what}")


def parse_spec(table: Mapping[str, Any], *, path: Path) -> SweepSpec:
    """Validate a parsed spec table and expand it (``path`` locates relative files)."""
    label = str(path)
    unknown = [k for k in table if k not in _TABLES]
    if unknown:
        raise ConfigError(f"{label}: unknown table or key {unknown[0]!r}; a sweep spec has "
                          f"[sweep], [fixed], [grid] and [[cells]]")
    sweep = _table(table, "sweep", label)
    fixed = _table(table, "fixed", label)
    grid = _table(table, "grid", label)
    for k in sweep:
        if k not in _SWEEP_KEYS:
            raise ConfigError(f"{label}: unknown key sweep.{k}; known keys are "
                              f"{', '.join(_SWEEP_KEYS)} (cell parameters go in [fixed], "
                              "[grid] or [[cells]])")
    name = sweep.get("name", path.stem)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise _fail(label, "sweep.name", name, "must be a short non-empty string")
    time_limit = float(B.check_number(f"{label}: sweep.time_limit_s",
                                      sweep.get("time_limit_s", DEFAULT_TIME_LIMIT_S),
                                      TIME_LIMIT_S, hint="e.g. 600"))
    figures = sweep.get("figures", ["accuracy"])
    if not isinstance(figures, list) or not all(isinstance(f, str) and f for f in figures):
        raise _fail(label, "sweep.figures", figures, "must be a list of metric names, e.g. "
                    "[\"accuracy\"]")
    cells_raw = table.get("cells", [])
    if not isinstance(cells_raw, list) or not all(isinstance(c, dict) for c in cells_raw):
        raise _fail(label, "cells", cells_raw, "must be an array of tables [[cells]]")
    for axis, values in grid.items():
        if not isinstance(values, list):
            raise _fail(label, f"grid.{_q(axis)}", values, "must be a list of values, e.g. "
                        "[1, 2, 3]")
        if not values:
            raise ConfigError(f"{label}: grid.{_q(axis)} is empty, so the grid has no cells; "
                              "give it at least one value or remove the axis")
        if axis in fixed:
            raise ConfigError(f"{label}: {_q(axis)} is both in [fixed] and an axis of [grid]; "
                              "set it in one place")
        seen: set[str] = set()
        for v in values:
            key = json.dumps(v, sort_keys=True)
            if key in seen:
                raise _fail(label, f"grid.{_q(axis)}", v, "appears twice; list each value once")
            seen.add(key)
    if not grid and not cells_raw:
        raise ConfigError(f"{label}: the sweep has no cells; add a [grid] with at least one "
                          "axis or a [[cells]] table")
    n_grid = math.prod(len(v) for v in grid.values()) if grid else 0
    if n_grid + len(cells_raw) > MAX_CELLS:
        raise ConfigError(f"{label}: the sweep expands to {n_grid + len(cells_raw)} cells, more "
                          f"than {MAX_CELLS}; split it into several sweeps")

    raw_cells: list[tuple[str, dict[str, Any]]] = []
    if grid:
        axes = list(grid)
        for combo in itertools.product(*(grid[a] for a in axes)):
            raw_cells.append((f"grid cell {len(raw_cells)}", {**fixed, **dict(zip(axes, combo,
                                                                                 strict=True))}))
    for i, c in enumerate(cells_raw):
        raw_cells.append((f"cells[{i}]", {**fixed, **c}))
    columns = list(dict.fromkeys(["mode", *fixed, *grid,
                                  *(k for c in cells_raw for k in c)]))
    columns = [c for c in columns if c != "mode"]
    code = code_version()
    checker = _Checker(path, label)
    cells: list[Cell] = []
    for where, params in raw_cells:
        params.setdefault("mode", "run")
        cells.append(checker.cell(len(cells), where, params, time_limit, code))
    checker.raise_missing()
    by_id: dict[str, Cell] = {}
    for c in cells:
        if c.cell_id in by_id:
            raise ConfigError(f"{label}: {_where(raw_cells, c.index)} is the same cell as "
                              f"{_where(raw_cells, by_id[c.cell_id].index)}; list each cell once")
        by_id[c.cell_id] = c
    varying = [k for k in columns
               if len({json.dumps(c.params.get(k), sort_keys=True) for c in cells}) > 1]
    if len({c.mode for c in cells}) > 1:
        varying.insert(0, "mode")
    # a metric per decoder (bars) and recording (groups) when those vary, else in spec order
    prefer_group = [k for k in ("decoder", "decoder.kind", "mode") if k in varying]
    prefer_item = [k for k in ("recording", "test", "source") if k in varying]
    rest = [k for k in varying if k not in prefer_group + prefer_item]
    item_default = (prefer_item + rest + prefer_group + [None])[0]
    group_default = next((k for k in prefer_group + rest + prefer_item if k != item_default),
                         None)
    group = _figure_axis(sweep, "figure_group", columns, label, group_default)
    item = _figure_axis(sweep, "figure_item", columns, label, item_default)
    return SweepSpec(path=path, name=name.strip(), cells=cells, columns=columns,
                     varying=varying, time_limit_s=time_limit, figures=list(figures),
                     figure_group=group, figure_item=item, code_version=code)


def _where(raw_cells: Sequence[tuple[str, dict[str, Any]]], index: int) -> str:
    return raw_cells[index][0]


def _q(key: str) -> str:
    return f'"{key}"' if "." in key else key


def _table(table: Mapping[str, Any], key: str, label: str) -> dict[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise _fail(label, key, value, f"must be a table [{key}]")
    return dict(value)


def _figure_axis(sweep: Mapping[str, Any], key: str, columns: list[str], label: str,
                 default: str | None) -> str | None:
    value = sweep.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or (value not in columns and value != "mode"):
        raise _fail(label, f"sweep.{key}", value, "must name a cell parameter of the sweep "
                    f"({', '.join(['mode', *columns])})")
    return value


def _exists(p: Path, recording: bool) -> bool:
    """``p`` is a file (or, for a recording, a directory with ``meta.json``); a name too
    long or otherwise unusable is simply not there."""
    try:
        return p.is_dir() and (p / "meta.json").is_file() if recording else p.is_file()
    except (OSError, ValueError):
        return False


class _Checker:
    """Checks cells one by one; remembers missing inputs so that all are listed at once."""

    def __init__(self, path: Path, label: str) -> None:
        self.base = path.parent
        self.label = label
        self.missing: dict[str, list[str]] = {}
        self.scenarios: dict[str, Any] = {}

    def cell(self, index: int, where: str, params: dict[str, Any], time_limit_s: float,
             code: str) -> Cell:
        label = f"{self.label}: {where}"
        mode_name = params["mode"]
        if not isinstance(mode_name, str) or mode_name not in MODES:
            raise _fail(label, "mode", mode_name, f"is not a sweep mode; use one of "
                        f"{', '.join(MODES)}")
        mode = MODES[mode_name]
        for k in params:
            if k == "mode":
                continue
            if "." in k:
                section = k.split(".", 1)[0]
                if not mode.overrides:
                    raise ConfigError(f"{label}: unknown key {_q(k)} for mode {mode.name}; a "
                                      f"{mode.name} cell takes {', '.join(mode.params)}")
                if section not in _OVERRIDE_SECTIONS or not k.split(".", 1)[1]:
                    raise ConfigError(f"{label}: unknown key {_q(k)}; a scenario override is "
                                      f"\"SECTION.KEY\" with SECTION one of "
                                      f"{', '.join(_OVERRIDE_SECTIONS)}")
            elif k not in mode.params:
                raise ConfigError(f"{label}: unknown key {k!r} for mode {mode.name}; a "
                                  f"{mode.name} cell takes {', '.join(mode.params)}"
                                  + (" and scenario overrides such as \"source.snr\""
                                     if mode.overrides else ""))
        for k in mode.required:
            if k not in params:
                raise ConfigError(f"{label}: a {mode.name} cell needs {k!r}; set it in "
                                  "[fixed], [grid] or the cell")
        resolved = dict(params)
        inputs: dict[str, str] = {}
        self._check_values(label, mode, params, resolved, inputs, index)
        public = {k: v for k, v in params.items() if k != "mode"}
        cid, inputs_sha = cell_hash(mode.name, public, inputs, code)
        return Cell(index=index, mode=mode.name, params=public, resolved=resolved,
                    inputs=inputs, cell_id=cid, inputs_sha256=inputs_sha,
                    time_limit_s=time_limit_s)

    # -- values --------------------------------------------------------------------------
    def _path(self, label: str, key: str, value: Any, index: int, *, directory: bool,
              resolved: dict[str, Any], inputs: dict[str, str], what: str) -> str | None:
        if not isinstance(value, str) or not value or "\x00" in value:
            raise _fail(label, key, value, f"must be the path of {what}")
        p = Path(value).expanduser()
        p = p if p.is_absolute() else self.base / p
        if not _exists(p, directory):
            self.missing.setdefault(f"{key} {value}", []).append(str(index))
            return None
        absolute = str(p.resolve())
        resolved[key] = absolute
        inputs[key] = path_digest(absolute)
        return absolute

    def _check_values(self, label: str, mode: CellMode, params: Mapping[str, Any],
                      resolved: dict[str, Any], inputs: dict[str, str], index: int) -> None:
        if "seed" in params:
            B.check_number(f"{label}: seed", params["seed"], B.SEED, hint="e.g. 1")
        if "deadline_ms" in params:
            B.check_number(f"{label}: deadline_ms", params["deadline_ms"], B.DEADLINE_MS,
                           hint="e.g. 10")
        if "duration_s" in params:
            B.check_number(f"{label}: duration_s", params["duration_s"], B.DURATION_S,
                           hint="e.g. 60")
        if "folds" in params:
            B.check_number(f"{label}: folds", params["folds"], FOLDS, hint="e.g. 5")
        if "n_permutations" in params:
            B.check_number(f"{label}: n_permutations", params["n_permutations"], PERMUTATIONS,
                           hint="e.g. 200")
        if "decoder" in params:
            self._decoder(label, mode, params["decoder"], index, resolved, inputs)
        for key in ("train", "test"):
            if key in params:
                self._dataset(label, key, params[key], index, resolved, inputs)
        if "recording" in params:
            self._path(label, "recording", params["recording"], index, directory=True,
                       resolved=resolved, inputs=inputs, what="a recording directory")
        if "source" in params:
            self._source(label, params["source"], index, resolved, inputs)
        scenario_ref = params.get("scenario")
        if scenario_ref is not None:
            if not isinstance(scenario_ref, str) or not scenario_ref:
                raise _fail(label, "scenario", scenario_ref, "must be a preset name such as "
                            "\"bsi\" or the path of a scenario TOML file")
            if not (scenario_ref.endswith(".toml") or "/" in scenario_ref):
                from ..config import scenario_names

                if scenario_ref not in scenario_names():
                    raise _fail(label, "scenario", scenario_ref, "is not a shipped scenario; "
                                f"use one of {', '.join(scenario_names())} or the path of a "
                                "scenario TOML file (ending in .toml)")
            elif self._path(label, "scenario", scenario_ref, index, directory=False,
                            resolved=resolved, inputs=inputs,
                            what="a scenario TOML file") is None:
                return
        if mode.overrides:
            self._scenario(label, params, resolved)

    def _decoder(self, label: str, mode: CellMode, value: Any, index: int,
                 resolved: dict[str, Any], inputs: dict[str, str]) -> None:
        """A trained decoder file, or (modes with ``decoder_kinds``) a registered kind with
        parameters, ``"lda:shrinkage=0.3"``, checked now."""
        if mode.decoder_kinds and isinstance(value, str) and value and \
                not value.endswith(".npz") and "/" not in value:
            from ..evaluation import parse_decoder_spec

            try:
                parse_decoder_spec(value)
            except ConfigError as exc:
                raise ConfigError(f"{label}: decoder = {B.show_value(value)}: {exc}") from None
            return
        self._path(label, "decoder", value, index, directory=False, resolved=resolved,
                   inputs=inputs, what="a decoder file (.npz)" + (
                       " or a decoder kind such as \"lda\"" if mode.decoder_kinds else ""))

    def _dataset(self, label: str, key: str, value: Any, index: int,
                 resolved: dict[str, Any], inputs: dict[str, str]) -> None:
        """``synthetic[:SEED]``, a recording directory, an EDF/BDF file or a source URL."""
        if not isinstance(value, str) or not value:
            raise _fail(label, key, value, "must be a dataset: synthetic:SEED, a recording "
                        "directory, an .edf/.bdf file or a source URL")
        if value == "synthetic" or value.startswith("synthetic:") and "://" not in value:
            if value != "synthetic":
                try:
                    seed: Any = int(value.split(":", 1)[1])
                except ValueError:
                    seed = value.split(":", 1)[1]
                B.check_number(f"{label}: {key} = {B.show_value(value)}: the seed", seed,
                               B.SEED, hint="e.g. synthetic:7")
            return
        if "://" in value:
            self._source(label, value, index, resolved, inputs, key=key)
            return
        p = Path(value).expanduser()
        p = p if p.is_absolute() else self.base / p
        recording = p.suffix.lower() not in (".edf", ".bdf")
        if not _exists(p, recording):
            self.missing.setdefault(f"{key} {value}", []).append(str(index))
            return
        resolved[key] = str(p.resolve())
        inputs[key] = path_digest(p)

    def _source(self, label: str, url: Any, index: int, resolved: dict[str, Any],
                inputs: dict[str, str], key: str = "source") -> None:
        from ..acquisition import parse_url

        if not isinstance(url, str) or not url:
            raise _fail(label, key, url, "must be a source URL such as "
                        "\"edf://rec.edf\" or \"synthetic://bsi\"")
        try:
            scheme, location, _ = parse_url(url)
        except ValueError as exc:  # urlsplit: e.g. an unbalanced "[" in the host
            raise _fail(label, key, url, f"is not a URL ({exc})") from None
        if scheme in _DEVICE_SCHEMES or "://" not in url:
            raise _fail(label, key, url, "is a device; a sweep cell reads a synthetic "
                        "patient (synthetic://), an EDF file (edf://) or a recording "
                        "(replay://)")
        if scheme in ("edf", "bdf", "replay"):
            p = Path(location).expanduser()
            p = p if p.is_absolute() else self.base / p
            if not _exists(p, scheme == "replay"):
                self.missing.setdefault(f"{key} {url}", []).append(str(index))
                return
            query = url[url.index("?"):] if "?" in url else ""
            resolved[key] = f"{scheme}://{p.resolve()}{query}"
            inputs[key] = path_digest(p)

    def _scenario(self, label: str, params: Mapping[str, Any],
                  resolved: dict[str, Any]) -> None:
        """Build the cell's scenario now (same code as the runner), so a bad override or a
        --fast duration too long fails before anything is scheduled."""
        from .. import _checks
        from .runners import build_scenario

        ref = resolved.get("scenario", "bsi")
        overrides = {k: v for k, v in params.items() if "." in k}
        key = json.dumps([ref, overrides], sort_keys=True, default=str)
        if key not in self.scenarios:
            try:
                self.scenarios[key] = build_scenario(ref, overrides, label=label)
            except ConfigError as exc:
                msg = str(exc)
                raise ConfigError(msg if msg.startswith(self.label) else f"{label}: {msg}") \
                    from None
        scenario = self.scenarios[key]
        duration = params.get("duration_s", scenario.runtime.duration_s)
        _checks.check_fast_duration(f"{label}: duration_s", duration, scenario.hop_s)

    def raise_missing(self) -> None:
        if not self.missing:
            return
        parts = [f"{what} (cell{'s' if len(ix) > 1 else ''} {', '.join(ix[:5])}"
                 f"{', ...' if len(ix) > 5 else ''})" for what, ix in self.missing.items()]
        n = len(parts)
        raise ConfigError(f"{self.label}: {n} input{'s' if n > 1 else ''} "
                          f"{'do' if n > 1 else 'does'} not exist: {'; '.join(parts)}; fix "
                          f"the path{'s' if n > 1 else ''} (relative to {self.base}) before "
                          "the sweep is scheduled")
