"""The real-time control loop: one hop of samples in, one safe stimulation command out.

Per cycle::

    acquire hop -> FeaturePipeline.step -> Decoder.step -> ControlPolicy.step
        -> SafetySupervisor.step(request, now) -> Stimulator.send -> record + listeners

Each stage's cost is logged per cycle (:data:`~neuroloop.stats.STAGES`: acquire,
features, decoder, policy, supervisor, stimulator, bookkeeping). How a cycle learns its times
(live, ``--fast``, replay) is a :mod:`~neuroloop.runtime.timing` strategy chosen once.

Pacing: with a :class:`~neuroloop.runtime.clock.WallClock` and a source that is not paced by
a device, cycle ``k`` waits until the hop's last sample is due (``t0 + (index + 1) / fs``;
computed from the sample index, so it never drifts). With a device, samples arrive on their
own and the block's receive time is the availability time. With a
:class:`~neuroloop.runtime.clock.SimClock` (``--fast``, replay) nothing waits.

Everything used per cycle is allocated before the first cycle; the garbage collector is
frozen while the loop runs. Compute time and end-to-end latency (hop's last sample available
-> command handed to the stimulator) go into preallocated logs; a cycle whose end-to-end
latency exceeds the deadline is counted as a miss and reported to the supervisor.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._jit import total_compiled_signatures
from ..acquisition.base import NO_LABEL, BaseSource, stimulation_effect_sample
from ..control.base import ControlPolicy
from ..decoders.base import BaseDecoder, Intention
from ..errors import DeviceError
from ..records import (
    FLAG_DEADLINE_MISSED,
    FLAG_INJECTED,
    FLAG_INPUT_INVALID,
    FLAG_SAMPLES_LOST,
    FLAG_SOURCE_STALL,
    CycleRows,
    LoopListener,
)
from ..safety.events import InterlockEvent
from ..stats import STAGES, LatencyLog, StageLog
from ..stimulation.command import StimCommand
from ..stimulation.stimulators import BaseStimulator
from .clock import Clock
from .cycle_record import CycleHistory, CycleRecordWriter
from .hop_reader import HOP_EXHAUSTED, HOP_STALLED, HopReader
from .safety_inputs import SafetyInputProvider, poll_safety_inputs
from .shadow import SHADOW_LEAD_NS, ShadowCycle
from .timing import timing_for

# stage columns of StageLog (the order of STAGES)
S_ACQUIRE, S_FEATURES, S_DECODER, S_POLICY, S_SUPERVISOR, S_STIMULATOR, S_BOOKKEEPING = range(7)

__all__ = ["ControlLoop", "LoopResult", "FaultHooks"]

_NS = 1_000_000_000

#: A ``--fast`` run's simulated patient makes several hops per chunk (up to this many bytes),
#: so that its thread takes the interpreter once per chunk, not once per hop: each hand-over
#: of the GIL stalls the loop (measured on the 2-core VM: bsi --fast 150 -> 290-350x real time
#: under load with 8 hops per chunk). A paced run, or a patient that reacts to stimulation
#: (it cannot be produced past the commands it has heard), keeps one hop per chunk.
FAST_CHUNK_BYTES = 256 * 1024


class FaultHooks:
    """Hooks through which fault injection (``--inject``) acts on a cycle (safety inputs such
    as a device link's are not hooks: the loop polls its ``safety_inputs`` every cycle).

    The default does nothing. Subclasses override what they need; every hook is keyed on
    the cycle index so that a replay reproduces it.
    """

    def stall(self, cycle: int) -> bool:
        """True to make this cycle's source read fail (no fresh samples)."""
        return False

    def alter_intention(self, cycle: int, intention: Intention) -> bool:
        """Modify the decoder output in place; True when something was injected."""
        return False

    def alter_request(self, cycle: int, request: StimCommand) -> bool:
        """Modify the stimulation request in place; True when something was injected."""
        return False

    def before_supervisor(self, cycle: int, now_ns: int, supervisor: Any) -> Sequence[Any]:
        """Inject supervisor inputs (estop, impedance); returns events."""
        return ()

    def extra_compute_ns(self, cycle: int) -> int:
        """Busy time to add to this cycle (deadline-overrun injection)."""
        return 0


@dataclass
class LoopResult:
    """What a run measured (raw arrays; :mod:`neuroloop.runtime.summary` turns it into numbers).

    Arrays have one entry per retained cycle (all cycles unless the run outgrew capacity).
    """

    cycles: int
    deadline_misses: int
    compute_ns: np.ndarray
    e2e_ns: np.ndarray
    true_state: np.ndarray
    state: np.ndarray
    program_id: np.ndarray
    stim_on: np.ndarray
    last_sample: np.ndarray
    stall_cycles: int
    samples_lost: int
    interlock_events: dict[str, int]
    time_in_state_ns: dict[str, int]
    jit_compiles_in_loop: int
    listener_errors: list[str]
    stopped_by: str
    wall_s: float
    sampling_rate_hz: float
    hop_samples: int
    stage_ns: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class ControlLoop:
    """The hot loop. Build it, call :meth:`warmup`, arm, then :meth:`run`.

    Parameters
    ----------
    source : BaseSource
        Open source of samples.
    pipeline : FeaturePipeline
        ``step(hop (hop_samples, n_channels)) -> features (n_features,)``.
    decoder : BaseDecoder
        Fitted decoder.
    policy : ControlPolicy
        ``step(decoder output, now_ns, cycle) -> request``; ``now_ns`` is the hop's
        availability time, so its timers replay exactly.
    supervisor : SafetySupervisor
    stimulator : BaseStimulator
    clock : Clock
        WallClock for live runs, SimClock for ``--fast`` and replay.
    hop_samples : int
    sampling_rate_hz : float
    deadline_ns : int
        End-to-end latency above which a cycle counts as a deadline miss.
    listeners : sequence of LoopListener
    hooks : FaultHooks or None
    safety_inputs : sequence of SafetyInputProvider
        Polled every cycle before the supervisor's step; each input is forwarded to the
        supervisor and recorded as a ``link_input`` event
        (:mod:`~neuroloop.runtime.safety_inputs`).
    capacity : int
        Cycles whose per-cycle statistics are retained (ring beyond that).
    replay_cycles : CycleRows (ndarray of cycle_dtype, or a reader's RecordedCycles) or None
        Recorded cycles whose ``now_ns``, ``available_ns`` and stall/deadline flags replace
        the clock, so that time-based interlocks are reproduced exactly.
    """

    def __init__(
        self,
        *,
        source: BaseSource,
        pipeline: Any,
        decoder: BaseDecoder,
        policy: ControlPolicy,
        supervisor: Any,
        stimulator: BaseStimulator,
        clock: Clock,
        hop_samples: int,
        sampling_rate_hz: float,
        deadline_ns: int,
        listeners: Sequence[LoopListener] = (),
        hooks: FaultHooks | None = None,
        safety_inputs: Sequence[SafetyInputProvider] = (),
        capacity: int = 1 << 16,
        replay_cycles: CycleRows | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.decoder = decoder
        self.policy = policy
        self.supervisor = supervisor
        self.stimulator = stimulator
        self.clock = clock
        self.hop = int(hop_samples)
        self.fs = float(sampling_rate_hz)
        self.deadline_ns = int(deadline_ns)
        self.listeners: tuple[LoopListener, ...] = tuple(listeners)
        self.hooks = hooks or FaultHooks()
        self.safety_inputs: tuple[SafetyInputProvider, ...] = tuple(safety_inputs)
        self.replay_cycles = replay_cycles
        self.timing = timing_for(clock, deadline_ns, replay_cycles)
        hop_s = self.hop / self.fs
        self.reader = HopReader(
            source, clock, hop_samples=self.hop, sampling_rate_hz=self.fs,
            read_timeout_s=read_timeout_s if read_timeout_s is not None else 2.0 * hop_s,
            on_samples=self._samples_to_listeners)
        n_contacts = policy.programs.array.n_contacts
        n_states = len(policy.programs.intention_names)
        #: a simulated patient that reacts to stimulation hears every command sent (resolved
        #: once: nothing per cycle for other sources)
        self._stimulation_applied = (source.stimulation_applied
                                     if getattr(source, "reacts_to_stimulation", False)
                                     and replay_cycles is None else None)
        self._off = StimCommand.off(n_contacts)
        self.writer = CycleRecordWriter(pipeline.n_features, n_states, n_contacts,
                                        decoder.output_schema_.n_outputs)
        self.dtype = self.writer.dtype
        self.record = self.writer.record

        cap = int(capacity)
        self.compute_log = LatencyLog(cap)
        self.e2e_log = LatencyLog(cap)
        self.stage_log = StageLog(STAGES, cap)
        self._stage_ns = np.zeros(len(STAGES), dtype=np.int64)
        self.history = CycleHistory(cap)

        # run state
        self.cycle = 0
        self.deadline_misses = 0
        self.stall_cycles = 0
        self._last_good_available = 0
        #: warms the caches before each hop of a paced live run (built by warmup)
        self._shadow: ShadowCycle | None = None
        self._available_ns = 0  # when the current hop's last sample became available
        self._prev_missed = False
        self.event_counts: dict[str, int] = {}
        self.listener_errors: list[str] = []
        self._stop_requested = False
        #: The device error that ended the run, if one did (the stimulator was stopped).
        self.device_error: DeviceError | None = None
        self.status_cb: Callable[[ControlLoop], None] | None = None
        self.status_interval_ns = int(0.25 * _NS)

    @property
    def samples_lost(self) -> int:
        return self.reader.samples_lost

    # -- set-up -----------------------------------------------------------------------------
    def warmup(self, n_cycles: int = 3) -> None:
        """Compile and exercise every kernel with real shapes, then reset all online state.

        Must run before the supervisor is armed: a JIT compile inside the loop is a bug.
        """
        self.pipeline.warmup()
        self.decoder.warmup()
        if hasattr(self.supervisor, "warmup"):
            self.supervisor.warmup()
        zeros = np.zeros_like(self.reader.hop)
        for _ in range(n_cycles):
            feats = self.pipeline.step(zeros)
            intention = self.decoder.step(feats)
            self.policy.step(intention, 0, 0)
        self.pipeline.reset()
        self.decoder.reset()
        self.policy.reset()
        # a pipeline may decline the shadow cycle: one whose hop is megabytes (intracortical
        # raw) gains nothing from warming caches it cannot hold, and would run twice per hop
        if self.reader.paced and self.replay_cycles is None \
                and getattr(self.pipeline, "SHADOW_CYCLE", True):
            self._shadow = ShadowCycle(
                pipeline=self.pipeline, decoder=self.decoder, policy=self.policy,
                supervisor=self.supervisor, stimulator=self.stimulator, hop=self.reader.hop,
                cycle_period_ns=int(round(self.hop * _NS / self.fs)),
                upcoming=getattr(self.source, "upcoming_samples", None))
        if self.replay_cycles is None:
            # a simulated patient produces its hops ahead, in a thread of its own, so the
            # loop times the controller, not the simulation (a device or recording: no-op)
            start_prefetch = getattr(self.source, "start_prefetch", None)
            if start_prefetch is not None:  # test doubles and wrappers may lack the hook
                start_prefetch(self._prefetch_chunk(), release_when_idle=self.reader.paced)

    def _prefetch_chunk(self) -> int:
        """Samples per produced chunk: one hop, or whole hops up to :data:`FAST_CHUNK_BYTES`
        for an unpaced run of a patient that does not react to stimulation."""
        if self.reader.paced or getattr(self.source, "reacts_to_stimulation", False):
            return self.hop
        bytes_per_hop = self.hop * int(self.source.info.n_channels) * 8
        return self.hop * max(1, FAST_CHUNK_BYTES // max(1, bytes_per_hop))

    def request_stop(self) -> None:
        """Ask the loop to stop after the current cycle (thread- and signal-safe)."""
        self._stop_requested = True

    # -- the loop ---------------------------------------------------------------------------
    def run(self, max_cycles: int | None = None) -> LoopResult:
        """Run until ``max_cycles``, the source is exhausted, or :meth:`request_stop`.

        The stimulator is stopped on the way out, whatever happened.
        """
        stopped_by = "max_cycles"
        jit_before = total_compiled_signatures()
        gc_was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        wall0 = time.perf_counter()
        t0_ns = self.clock.now_ns()
        self.reader.start(t0_ns)
        next_status = t0_ns
        try:
            while max_cycles is None or self.cycle < max_cycles:
                if self._stop_requested:
                    stopped_by = "stop_requested"
                    break
                try:
                    more = self._one_cycle()
                except DeviceError as exc:  # cable pulled, port gone: stop, keep the summary
                    self.device_error = exc
                    stopped_by = "device_error"
                    break
                if not more:
                    stopped_by = "source_exhausted"
                    break
                if self.status_cb is not None:
                    now = self.clock.now_ns()
                    if now >= next_status:
                        next_status = now + self.status_interval_ns
                        self.status_cb(self)
        finally:
            try:
                self.stimulator.stop()
            except DeviceError:
                pass  # the device is gone; its own watchdog ramps its output to zero
            finally:
                if gc_was_enabled:
                    gc.enable()
                gc.unfreeze()
        wall_s = time.perf_counter() - wall0
        return self._result(stopped_by, total_compiled_signatures() - jit_before, wall_s)

    def _one_cycle(self) -> bool:
        k = self.cycle
        if not self.timing.has_cycle(k):
            return False
        acquired = self._acquire_hop(k)
        if acquired < 0:
            return False
        self._compute_and_send(k, acquired, self.timing.available(k, self._available_ns))
        return True

    def _acquire_hop(self, k: int) -> int:
        """Stage 1: one hop. Returns the cycle's flags so far, or -1 when the stream ended.

        Sets ``self._available_ns``; the pacing wait is not part of any stage.
        """
        reader = self.reader
        stage = self._stage_ns
        if self.timing.stalled(k, self.hooks):
            if not self.timing.drop_hop(k, reader):
                return -1
            stage[S_ACQUIRE] = 0
            self._available_ns = reader.due_ns(reader.last_sample)
            return FLAG_SOURCE_STALL
        if self._shadow is not None:  # warm the caches until the hop is nearly due, then spin
            reader.wait(lead_ns=SHADOW_LEAD_NS)
            if not reader.ready():  # a device's hop already there is read at once
                self._shadow.warm(reader.hop_due_ns(), self.clock.now_ns)
            reader.wait(spin=True)
        else:
            reader.wait()
        t_wake = time.perf_counter_ns()
        status = reader.read_hop()
        stage[S_ACQUIRE] = time.perf_counter_ns() - t_wake
        if status == HOP_EXHAUSTED:
            return -1
        if status == HOP_STALLED:
            self._available_ns = self.clock.now_ns()
            return FLAG_SOURCE_STALL
        self._available_ns = reader.available_ns
        return FLAG_SAMPLES_LOST if reader.gap else 0

    def _compute_and_send(self, k: int, flags: int, available_ns: int) -> None:
        """Stages 2-7: features, decoder, policy, supervisor, stimulator, bookkeeping."""
        timing = self.timing
        reader = self.reader
        stage = self._stage_ns
        # 2. compute: features -> decoder -> policy -> supervisor -> stimulator
        t_start = time.perf_counter_ns()
        features = self.writer.features
        if flags & FLAG_SOURCE_STALL:
            self.stall_cycles += 1
            intention = None
            request = self._off
            request.cycle = k
            # no decoder output this cycle: the supervisor judges the input by its age
            # (input_ns is the last fresh hop), so the reason it reports is stale input
            valid, confidence = True, 1.0
            t_features = t_decoded = t_start
        else:
            self._last_good_available = available_ns
            features = self.pipeline.step(reader.hop)
            t_features = time.perf_counter_ns()
            intention = self.decoder.step(features)
            t_decoded = time.perf_counter_ns()
            if self.hooks.alter_intention(k, intention):
                flags |= FLAG_INJECTED
            valid, confidence = bool(intention.valid), float(intention.confidence)
            request = self.policy.step(intention, available_ns, k)
            if self.hooks.alter_request(k, request):
                flags |= FLAG_INJECTED
        if not valid and intention is not None:
            flags |= FLAG_INPUT_INVALID
        extra = self.hooks.extra_compute_ns(k)
        if extra:
            flags |= FLAG_INJECTED
            timing.burn(extra)
        t_policy = time.perf_counter_ns()

        now_ns = timing.now_ns(k)
        hook_events = self.hooks.before_supervisor(k, now_ns, self.supervisor)
        if self.safety_inputs:
            polled = poll_safety_inputs(self.safety_inputs, k, now_ns, self.supervisor)
            if polled:
                hook_events = [*hook_events, *polled]
        command, events = self.supervisor.step(
            request, now_ns, input_ns=self._last_good_available, decoder_valid=valid,
            confidence=confidence, deadline_missed=self._prev_missed)
        t_supervised = time.perf_counter_ns()
        self.stimulator.send(command, hop_last_sample=reader.last_sample)
        t_end = time.perf_counter_ns()
        if self._stimulation_applied is not None:  # after the send: not on the e2e path
            self._stimulation_applied(command.amplitude_ma, command.frequency_hz,
                                      command.pulse_width_us,
                                      stimulation_effect_sample(reader.last_sample, self.hop))
        compute_ns = t_end - t_start
        sent_ns, e2e_ns, missed = timing.outcome(k, available_ns, now_ns, compute_ns)
        if missed:
            flags |= FLAG_DEADLINE_MISSED
            self.deadline_misses += 1
        self._prev_missed = missed

        # 3. bookkeeping (preallocated)
        self.compute_log.add(compute_ns)
        self.e2e_log.add(e2e_ns)
        true_state = NO_LABEL if flags & FLAG_SOURCE_STALL else reader.true_state
        self.history.add(k, true_state, int(intention.state) if intention is not None else 0,
                         command.program_id, not command.is_off, reader.last_sample)
        record = self.writer.fill(
            cycle=k, first_sample=reader.next_index - self.hop, flags=flags,
            available_ns=available_ns, now_ns=now_ns, sent_ns=sent_ns, compute_ns=compute_ns,
            e2e_ns=e2e_ns, true_state=true_state, output=intention, features=features,
            request=request, command=command, supervisor_state=int(self.supervisor.state),
            n_events=len(events) + len(hook_events))
        if events or hook_events:
            self._note_events(hook_events, events)
        for listener in self.listeners:
            try:
                listener.on_cycle(record)
            except Exception as exc:  # noqa: BLE001 - a listener never stops the loop
                self._detach(listener, exc)
        self.cycle = k + 1
        stage[S_FEATURES] = t_features - t_start
        stage[S_DECODER] = t_decoded - t_features
        stage[S_POLICY] = t_policy - t_decoded
        stage[S_SUPERVISOR] = t_supervised - t_policy
        stage[S_STIMULATOR] = t_end - t_supervised
        stage[S_BOOKKEEPING] = time.perf_counter_ns() - t_end
        self.stage_log.add(stage)

    # -- listeners ----------------------------------------------------------------------------
    def _samples_to_listeners(self, data: np.ndarray, first_index: int) -> None:
        for listener in self.listeners:
            try:
                listener.on_samples(data, first_index)
            except Exception as exc:  # noqa: BLE001
                self._detach(listener, exc)

    def _note_events(self, *groups: Sequence[InterlockEvent | dict[str, Any]]) -> None:
        """Count interlock events by reason and hand every event to the listeners.

        Plain dicts (annotations such as the link inputs of a device run) are passed on
        as they are and not counted as interlocks.
        """
        out: list[dict[str, Any]] = []
        for group in groups:
            for ev in group:
                if isinstance(ev, dict):
                    out.append(ev)
                    continue
                self.event_counts[ev.reason] = self.event_counts.get(ev.reason, 0) + 1
                out.append(ev.to_dict())
        for listener in self.listeners:
            try:
                listener.on_events(out)
            except Exception as exc:  # noqa: BLE001
                self._detach(listener, exc)

    def _detach(self, listener: LoopListener, exc: BaseException) -> None:
        # rebuild rather than mutate: a loop iterating the old tuple is not disturbed
        self.listeners = tuple(x for x in self.listeners if x is not listener)
        self.listener_errors.append(f"{type(listener).__name__}: {exc}")

    def _result(self, stopped_by: str, jit_compiles: int, wall_s: float) -> LoopResult:
        history = self.history.ordered(self.cycle)
        time_in_state = (self.supervisor.time_in_state_ns()
                         if hasattr(self.supervisor, "time_in_state_ns") else {})
        return LoopResult(
            cycles=self.cycle,
            deadline_misses=self.deadline_misses,
            compute_ns=self.compute_log.ordered(),
            e2e_ns=self.e2e_log.ordered(),
            true_state=history["true_state"],
            state=history["state"],
            program_id=history["program_id"],
            stim_on=history["stim_on"],
            last_sample=history["last_sample"],
            stall_cycles=self.stall_cycles,
            samples_lost=self.reader.samples_lost,
            interlock_events=dict(self.event_counts),
            time_in_state_ns=dict(time_in_state),
            jit_compiles_in_loop=jit_compiles,
            listener_errors=list(self.listener_errors),
            stopped_by=stopped_by,
            wall_s=wall_s,
            sampling_rate_hz=self.fs,
            hop_samples=self.hop,
            stage_ns=self.stage_log.ordered(),
        )
