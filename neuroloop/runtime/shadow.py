"""Keep the controller's code and data hot between cycles: a shadow cycle before each hop.

A live loop works for a few hundred microseconds and then waits about 100 ms for the next
hop. In that wait the caches and branch predictors fill with other work, and the next cycle
runs two to four times slower than the same cycle run back to back (measured on the 2-core
development VM: the feature stage takes 63 us hot and 164 us after a 100 ms sleep). Real-time
controllers on shared machines counter this with cache warming: shortly before a hop is due,
:class:`ShadowCycle` runs whole cycles (features, decoder, policy, supervisor, stimulator)
on copies of the stages, fed with the previous hop, again and again until the hop is nearly
due (:meth:`ShadowCycle.warm`). A stage that lists its hop-to-hop state in ``SHADOW_STATE``
gets a twin with private copies of that state and the real coefficients, configuration and
scratch, so the shadow warms the very memory the real cycle reads; any other stage gets a deep
copy. Nothing the shadow computes reaches the real stages' state, the stimulator or the
recording. The real stages' state itself is then read once (never written) to bring it back
into this core's cache, and so are the samples of the coming hop when a prefetching source
has them already (another core wrote them: the hop's copy would otherwise fetch them from
that core line by line). It runs only in the idle time of paced live runs.

Measured on the 2-core development VM (30 s bsi runs, two helpers busy on the other core):
one shadow cycle of deep copies gave compute p50/p99 171/360 us; warming the real decoder and
policy data took their stages from 21 and 19 us to 14 and 11 us (p50); a second shadow cycle
took compute p99 to 235 us (the first cycle after the sleep is itself cold).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._buffers import byte_view, touch
from ..stimulation.stimulators import BaseStimulator

__all__ = ["ShadowCycle", "SHADOW_LEAD_NS"]

#: How long before a hop is due the shadow cycles start, ns (the first takes a few hundred
#: us cold, the next ones about half of that).
SHADOW_LEAD_NS = 1_500_000
#: At most this many shadow cycles before one hop.
SHADOW_MAX_RUNS = 4
#: A further shadow cycle starts only if this many times the last one's duration is left.
_SAFETY_FACTOR = 1.5


class _NullStimulator(BaseStimulator):
    """Takes commands and drops them (the shadow's stimulator is never a device)."""

    def send(self, command: Any, hop_last_sample: int = -1) -> None:
        del command, hop_last_sample

    def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {}


def _state_arrays(obj: Any) -> Iterator[np.ndarray]:
    """The arrays among ``obj``'s ``SHADOW_STATE`` attributes (one level into objects such as
    the supervisor's state record); nothing when its class declares no such list."""
    for name in type(obj).__dict__.get("SHADOW_STATE", ()):
        value = getattr(obj, name, None)
        if isinstance(value, np.ndarray):
            yield value
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            members = [getattr(value, f.name) for f in dataclasses.fields(value)]
        elif hasattr(value, "__dict__"):
            members = list(vars(value).values())
        else:
            continue
        for member in members:
            if isinstance(member, np.ndarray):
                yield member


def _shadow_copy(obj: Any) -> Any:
    """A copy whose state is private and whose coefficients and scratch are shared.

    An object's class lists its state in ``SHADOW_STATE``; without that list it is
    deep-copied (safe: nothing shared). Only a list declared by the object's own class
    counts: a subclass may add state its parent's list does not name. Sharing scratch is
    what lets the shadow warm the real stage's buffers.
    """
    state = type(obj).__dict__.get("SHADOW_STATE")
    if state is None:
        return copy.deepcopy(obj)
    twin = copy.copy(obj)
    for name in state:
        setattr(twin, name, copy.deepcopy(getattr(obj, name)))
    return twin


class ShadowCycle:
    """One cycle on private copies of the stages, to warm the caches before the real one.

    Parameters
    ----------
    pipeline, decoder, policy, supervisor : objects
        The loop's stages, copied once here (at warm-up, before arming): deep copies, except
        that a stage listing its hop-to-hop state in ``SHADOW_STATE`` (the feature pipeline,
        the LDA decoder, the stateless policies, the supervisor) shares its coefficients,
        configuration and scratch buffers with the shadow, which warms them too.
    stimulator : BaseStimulator
        The loop's stimulator: a simulated one is copied; one with a ``rehearsal()`` method
        (a device link's) is replaced by what that returns, a stimulator that encodes each
        command as the real one would and sends nothing; anything else by a null stimulator.
        The shadow never talks to hardware.
    hop : ndarray, shape (hop_samples, n_channels)
        The loop's hop buffer: the shadow reads the previous hop from it, never writes it.
    cycle_period_ns : int
        The shadow supervisor's clock advances by this much per shadow cycle.
    upcoming : callable, optional
        ``upcoming() -> ndarray or None``: the samples the next read will return if the
        source has them already (a prefetching source's next chunk); read after the shadow
        cycles, never written.
    """

    def __init__(self, *, pipeline: Any, decoder: Any, policy: Any, supervisor: Any,
                 stimulator: BaseStimulator, hop: np.ndarray, cycle_period_ns: int,
                 upcoming: Callable[[], np.ndarray | None] | None = None) -> None:
        self._real = (pipeline, decoder, policy, supervisor)
        self._upcoming = upcoming
        self.pipeline = _shadow_copy(pipeline)
        self.decoder = _shadow_copy(decoder)
        self.policy = _shadow_copy(policy)
        self.supervisor = _shadow_copy(supervisor)
        from ..stimulation.stimulators import SimulatedStimulator

        rehearsal = getattr(stimulator, "rehearsal", None)
        self.stimulator: BaseStimulator = (copy.deepcopy(stimulator)
                                           if isinstance(stimulator, SimulatedStimulator)
                                           else rehearsal() if rehearsal is not None
                                           else _NullStimulator())
        self.hop = hop
        self.period_ns = int(cycle_period_ns)
        self.now_ns = 0
        self.supervisor.arm(self.now_ns)
        self._features = self.pipeline.step(self.hop)
        #: shadow cycles run so far (a run's idle-time cost, for tests and diagnostics)
        self.runs = 0

    def warm(self, due_ns: int, now_ns: Callable[[], int] = time.perf_counter_ns) -> int:
        """Run shadow cycles until ``due_ns`` is close, then read the real stages' state.

        The first always runs; another starts only while more than ``1.5 x`` the last one's
        duration is left, and at most :data:`SHADOW_MAX_RUNS` run. Returns how many ran.

        Parameters
        ----------
        due_ns : int
            When the hop is due, on the clock ``now_ns`` reads.
        now_ns : callable
            The loop's clock (``time.perf_counter_ns`` for a wall clock).
        """
        n = 0
        while n < SHADOW_MAX_RUNS:
            t0 = now_ns()
            self.run()
            n += 1
            t1 = now_ns()
            if t1 + _SAFETY_FACTOR * (t1 - t0) >= due_ns:
                break
        self.touch_real_state()
        return n

    def touch_real_state(self) -> int:
        """Read (never write) the real stages' ``SHADOW_STATE`` arrays and the coming hop's
        samples once, so the real cycle finds them in this core's cache. Returns the number
        of arrays read."""
        n = 0
        for stage in self._real:
            for a in _state_arrays(stage):
                b = byte_view(a)
                if b is not None:
                    touch(b)
                    n += 1
        if self._upcoming is not None:
            samples = self._upcoming()
            b = None if samples is None else byte_view(samples)
            if b is not None:
                touch(b)
                n += 1
        return n

    def run(self) -> None:
        """One shadow cycle (the outputs are thrown away).

        The feature step runs last, on the hop the reader holds, so that the working set of
        the real cycle's first and largest stage is the freshest in the caches; the decoder
        and the later stages run first, on the features of the previous shadow step.
        """
        output = self.decoder.step(self._features)
        self.now_ns += self.period_ns
        request = self.policy.step(output, self.now_ns, 0)
        command, _ = self.supervisor.step(request, self.now_ns, input_ns=self.now_ns,
                                          decoder_valid=bool(output.valid),
                                          confidence=float(output.confidence),
                                          deadline_missed=False)
        self.stimulator.send(command, hop_last_sample=-1)
        self._features = self.pipeline.step(self.hop)
        self.runs += 1
