"""A corpus of recordings: find them, run one function per recording on every core, total.

This module only schedules. The per-recording work is a plain function of one path
(:func:`neuroloop.io.check.check_recording` or :func:`~neuroloop.io.check.accept_recording`
with their options bound by :func:`functools.partial`), which :func:`run_corpus` runs in a
process pool - or in-process with one job. A Dask sweep schedules the same function as a cell.
"""

from __future__ import annotations

import collections
import glob
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .check import ACCEPTED, DIVERGED, ERROR, IDENTICAL, RecordingCheck
from .format import META_FILE

__all__ = ["find_recordings", "run_corpus", "CorpusTotal", "available_cpus"]

#: Modules the pool's fork server imports once, so every worker starts with them loaded (what
#: a replay imports lazily: SciPy's signal and stats through the DSP are most of it).
_PRELOAD = ["neuroloop.io.check", "neuroloop.io.replay", "neuroloop.io.compare",
            "neuroloop.io.baseline", "neuroloop.io.replay_source", "neuroloop.runtime.session",
            "neuroloop.runtime.inject", "neuroloop.dsp", "neuroloop.decoders",
            "neuroloop.control.program_per_state", "neuroloop.safety.effective"]


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _context() -> Any:
    """A fork server that has imported :data:`_PRELOAD` (workers fork from it warm, and no
    thread of the caller is forked); plain spawn where there is no fork server (Windows)."""
    try:
        ctx = multiprocessing.get_context("forkserver")
    except ValueError:  # pragma: no cover - not POSIX
        return multiprocessing.get_context("spawn")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _recordings_below(root: Path) -> list[str]:
    """Recording directories (holding meta.json) at or below ``root``, sorted; a recording's
    own subdirectories are not searched."""
    found: list[str] = []
    for here, dirs, files in os.walk(root, followlinks=False):
        if META_FILE in files:
            found.append(here)
            dirs[:] = []
        else:
            dirs.sort()
    return sorted(found)


def find_recordings(paths: Sequence[str]) -> list[str]:
    """The recordings named by ``paths``: recording directories, directories holding
    recordings (searched recursively) and globs (``corpus/*/bsi-*``), in order, each once.

    Raises
    ------
    ConfigError
        A path that does not exist, a file, a directory that holds no recording, a glob that
        matches none (one line naming it and the fix).
    """
    out: list[str] = []
    seen: set[str] = set()
    for arg in paths:
        if glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            found = [r for m in matches if Path(m).is_dir() for r in _recordings_below(Path(m))]
            if not found:
                raise ConfigError(f"{arg} matches no recording; check the pattern (a recording "
                                  "is a directory holding meta.json)")
        else:
            p = Path(arg)
            if not p.exists():
                raise ConfigError(f"{arg} does not exist; pass recording directories, a "
                                  "directory of recordings or a glob")
            if not p.is_dir():
                raise ConfigError(f"{arg} is not a recording (it is a file); a recording is a "
                                  "directory holding meta.json, made by `neuroloop run --record "
                                  "DIR`")
            found = [arg] if (p / META_FILE).exists() else _recordings_below(p)
            if not found:
                raise ConfigError(f"{arg} is not a recording and holds none (no meta.json in or "
                                  "below it); pass recording directories made by `neuroloop run "
                                  "--record DIR`")
        for r in found:
            key = os.path.realpath(r)
            if key not in seen:
                seen.add(key)
                out.append(r)
    return out


@dataclass
class CorpusTotal:
    """Counts and times of a corpus run."""

    recordings: int
    identical: int
    diverged: int
    errors: int
    accepted: int
    wall_s: float
    cpu_s: float
    workers: int
    #: recordings each worker process ran (most first): both cores used means two entries
    per_worker: tuple[int, ...] = ()

    @property
    def exit_code(self) -> int:
        """2 when any recording could not be replayed, else 1 when any diverged, else 0."""
        return 2 if self.errors else (1 if self.diverged else 0)

    def line(self) -> str:
        parts = [f"{n} {word}" for n, word in ((self.identical, "identical"),
                                               (self.diverged, "diverged"),
                                               (self.accepted, "accepted"),
                                               (self.errors, "could not be replayed")) if n]
        return (f"total: {self.recordings} recording{'s' if self.recordings != 1 else ''}: "
                f"{', '.join(parts) or 'none'}; {self.wall_s:.1f} s wall, {self.cpu_s:.1f} s CPU "
                f"on {self.workers} worker{'s' if self.workers != 1 else ''}"
                + (f" ({' + '.join(map(str, self.per_worker))} recordings)"
                   if len(self.per_worker) > 1 else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"recordings": self.recordings, "identical": self.identical,
                "diverged": self.diverged, "errors": self.errors, "accepted": self.accepted,
                "wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3),
                "workers": self.workers, "per_worker": list(self.per_worker),
                "exit_code": self.exit_code}


def _total(results: Sequence[RecordingCheck], wall_s: float, workers: int) -> CorpusTotal:
    def count(status: str) -> int:
        return sum(r.status == status for r in results)

    spread = collections.Counter(r.worker_pid for r in results)
    return CorpusTotal(len(results), count(IDENTICAL), count(DIVERGED), count(ERROR),
                       count(ACCEPTED), wall_s, sum(r.cpu_s for r in results), workers,
                       tuple(n for _, n in spread.most_common()))


def run_corpus(paths: Sequence[str], task: Callable[[str], RecordingCheck], *,
               jobs: int | None = None,
               on_result: Callable[[RecordingCheck], None] | None = None
               ) -> tuple[list[RecordingCheck], CorpusTotal]:
    """Run ``task(path)`` for every path, ``jobs`` at a time (default: one per CPU).

    ``task`` must be picklable (a top-level function or a ``functools.partial`` of one) when
    ``jobs > 1``. ``on_result`` sees the results in the order of ``paths``, each as soon as it
    and all before it are done. A worker process that dies (a crash in native code) turns its
    recording - and any the pool could not finish - into ``error`` results; the others go on.

    Returns
    -------
    results : list of RecordingCheck, in the order of ``paths``
    total : CorpusTotal
    """
    t0 = time.perf_counter()
    n = len(paths)
    workers = max(1, min(jobs or available_cpus(), n)) if n else 1
    results: list[RecordingCheck | None] = [None] * n
    shown = 0

    def emit() -> None:
        nonlocal shown
        while shown < n and results[shown] is not None:
            if on_result is not None:
                on_result(results[shown])  # type: ignore[arg-type]
            shown += 1

    if workers == 1:
        for i, p in enumerate(paths):
            results[i] = task(p)
            emit()
    else:
        with ProcessPoolExecutor(workers, mp_context=_context()) as pool:
            futures = {pool.submit(task, p): i for i, p in enumerate(paths)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except BrokenProcessPool:
                    results[i] = RecordingCheck(
                        str(paths[i]), ERROR, error=f"the worker process replaying {paths[i]} "
                        "died (a crash in native code, or killed); rerun with --jobs 1 to see "
                        "which recording does it")
                emit()
    done = [r for r in results if r is not None]
    return done, _total(done, time.perf_counter() - t0, workers)
