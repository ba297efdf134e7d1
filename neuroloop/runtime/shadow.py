"""Keep the controller's code and data hot between cycles: a shadow cycle before each hop.

A live loop works for a few hundred microseconds and then waits about 100 ms for the next
hop. In that wait the caches and branch predictors fill with other work, and the next cycle
runs two to four times slower than the same cycle run back to back (measured on the 2-core
development VM: the feature stage takes 63 us hot and 164 us after a 100 ms sleep). Real-time
controllers on shared machines counter this with cache warming: shortly before a hop is due,
:class:`ShadowCycle` runs one whole cycle (features, decoder, policy, supervisor, stimulator)
on deep copies of the stages, fed with the previous hop. Nothing it computes reaches the real
stages, the stimulator or the recording; it only brings the real cycle's code and most of its
data back into the caches. It runs only in the idle time of paced live runs.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..stimulation.stimulators import BaseStimulator

__all__ = ["ShadowCycle", "SHADOW_LEAD_NS"]

#: How long before a hop is due the shadow cycle starts, ns (it takes a few hundred us cold).
SHADOW_LEAD_NS = 600_000


class _NullStimulator(BaseStimulator):
    """Takes commands and drops them (the shadow's stimulator is never a device)."""

    def send(self, command: Any, hop_last_sample: int = -1) -> None:
        del command, hop_last_sample

    def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {}


def _shadow_copy(obj: Any) -> Any:
    """A copy whose state is private and whose coefficients and scratch are shared.

    An object lists its state in ``SHADOW_STATE``; without that list it is deep-copied (safe:
    nothing shared). Sharing scratch is what lets the shadow warm the real stage's buffers.
    """
    state = getattr(obj, "SHADOW_STATE", None)
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
        that a stage listing its hop-to-hop state in ``SHADOW_STATE`` (the feature pipeline)
        shares its coefficients and scratch buffers with the shadow, which warms them too.
    stimulator : BaseStimulator
        The loop's stimulator: a simulated one is copied, anything else (a device link) is
        replaced by a null stimulator, so the shadow never talks to hardware.
    hop : ndarray, shape (hop_samples, n_channels)
        The loop's hop buffer: the shadow reads the previous hop from it, never writes it.
    cycle_period_ns : int
        The shadow supervisor's clock advances by this much per shadow cycle.
    """

    def __init__(self, *, pipeline: Any, decoder: Any, policy: Any, supervisor: Any,
                 stimulator: BaseStimulator, hop: np.ndarray, cycle_period_ns: int) -> None:
        self.pipeline = _shadow_copy(pipeline)
        self.decoder = copy.deepcopy(decoder)
        self.policy = copy.deepcopy(policy)
        self.supervisor = copy.deepcopy(supervisor)
        from ..stimulation.stimulators import SimulatedStimulator

        self.stimulator: BaseStimulator = (copy.deepcopy(stimulator)
                                           if isinstance(stimulator, SimulatedStimulator)
                                           else _NullStimulator())
        self.hop = hop
        self.period_ns = int(cycle_period_ns)
        self.now_ns = 0
        self.supervisor.arm(self.now_ns)
        self._features = self.pipeline.step(self.hop)

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
