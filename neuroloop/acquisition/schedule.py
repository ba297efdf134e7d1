"""Scripted intention schedule: the ground truth of the synthetic patient.

The schedule is a sequence of *segments* (onset sample, state, modulation strength). It is
gait-like: the patient rests, then walks a *bout* of one or two strides and rests again. A
stride is a step of one leg followed by a step of the other, a step being that leg's
movement states in the order the intention names list them (for the ``bsi`` names: hip
flexion -> knee extension -> ankle dorsiflexion). Which leg starts a bout is drawn at random.
For two-sided paradigms without joints (``("rest", "left", "right")``) a step is one state,
so bouts alternate left and right. States without a side are inserted as steps of their own.

Every segment lasts a whole number of samples drawn uniformly in
``[min_state_s, max_state_s]`` (default 2-4 s, matching the decoder's ~2-hop gate at every
transition). With bouts of at most two strides and segments of at most 4 s, any 60 s window
of a ``bsi`` schedule contains every state: 60 s holds at least 14 whole consecutive
segments, rest recurs at least every 13 segments, and any 6 consecutive movement segments of a
bout cover all six movements.

Everything is drawn from a NumPy ``Generator`` seeded with ``(seed, segment, stream)``, and
the schedule grows bout by bout (:meth:`Schedule.extend_to`), so a schedule extended lazily
equals one made long in the first place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._synth_kernels import fill_labels

__all__ = ["Schedule", "make_schedule", "REST_NAME"]

#: Name of the resting state; every schedule starts with it.
REST_NAME = "rest"

# Stream ids mixed into the seed so that the schedule, the noise and the artifacts of one seed
# are independent draws.
_STREAM_SCHEDULE = 0x5C4ED


class Schedule:
    """A seeded, lazily extended sequence of intention segments.

    Use :func:`make_schedule` to build one.

    Attributes
    ----------
    intention_names : tuple of str
    sampling_rate_hz : float
    seed, segment : int
        Seed and data segment the schedule was drawn from.
    """

    def __init__(
        self,
        intention_names: Sequence[str],
        sampling_rate_hz: float,
        seed: int,
        *,
        segment: int = 0,
        min_state_s: float = 2.0,
        max_state_s: float = 4.0,
        strides_per_bout: tuple[int, int] = (1, 2),
        strength_range: tuple[float, float] = (0.8, 1.2),
    ) -> None:
        names = tuple(intention_names)
        if REST_NAME not in names:
            raise ValueError(f"intention_names must include {REST_NAME!r}, got {names}")
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"intention_names must be at least two distinct names, got {names}")
        if len(names) > 127:
            raise ValueError("at most 127 intention states fit the int8 labels")
        if not (sampling_rate_hz > 0 and np.isfinite(sampling_rate_hz)):
            raise ValueError(f"sampling_rate_hz must be positive, got {sampling_rate_hz}")
        if not 0 < min_state_s <= max_state_s:
            raise ValueError(
                f"need 0 < min_state_s <= max_state_s, got {min_state_s}, {max_state_s}")
        lo_str, hi_str = strides_per_bout
        if not 1 <= lo_str <= hi_str:
            raise ValueError(f"strides_per_bout must be (lo, hi) with 1 <= lo <= hi, "
                             f"got {strides_per_bout}")
        if not 0 < strength_range[0] <= strength_range[1]:
            raise ValueError(f"strength_range must be positive and ordered, got {strength_range}")
        if seed < 0 or segment < 0:
            raise ValueError(f"seed and segment must be >= 0, got {seed}, {segment}")

        self.intention_names = names
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.seed = int(seed)
        self.segment = int(segment)
        self.rest_state = names.index(REST_NAME)
        self._min_samples = max(1, round(min_state_s * sampling_rate_hz))
        self._max_samples = max(self._min_samples, round(max_state_s * sampling_rate_hz))
        self._strides = (int(lo_str), int(hi_str))
        self._strength_range = (float(strength_range[0]), float(strength_range[1]))
        self._left, self._right, self._unsided = _steps_of(names)
        self._rng = np.random.default_rng([self.seed, self.segment, _STREAM_SCHEDULE])
        self._onsets = np.zeros(0, np.int64)
        self._states = np.zeros(0, np.int8)
        self._strengths = np.zeros(0, np.float64)
        self._end = 0  # sample index just after the last segment drawn so far
        first_rest = int(self._rng.integers(self._min_samples, self._max_samples + 1))
        self._append([(self.rest_state, 1.0, first_rest)])

    # -- data ---------------------------------------------------------------------------------
    @property
    def onsets(self) -> np.ndarray:
        """Start sample of every segment drawn so far, shape (n_segments,), int64."""
        return self._onsets

    @property
    def states(self) -> np.ndarray:
        """State of every segment, shape (n_segments,), int8 (index into intention_names)."""
        return self._states

    @property
    def strengths(self) -> np.ndarray:
        """Relative modulation strength of every segment, shape (n_segments,), float64."""
        return self._strengths

    @property
    def n_segments(self) -> int:
        return int(self._onsets.shape[0])

    @property
    def end_sample(self) -> int:
        """Samples covered by the drawn segments (the last one ends here)."""
        return self._end

    def durations_s(self) -> np.ndarray:
        """Duration of every drawn segment in seconds, shape (n_segments,)."""
        ends = np.append(self._onsets[1:], self._end)
        return (ends - self._onsets) / self.sampling_rate_hz

    def transitions(self, first: int = 0, stop: int | None = None) -> list[tuple[int, int]]:
        """``(onset_sample, state)`` of every segment starting in ``[first, stop)``.

        Consecutive segments always differ in state, so each entry is a true transition
        (the first segment, rest at sample 0, is included when ``first == 0``).
        """
        if stop is not None:
            self.extend_to(stop)
        sel = self._onsets >= first
        if stop is not None:
            sel &= self._onsets < stop
        return [(int(o), int(s)) for o, s in zip(self._onsets[sel], self._states[sel],
                                                 strict=True)]

    # -- lookup -------------------------------------------------------------------------------
    def extend_to(self, n_samples: int) -> None:
        """Draw bouts until the schedule covers samples ``0 .. n_samples - 1``.

        Bouts are drawn one after the other with a fixed sequence of random draws each, so
        the result does not depend on how the schedule was extended. Allocates (new arrays);
        the synthetic source calls it with a generous horizon so that this happens rarely.
        """
        pending: list[tuple[int, float, int]] = []
        end = self._end
        while end < n_samples:
            bout = self._draw_bout()
            pending.extend(bout)
            end += sum(d for _, _, d in bout)
        if pending:
            self._append(pending)

    def label_at(self, sample_index: int) -> int:
        """Ground-truth state of one sample (extends the schedule when needed)."""
        if sample_index < 0:
            raise ValueError(f"sample_index must be >= 0, got {sample_index}")
        self.extend_to(sample_index + 1)
        return int(self._states[np.searchsorted(self._onsets, sample_index, side="right") - 1])

    def labels(self, first: int, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """Ground-truth states of samples ``first .. first + n - 1``.

        Parameters
        ----------
        first : int
            Index of the first sample (>= 0).
        n : int
            Number of samples (>= 0).
        out : ndarray, shape (>= n,), int8, optional
            Written in place (``out[:n]``) and returned; allocated when omitted.

        Returns
        -------
        ndarray, shape (n,), int8
        """
        if first < 0 or n < 0:
            raise ValueError(f"first and n must be >= 0, got {first}, {n}")
        if out is None:
            out = np.empty(n, np.int8)
        elif out.dtype != np.int8 or out.ndim != 1 or out.shape[0] < n:
            raise ValueError(f"out must be a 1-D int8 array of at least {n} samples")
        self.extend_to(first + n)
        fill_labels(self._onsets, self._states, first, n, out)
        return out[:n] if out.shape[0] != n else out

    # -- drawing ------------------------------------------------------------------------------
    def _draw_bout(self) -> list[tuple[int, float, int]]:
        """One bout of strides and the rest after it: ``(state, strength, n_samples)``."""
        rng = self._rng
        lo_str, hi_str = self._strides
        n_strides = int(rng.integers(lo_str, hi_str + 1))
        steps: list[list[int]] = []
        if self._left and self._right:
            left_first = bool(rng.integers(0, 2))
            order = [self._left, self._right] if left_first else [self._right, self._left]
            for _ in range(n_strides):
                steps.extend(order)
        elif self._left or self._right:
            for _ in range(n_strides):
                steps.append(self._left or self._right)
        if self._unsided:
            perm = rng.permutation(len(self._unsided))
            for p in perm:
                pos = int(rng.integers(0, len(steps) + 1))
                steps.insert(pos, [self._unsided[int(p)]])
        states = [st for step in steps for st in step] + [self.rest_state]
        lo_g, hi_g = self._strength_range
        strengths = rng.uniform(lo_g, hi_g, size=len(states))
        strengths[-1] = 1.0
        durations = rng.integers(self._min_samples, self._max_samples + 1, size=len(states))
        return [(int(s), float(g), int(d)) for s, g, d in zip(states, strengths, durations,
                                                              strict=True)]

    def _append(self, segments: list[tuple[int, float, int]]) -> None:
        n_new = len(segments)
        durations = np.array([d for _, _, d in segments], np.int64)
        onsets = np.empty(n_new, np.int64)
        onsets[0] = self._end
        onsets[1:] = self._end + np.cumsum(durations[:-1])
        states = np.array([s for s, _, _ in segments], np.int8)
        strengths = np.array([g for _, g, _ in segments], np.float64)
        self._onsets = np.concatenate([self._onsets, onsets])
        self._states = np.concatenate([self._states, states])
        self._strengths = np.concatenate([self._strengths, strengths])
        self._end = int(onsets[-1] + durations[-1])


def _steps_of(names: tuple[str, ...]) -> tuple[list[int], list[int], list[int]]:
    """Split movement states into the left step, the right step and unsided states."""
    left: list[int] = []
    right: list[int] = []
    unsided: list[int] = []
    for i, name in enumerate(names):
        if name == REST_NAME:
            continue
        if name == "left" or name.startswith("left_"):
            left.append(i)
        elif name == "right" or name.startswith("right_"):
            right.append(i)
        else:
            unsided.append(i)
    return left, right, unsided


def make_schedule(
    intention_names: Sequence[str],
    duration_s: float,
    seed: int,
    sampling_rate_hz: float,
    *,
    segment: int = 0,
    min_state_s: float = 2.0,
    max_state_s: float = 4.0,
    strides_per_bout: tuple[int, int] = (1, 2),
    strength_range: tuple[float, float] = (0.8, 1.2),
) -> Schedule:
    """Draw a gait-like schedule covering at least ``duration_s`` seconds.

    Parameters
    ----------
    intention_names : sequence of str
        State names; must include ``"rest"``. ``left_*``/``right_*`` (or ``left``/``right``)
        names form the legs' steps in the order given.
    duration_s : float
        Seconds to draw now (the schedule extends itself when read further).
    seed : int
        Seed (>= 0); the same seed and segment give the same schedule in every process.
    sampling_rate_hz : float
        Sample rate the onsets count in.
    segment : int
        Data segment of the same seed (a calibration segment vs. a closed-loop segment).
    min_state_s, max_state_s : float
        Range of segment durations (uniform, whole samples).
    strides_per_bout : (int, int)
        Inclusive range of strides (left + right step) walked between two rests.
    strength_range : (float, float)
        Range of the per-segment modulation strength (1 = nominal), drawn uniformly.

    Returns
    -------
    Schedule
    """
    if not (duration_s >= 0 and np.isfinite(duration_s)):
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s}")
    sched = Schedule(intention_names, sampling_rate_hz, seed, segment=segment,
                     min_state_s=min_state_s, max_state_s=max_state_s,
                     strides_per_bout=strides_per_bout, strength_range=strength_range)
    sched.extend_to(int(np.ceil(duration_s * sampling_rate_hz)))
    return sched
