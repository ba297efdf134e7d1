"""The control-policy contract: a decoder output and the time in, a stimulation request out.

A policy sits between the decoder and the safety supervisor (see DESIGN.md, "Data flow")::

    Decoder.step(features) -> DecoderOutput
        -> ControlPolicy.step(output, now_ns, cycle) -> StimCommand (a *request*)
        -> SafetySupervisor.step(request, now, ...)

A policy never decides safety: the supervisor clamps, ramps, blanks for hardware limits and
trips. What a policy does guarantee is that each request it makes is either off or one of the
scenario's programs at an amplitude inside that program's clinician envelope
``[amplitude_min_ma, amplitude_max_ma]``, whatever the decoder produced (SAFETY.md invariant 8).
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..config import ControlConfig, _Section
from ..decoders.base import DecoderOutput, OutputSchema
from ..errors import ConfigError
from ..stimulation.command import PROGRAM_OFF, StimCommand
from ..stimulation.programs import ProgramSet

__all__ = ["ControlPolicy", "OneOutputPolicy", "PolicyParams"]

_OUTPUT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PolicyParams(_Section):
    """Typed getters over the ``[control]`` table that name ``control.<key>`` and the file
    on error (the scenario loader's own helper, plus what policies need on top)."""

    def __init__(self, config: ControlConfig) -> None:
        super().__init__(dict(config.params), "control", config.label)

    def output_name(self, key: str, default: Any = ...) -> str:
        """The name of a decoder output (a lower-case identifier such as ``state_margin``)."""
        v = self.get(key, default)
        if not isinstance(v, str) or not _OUTPUT_NAME.match(v):
            raise self.fail(key, v, "is not an output name; decoder outputs are lower-case "
                            "identifiers such as \"state_margin\" or \"beta_power_db\"")
        return v

    def intention(self, key: str, programs: ProgramSet, default: Any = ...) -> int:
        """An intention that has a program in ``[[stimulation.programs]]``; its program id."""
        v = self.get(key, default)
        with_program = [p.name for p in programs]
        if not isinstance(v, str) or v not in with_program:
            raise self.fail(key, v, "is not an intention with a stimulation program; use one "
                            f"of: {', '.join(with_program) or '(no programs are defined)'}")
        return programs.intention_names.index(v)

    def intentions(self, key: str, names: Sequence[str], default: Any = ...) -> tuple[int, ...]:
        """A non-empty list of distinct intention names; their indices."""
        v = self.get(key, default)
        if (not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v)
                or len(set(v)) != len(v) or not set(v) <= set(names)):
            raise self.fail(key, v, f"must list distinct intentions from: {', '.join(names)}")
        return tuple(names.index(s) for s in v)

    def interval(self, key: str, default: Any = ..., *,
                 what: str = "[lo, hi]") -> tuple[float, float]:
        """A ``[lo, hi]`` pair of finite numbers with ``lo < hi``."""
        v = self.get(key, default)
        if (not isinstance(v, list) or len(v) != 2
                or not all(isinstance(x, int | float) and not isinstance(x, bool)
                           and math.isfinite(x) for x in v)):
            raise self.fail(key, v, f"must be {what}, two finite numbers")
        lo, hi = float(v[0]), float(v[1])
        if not math.isfinite(hi - lo):
            raise self.fail(key, v, f"spans more than a float can hold; use a realistic {what}")
        if not lo < hi:
            raise self.fail(key, v, f"is inverted or empty (lo >= hi); write it as {what} "
                            f"with lo < hi, e.g. [{min(lo, hi):g}, {max(lo, hi) + (lo == hi):g}]")
        return lo, hi


class ControlPolicy(abc.ABC):
    """Turns each decoder output into a stimulation request, with its own preallocated state.

    Built once per session from the scenario's ``[control]`` table, its program set and the
    decoder's output schema, then stepped once per control cycle. Registered by name
    (:func:`~neuroloop.control.register_policy`, or the entry-point group
    ``neuroloop.control_policies``); a scenario picks one with ``[control] policy = "..."``.

    Parameters
    ----------
    config : ControlConfig
        The ``[control]`` table: ``policy`` and the policy's own keys (``config.params``).
    programs : ProgramSet
        The scenario's electrode array and programs (one per intention, each with its
        clinician envelope ``[amplitude_min_ma, amplitude_max_ma]``).
    schema : OutputSchema
        What the decoder produces (state names, continuous output names and units).
    decoder : str
        How to name the decoder in error messages (its file, or its kind).

    Raises
    ------
    ConfigError
        One line naming the ``control.<key>`` at fault and the fix: a bad or unknown key, an
        inverted range, or an output the decoder does not produce.

    Attributes
    ----------
    name : str
        Registry name (class attribute), e.g. ``"proportional"``.
    settings : object
        What :meth:`parse` made of ``config`` (frozen).
    request : StimCommand
        The preallocated request that :meth:`step` overwrites and returns.
    programs, schema, config
        As given.

    Notes
    -----
    **Subclassing.** Implement :meth:`parse` (validate the policy's keys into a frozen
    settings object, without a decoder: the session calls it before calibrating, so mistakes
    show at once), :meth:`step`, and, when needed, :attr:`required_outputs`, :meth:`_bind`
    (look up output indices in the schema, preallocate state) and :meth:`reset`. ``step`` runs
    in the real-time loop: it must not allocate arrays or objects, import, log or block; keep
    every piece of state in attributes or arrays made in ``_bind``. Write the request through
    :meth:`_set_program` / :meth:`_set_off` so that it is always off or a program inside its
    envelope.

    **Time.** ``step`` gets ``now_ns``: when the hop's last sample became available, in the
    session clock's nanoseconds. It is derived from the sample index for paced and simulated
    sources, is the receive time for a device, and is the recorded value in a replay, so a
    policy whose timers run on ``now_ns`` (never on ``time.*``) replays exactly. The loop does
    not call ``step`` in cycles without fresh samples (the supervisor handles stale input), so
    timers must use differences of ``now_ns``, not cycle counts, to measure durations.

    **A dual-threshold policy (adaptive DBS)** slots in without touching the loop: settings
    ``output`` (e.g. ``beta_power_db``), ``program``, ``thresholds = [lower, upper]``,
    ``onset_s`` / ``termination_s`` (how long the output must stay above ``upper`` / below
    ``lower`` before the target changes), ``ramp_up_ma_per_s`` / ``ramp_down_ma_per_s`` (at
    most the supervisor's slew limit) and ``blanking_s``. State, all scalars set in
    ``_bind``/``reset``: current amplitude, target amplitude, ``above_since_ns``,
    ``below_since_ns``, ``blank_until_ns`` and ``last_ns``. Each step: update the
    above/below timers from ``now_ns``; outside blanking, a timer past its duration sets the
    target to the envelope's max or min and starts a blanking period; move the amplitude
    toward the target by at most ``ramp * (now_ns - last_ns)``; write the program at that
    amplitude. Invariant 19 (ramps and blanking) is then a property of ``step`` alone.

    **A triggered-burst policy (responsive neurostimulation)** likewise: settings ``output``
    (e.g. ``detector_score``), ``threshold``, ``program``, ``burst_s``,
    ``bursts_per_episode``, ``refractory_s``, ``episode_gap_s`` and
    ``daily_limit_s``. State: ``burst_end_ns``, ``refractory_until_ns``, the episode's burst
    count and its last detection time, and a preallocated int64 ring of burst start times
    (sized for the daily maximum) for the rolling 24 h on-time. Each step: inside a burst,
    write the program; otherwise write off, and start a new burst only when the output
    crosses the threshold, ``now_ns`` is past the refractory period, the episode has bursts
    left and the rolling day has on-time left. Invariant 20 (bursts) is a property of
    ``step`` alone.
    """

    name: ClassVar[str] = ""

    def __init__(self, config: ControlConfig, programs: ProgramSet, schema: OutputSchema,
                 *, decoder: str = "the decoder") -> None:
        self.config = config
        self.programs = programs
        self.schema = schema
        self.decoder_label = decoder
        self.settings = type(self).check_config(config, programs)
        if schema.n_states != len(programs.intention_names):
            raise ConfigError(
                f"{config.label}: {decoder} decodes {schema.n_states} states but the scenario "
                f"has {len(programs.intention_names)} intentions; retrain the decoder for it")
        for out_name in self.required_outputs:
            if out_name in schema.output_names:
                continue
            key = self._output_key(out_name)
            if key is not None:
                raise ConfigError(
                    f"{config.label}: control.{key} = {out_name!r} is not an output of "
                    f"{decoder}, which outputs {schema.describe_outputs()}; set control.{key} "
                    f"to one of those or use a decoder that produces {out_name}")
            raise ConfigError(
                f"{config.label}: control.policy = {self.name!r} needs decoder output "
                f"{out_name!r}, which {decoder} does not produce (it outputs "
                f"{schema.describe_outputs()}); use a decoder that produces it or another "
                "policy")
        t = programs.table()
        self._signed = t["signed_fraction"]
        self._uses_case = t["uses_case"]
        self._freq = t["frequency_hz"]
        self._pw = t["pulse_width_us"]
        self._ipg = t["interphase_gap_us"]
        self._amin = t["amplitude_min_ma"]
        self._amax = t["amplitude_max_ma"]
        self._has = t["has_program"]
        self.request = StimCommand.off(programs.array.n_contacts)
        self._bind(schema)
        self.reset()

    # -- configuration ---------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: ControlConfig, programs: ProgramSet) -> Any:
        """Validate ``config`` for this policy without a decoder; return the settings.

        Raises
        ------
        ConfigError
            For a bad value or an unknown key of ``[control]``.
        """
        params = PolicyParams(config)
        settings = cls.parse(params, programs)
        params.check_unknown()
        return settings

    @classmethod
    def check_limits(cls, settings: Any, limits: Any, label: str = "<config>") -> None:
        """Refuse settings that the scenario's safety limits forbid (e.g. a ramp faster than
        the hard ramp limit), as a one-line ConfigError; called by the session once the
        effective limits are known. Default: nothing to check."""
        del settings, limits, label

    @classmethod
    @abc.abstractmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> Any:
        """Read and validate this policy's ``[control]`` keys into a frozen settings object."""

    @classmethod
    def example_params(cls, programs: ProgramSet, schema: OutputSchema) -> dict[str, Any] | None:
        """``[control]`` keys (besides ``policy``) that build a valid instance for these
        programs and this decoder, or None when none can. The contract tests build every
        registered policy with them; a plugin should override this."""
        return {}

    @property
    def required_outputs(self) -> tuple[str, ...]:
        """Names of the decoder's continuous outputs this policy reads (checked at build)."""
        return ()

    def _output_key(self, output_name: str) -> str | None:
        """The ``[control]`` key that names ``output_name`` (for error messages); None when
        the policy itself needs it."""
        return None

    def _bind(self, schema: OutputSchema) -> None:
        """Look up output indices and preallocate state (called once, before :meth:`reset`).

        The default binds nothing (a policy that reads only the discrete state).
        """
        return None

    # -- online ------------------------------------------------------------------------------
    @abc.abstractmethod
    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        """The request for this cycle.

        Parameters
        ----------
        output : DecoderOutput
            This hop's decoder output (any values: NaN, inf, out-of-range states included).
        now_ns : int
            When the hop's last sample became available, ns (class notes, "Time").
        cycle : int
            Control cycle index, copied into ``request.cycle``.

        Returns
        -------
        StimCommand
            :attr:`request`, overwritten in place (copy it to keep it): off, or one program
            at an amplitude inside its clinician envelope. Never allocates.
        """

    def reset(self) -> None:
        """Forget all online state (timers, ramps) and turn the request off."""
        self.request.set_off()
        self.request.cycle = 0

    def metrics(self) -> dict[str, float]:
        """Therapy figures of the run so far (``"control"`` in the run summary), e.g. the
        number of ramps or the time spent stimulating. Not called in the loop. Default: none.
        """
        return {}

    # -- writing the request -------------------------------------------------------------------
    def program_envelope_ma(self, program_id: int) -> tuple[float, float]:
        """The clinician envelope ``(min, max)`` of ``program_id``, mA."""
        return float(self._amin[program_id]), float(self._amax[program_id])

    def _set_off(self, cycle: int) -> StimCommand:
        req = self.request
        req.cycle = cycle
        req.set_off()
        return req

    def _set_program(self, program_id: int, amplitude_ma: float, cycle: int) -> StimCommand:
        """Write program ``program_id`` at ``amplitude_ma`` (total cathodic current, mA).

        The caller keeps ``amplitude_ma`` inside the program's envelope; a zero amplitude
        gives the program's pulse shape with :data:`PROGRAM_OFF` (nothing flows).
        """
        req = self.request
        req.cycle = cycle
        np.multiply(self._signed[program_id], amplitude_ma, out=req.amplitude_ma)
        req.case_ma = amplitude_ma if self._uses_case[program_id] else 0.0
        req.pulse_width_us = float(self._pw[program_id])
        req.frequency_hz = float(self._freq[program_id])
        req.interphase_gap_us = float(self._ipg[program_id])
        req.program_id = program_id if amplitude_ma > 0 else PROGRAM_OFF
        return req

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"


class OneOutputPolicy(ControlPolicy):
    """A policy driven by one continuous decoder output, named by its ``[control] output``
    key (``settings.output``): proportional, the threshold policies, triggered bursts."""

    @property
    def required_outputs(self) -> tuple[str, ...]:
        return (self.settings.output,)

    def _output_key(self, output_name: str) -> str | None:
        return "output"
