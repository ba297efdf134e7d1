"""Build a closed-loop session from a scenario and run it.

This is the library behind ``neuroloop run``: it opens the source, builds the feature
pipeline, calibrates (or loads) the decoder, builds the control policy, the safety supervisor
and the stimulator, warms every kernel up, arms the supervisor, runs the loop and summarises.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..acquisition import open_source
from ..acquisition.base import NO_LABEL, BaseSource
from ..config import Scenario
from ..control import ControlPolicy, check_control, make_policy
from ..decoders.base import BaseDecoder, load_decoder, make_decoder
from ..errors import ConfigError
from ..progress import Progress as ProgressBar
from ..provenance import package_versions, sha256_file
from ..realtime import enter_realtime, leave_realtime
from ..records import CycleRows, LoopListener
from ..stimulation.programs import ProgramSet, build_program_set
from ..stimulation.stimulators import BaseStimulator, SimulatedStimulator
from .clock import Clock, SimClock, WallClock
from .detection import detection_summary
from .loop import ControlLoop, FaultHooks
from .safety_inputs import SafetyInputProvider, safety_input_providers
from .summary import summarise

__all__ = ["RunOptions", "Session", "build_pipeline", "calibration_data", "train_decoder",
           "therapy_metrics"]

Progress = Callable[[str], None]


@dataclass
class RunOptions:
    """How to run a scenario (the command-line options of ``neuroloop run``)."""

    duration_s: float | None = None
    fast: bool = False
    seed: int | None = None
    source_url: str | None = None
    decoder_path: str | None = None
    limits_path: str | None = None  #: a limits file that may only tighten the scenario's
    #: limits that may only tighten, applied after ``limits_path`` (a replay passes the
    #: effective limits its recording ran with)
    limits_table: Mapping[str, Any] | None = None
    deadline_ms: float | None = None
    listeners: Sequence[LoopListener] = ()
    hooks: FaultHooks | None = None
    #: Polled by the loop every cycle, besides the device link's (added by the Session
    #: whenever its source or stimulator is on one); a replay passes the recorded inputs.
    safety_inputs: Sequence[SafetyInputProvider] = ()
    stimulator: BaseStimulator | None = None
    realtime_priority: int | None = 50  #: SCHED_FIFO priority for live runs; None = don't
    extra_meta: dict[str, Any] = field(default_factory=dict)
    as_json: bool = False  #: the output is machine-read: no progress bar (calibration)


def build_pipeline(scenario: Scenario) -> Any:
    """The scenario's :class:`~neuroloop.dsp.FeaturePipeline` (or, with ``dsp.features =
    "covariance"``, its :class:`~neuroloop.dsp.CovariancePipeline`; for ``[dsp] kind =
    "spike-band"``, :func:`neuroloop.dsp.spikes.spike_pipeline`)."""
    from ..dsp import CovariancePipeline, FeaturePipeline

    d = scenario.dsp
    if d.kind == "spike-band":
        from ..dsp.spikes import spike_pipeline

        return spike_pipeline(d.params)
    if d.features == "biomarker":
        from ..dsp.biomarker import BiomarkerPipeline

        return BiomarkerPipeline(
            n_channels=scenario.source.n_channels,
            sampling_rate_hz=scenario.source.sampling_rate_hz, hop_samples=d.hop_samples,
            band_hz=list(d.bands_hz[0]), smoothing_s=d.biomarker_smoothing_s,
            channels=d.biomarker_channels, filter_order=d.filter_order, car=d.car,
            notch_hz=list(d.notch_hz), notch_q=d.notch_q)
    if d.features == "detector":
        from ..dsp.detectors import DetectorPipeline

        return DetectorPipeline(
            n_channels=scenario.source.n_channels,
            sampling_rate_hz=scenario.source.sampling_rate_hz,
            hop_samples=d.hop_samples, band_hz=d.bands_hz[0], filter_order=d.filter_order,
            highpass_hz=d.highpass_hz, lowpass_hz=d.lowpass_hz, notch_hz=list(d.notch_hz),
            notch_q=d.notch_q)
    kind = CovariancePipeline if d.features == "covariance" \
        else FeaturePipeline
    return kind(
        n_channels=scenario.source.n_channels,
        sampling_rate_hz=scenario.source.sampling_rate_hz,
        hop_samples=d.hop_samples,
        bands_hz=[list(b) for b in d.bands_hz],
        filter_order=d.filter_order,
        car=d.car,
        notch_hz=list(d.notch_hz),
        notch_q=d.notch_q,
    )


def _source_options(scenario: Scenario, seed: int | None,
                    url: str | None = None) -> dict[str, Any]:
    """Backend options of the scenario's source; none for another kind of source (a
    recording or a device given with --source/--device does not take synthetic options)."""
    from ..acquisition import parse_url

    if url is not None and parse_url(url)[0] != parse_url(scenario.source.url)[0]:
        return {}
    opts = dict(scenario.source.options)
    if seed is not None:
        opts["seed"] = seed
    if scenario.dsp.kind == "spike-band" and parse_url(url or scenario.source.url)[0] \
            == "intracortical":
        from ..dsp.spikes import source_options_for

        opts = {**source_options_for(scenario.dsp.params), **opts}
    return opts


def check_source(scenario: Scenario, source: BaseSource, url: str) -> None:
    """Refuse a source whose rate or channel count differs from the scenario's design, and
    have it label samples with the scenario's intention indices (matched by name)."""
    info = source.info
    if abs(info.sampling_rate_hz - scenario.stream_rate_hz) > 1e-6:
        raise ConfigError(
            f"source {url} delivers {info.sampling_rate_hz:g} Hz but scenario "
            f"{scenario.name} is designed for {scenario.stream_rate_hz:g} Hz; "
            "set source.sampling_rate_hz to match or use another scenario")
    if info.n_channels != scenario.stream_channels:
        raise ConfigError(
            f"source {url} delivers {info.n_channels} channels but scenario {scenario.name} "
            f"expects {scenario.stream_channels}; set source.n_channels to match")
    bind = getattr(source, "map_intentions", None)  # a duck-typed wrapper may lack it
    if bind is not None:
        bind(scenario.intention_names, scenario.name)
    elif info.intention_names and tuple(info.intention_names) != scenario.intention_names:
        raise ConfigError(
            f"source {url} labels intentions {', '.join(info.intention_names)} but scenario "
            f"{scenario.name} has {', '.join(scenario.intention_names)}, and it cannot map "
            "them by name; use a source derived from BaseSource")


def decoder_params(scenario: Scenario) -> dict[str, Any]:
    """The ``[decoder]`` parameters, plus ``n_states`` and whatever the decoder kind takes
    from the scenario (its ``SCENARIO_PARAMS``: ``hop_s``, ``n_channels``)."""
    from ..decoders.base import _decoder_class

    params = dict(scenario.decoder.params)
    params.setdefault("n_states", len(scenario.intention_names))
    cls = _decoder_class(scenario.decoder.kind)
    given = {"hop_s": scenario.hop_s, "n_channels": scenario.source.n_channels,
             "sampling_rate_hz": scenario.source.sampling_rate_hz}
    for key in getattr(cls, "SCENARIO_PARAMS", ()):
        if key in params:
            raise ConfigError(f"{scenario.path}: decoder.{key} is set from the scenario "
                              f"(its [source] and [dsp]); remove it from [decoder]")
        params[key] = given[key]
    return params


def calibration_data(scenario: Scenario, pipeline: Any, *, url: str | None = None,
                     duration_s: float | None = None, seed: int | None = None,
                     progress: Progress | None = None,
                     keep_all: bool = False, labelled: bool = True,
                     as_json: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Features and per-hop labels of a calibration segment.

    The segment comes from ``url`` (default: the scenario's source with the decoder's
    ``calibration_seed``, so calibration data and closed-loop data differ). Hops whose
    labels are not constant (a transition inside the hop) or unknown are left out, or, with
    ``keep_all`` (for sequential decoders, which need every hop in time order), kept with
    label -1.

    With ``labelled=False`` (a decoder calibrated from the signal alone) every hop is kept
    and unlabelled sources are accepted (``y`` is then the last label of each hop, possibly
    ``NO_LABEL``).

    Returns
    -------
    X : ndarray, shape (n_hops, n_features)
    y : ndarray, shape (n_hops,), int64
    """
    duration_s = duration_s or scenario.decoder.calibration_s
    url = url or scenario.source.url
    opts = _source_options(scenario, seed if seed is not None else scenario.decoder.calibration_seed,
                           url)
    hop = scenario.dsp.hop_samples
    n_hops = int(duration_s * scenario.source.sampling_rate_hz) // hop
    with open_source(url, **opts) as src:
        check_source(scenario, src, url)
        for name in scenario.intention_names if labelled else ():  # a state the source
            msg = src.missing_intention_message(name, url)  # cannot label is a config error
            if msg:
                raise ConfigError(msg)
        if progress:
            progress(f"calibrating: {duration_s:g} s ({n_hops} hops) from {url}")
        data = np.empty((n_hops * hop, src.info.n_channels))
        labels = np.full(n_hops * hop, NO_LABEL, dtype=np.int8)
        got = 0
        fs = scenario.source.sampling_rate_hz
        with ProgressBar(round(data.shape[0] / fs, 1), "calibrate", unit="s",
                         as_json=as_json) as bar:
            while got < data.shape[0]:
                block = src.read(min(4096, data.shape[0] - got), timeout=5.0)
                if block is None:
                    if src.exhausted:
                        break
                    continue
                n = block.n_samples
                data[got:got + n] = block.data
                if block.labels.shape[0] == n:
                    labels[got:got + n] = block.labels
                got += n
                bar.update(n / fs)
    n_hops = got // hop
    if n_hops < 10:
        raise ConfigError(f"calibration source {url} gave only {got} samples; it needs at "
                          f"least {10 * hop} (10 hops)")
    pipeline.reset()
    X = pipeline.process(data[: n_hops * hop])
    pipeline.reset()
    lab = labels[: n_hops * hop].reshape(n_hops, hop)
    if not labelled:
        return X, lab[:, -1].astype(np.int64)
    keep = (lab == lab[:, :1]).all(axis=1) & (lab[:, 0] != NO_LABEL)
    if not keep.any():
        raise ConfigError(f"calibration source {url} has no labelled samples; a decoder "
                          "needs labelled calibration data (synthetic, or EDF with labels=)")
    if keep_all:
        return X, np.where(keep, lab[:, 0], -1).astype(np.int64)
    return X[keep], lab[keep, 0].astype(np.int64)


def train_decoder(scenario: Scenario, pipeline: Any, *, url: str | None = None,
                  duration_s: float | None = None, seed: int | None = None,
                  progress: Progress | None = None,
                  as_json: bool = False) -> tuple[BaseDecoder, dict[str, Any]]:
    """Calibrate a decoder of the scenario's kind; returns it and calibration figures."""
    if _continuous_targets(scenario):
        return _train_on_kinematics(scenario, pipeline, url=url, duration_s=duration_s,
                                    seed=seed, progress=progress)
    from ..decoders.base import decoder_class

    cls = decoder_class(scenario.decoder.kind)
    sequential = bool(getattr(cls, "sequential", False))
    labelled = bool(getattr(cls, "supervised", True))
    X, y = calibration_data(scenario, pipeline, url=url, duration_s=duration_s, seed=seed,
                            progress=progress, keep_all=sequential, labelled=labelled,
                            as_json=as_json)
    n_states = len(scenario.intention_names)
    missing = sorted(set(range(n_states)) - set(np.unique(y[y >= 0]).tolist()))
    if missing and labelled:
        names = ", ".join(scenario.intention_names[i] for i in missing)
        raise ConfigError(f"calibration data has no hops of {names}; lengthen "
                          "decoder.calibration_s")
    params = decoder_params(scenario)
    try:
        decoder = make_decoder(scenario.decoder.kind, **params)
    except TypeError as exc:
        raise ConfigError(f"decoder {scenario.decoder.kind!r}: bad parameter ({exc}); "
                          "check the [decoder] section") from None
    decoder.fit(X, y, state_names=scenario.intention_names)
    known = y >= 0
    train_acc = (float(np.mean(np.argmax(decoder.predict_proba(X), axis=1)[known] == y[known]))
                 if known.any() else float("nan"))
    return decoder, {"hops": int(X.shape[0]), "train_accuracy": round(train_acc, 4)}


def _continuous_targets(scenario: Scenario) -> bool:
    """True when the scenario's decoder kind is fitted on true kinematics (``kalman``)."""
    from ..decoders.base import _decoder_class

    try:
        cls = _decoder_class(scenario.decoder.kind)
    except Exception:  # noqa: BLE001 - an unknown kind is reported by make_decoder
        return False
    return bool(getattr(cls, "continuous_targets", False))


def _train_on_kinematics(scenario: Scenario, pipeline: Any, *, url: str | None,
                         duration_s: float | None, seed: int | None,
                         progress: Progress | None) -> tuple[BaseDecoder, dict[str, Any]]:
    """Fit a continuous decoder on features and the true velocity of a calibration segment."""
    from .kinematics import calibration_kinematics

    url = url or scenario.source.url
    opts = _source_options(scenario, seed if seed is not None
                           else scenario.decoder.calibration_seed, url)
    X, Y = calibration_kinematics(scenario, pipeline, opts, url=url, duration_s=duration_s,
                                  progress=progress)
    params = dict(scenario.decoder.params)
    params.setdefault("n_states", len(scenario.intention_names))
    try:
        decoder = make_decoder(scenario.decoder.kind, **params)
    except TypeError as exc:
        raise ConfigError(f"decoder {scenario.decoder.kind!r}: bad parameter ({exc}); "
                          "check the [decoder] section") from None
    decoder.fit(X, Y, state_names=scenario.intention_names)
    ok = np.all(np.isfinite(X), axis=1)
    predict = getattr(decoder, "predict_outputs", None)
    fitted = predict(X[ok]) if predict is not None else None
    info: dict[str, Any] = {"hops": int(ok.sum())}
    if fitted is not None and np.ndim(fitted) == 2 and fitted.shape[1] >= 2:
        for i, axis in enumerate("xy"):
            info[f"train_corr_{axis}"] = round(float(np.corrcoef(fitted[:, i],
                                                                 Y[ok][:, i])[0, 1]), 4)
    return decoder, info


def check_new_recording_dir(directory: str | Path) -> None:
    """Refuse to record into a directory that exists and is not empty."""
    d = Path(directory)
    if d.exists() and (not d.is_dir() or any(d.iterdir())):
        raise ConfigError(f"recording directory {d} already exists and is not empty; "
                          "choose a new directory (recordings are never overwritten)")


class Session:
    """A closed-loop session: everything built, warmed up and ready to arm.

    Parameters
    ----------
    scenario : Scenario
    options : RunOptions
    progress : callable or None
        Receives one-line progress messages (the CLI prints them on stderr).
    """

    def __init__(self, scenario: Scenario, options: RunOptions,
                 progress: Progress | None = None) -> None:
        from ..safety.effective import scenario_limits
        from ..safety.supervisor import SafetySupervisor

        self.scenario = scenario
        self.options = options
        self.progress = progress or (lambda msg: None)
        self.url = options.source_url or scenario.source.url
        deadline_ms = options.deadline_ms or scenario.runtime.deadline_ms
        if not deadline_ms > 0:
            raise ConfigError(f"deadline must be positive, got {deadline_ms} ms")
        self.deadline_ms = float(deadline_ms)
        self.programs: ProgramSet = build_program_set(scenario.stimulation,
                                                      scenario.intention_names)
        policy_cls = check_control(scenario.control, self.programs)  # before anything slow
        self.resolved_limits = scenario_limits(
            scenario, self.programs.array, limits_path=options.limits_path,
            limits_table=options.limits_table)
        self.limits = self.resolved_limits.limits
        policy_cls.check_limits(policy_cls.check_config(scenario.control, self.programs),
                                self.limits, scenario.control.label)
        self.pipeline = build_pipeline(scenario)
        self.calibration: dict[str, Any] = {}
        self.decoder_sha256 = ""
        if options.decoder_path:
            self.decoder = load_decoder(options.decoder_path)
            self.decoder_sha256 = sha256_file(options.decoder_path)
            self._check_decoder()
        else:
            self._check_policy_before_training()
            self.decoder, self.calibration = train_decoder(scenario, self.pipeline,
                                                           progress=self.progress,
                                                           as_json=options.as_json)
        decoder_label = (f"decoder {options.decoder_path} ({self.decoder.name})"
                         if options.decoder_path else
                         f"the {self.decoder.name} decoder trained for {scenario.name}")
        self.policy: ControlPolicy = make_policy(scenario.control, self.programs,
                                                 self.decoder.output_schema_,
                                                 decoder=decoder_label)
        self.supervisor = SafetySupervisor(self.limits, self.programs.array, self.programs,
                                           cycle_period_s=scenario.hop_s)
        self.stimulator = options.stimulator or SimulatedStimulator(self.programs.array.n_contacts)
        expect_array = getattr(self.stimulator, "expect_array", None)
        if callable(expect_array):  # a device is armed only if it reports the scenario's array
            expect_array(self.programs.array)
        self.clock: Clock = SimClock() if options.fast else WallClock()
        self.source: BaseSource | None = None
        self.loop: ControlLoop | None = None
        self.velocity_score: Any = None
        #: What the loop polls every cycle (set by :meth:`open`).
        self.safety_inputs: list[SafetyInputProvider] = []
        #: Time to arm the supervisor at (replay sets the recorded one); None = now.
        self.armed_ns: int | None = None

    def save_decoder(self, directory: str | Path) -> Path:
        """Save the decoder into ``directory/decoder.npz`` (recordings carry their decoder,
        so that a replay is a function of the recording and the code only)."""
        d = Path(directory)
        check_new_recording_dir(d)
        try:
            d.mkdir(parents=True, exist_ok=True)
            path = self.decoder.save(d / "decoder.npz")
        except OSError as exc:
            raise ConfigError(f"cannot write to recording directory {d}: {exc.strerror}") from None
        self.decoder_sha256 = sha256_file(path)
        return path

    def _check_policy_before_training(self) -> None:
        """A decoder kind declares its outputs before it is fitted: refuse a control policy
        that needs an output the trained decoder will not have, without calibrating first."""
        sc = self.scenario
        params = decoder_params(sc)
        try:
            planned = make_decoder(sc.decoder.kind, **params)
        except TypeError:
            return  # a bad parameter: train_decoder reports it
        make_policy(sc.control, self.programs, planned.schema_for(sc.intention_names),
                    decoder=f"the {planned.name} decoder trained for {sc.name}")

    def _check_decoder(self) -> None:
        n_states = len(self.scenario.intention_names)
        if self.decoder.n_features != self.pipeline.n_features:
            raise ConfigError(
                f"decoder {self.options.decoder_path} expects {self.decoder.n_features} "
                f"features but scenario {self.scenario.name} makes {self.pipeline.n_features}; "
                "retrain it with `neuroloop train` for this scenario")
        if self.decoder.n_states != n_states:
            raise ConfigError(
                f"decoder {self.options.decoder_path} has {self.decoder.n_states} states but "
                f"scenario {self.scenario.name} has {n_states}; retrain it for this scenario")
        for key, want in (("hop_s", self.scenario.hop_s),
                          ("n_channels", self.scenario.source.n_channels)):
            have = getattr(self.decoder, key, None)  # a decoder that takes it from a scenario
            if key in getattr(self.decoder, "SCENARIO_PARAMS", ()) and have is not None \
                    and abs(float(have) - float(want)) > 1e-9 * max(1.0, abs(float(want))):
                raise ConfigError(
                    f"decoder {self.options.decoder_path} was made for {key} = {have:g} but "
                    f"scenario {self.scenario.name} has {want:g}; retrain it for this scenario")
        schema = self.decoder.output_schema_
        if schema.states_named and schema.state_names != self.scenario.intention_names:
            raise ConfigError(
                f"decoder {self.options.decoder_path} decodes states "
                f"{', '.join(schema.state_names)} but scenario {self.scenario.name} has "
                f"{', '.join(self.scenario.intention_names)}; retrain it for this scenario")

    def meta(self) -> dict[str, Any]:
        """Everything needed to reproduce the run (goes into recordings)."""
        assert self.source is not None
        info = self.source.info
        return {
            "scenario": self.scenario.name,
            "config": self.scenario.raw,
            "source_url": self.url,
            "options": {"fast": self.options.fast, "seed": self.options.seed,
                        "duration_s": self.options.duration_s,
                        "deadline_ms": self.deadline_ms,
                        "decoder_path": self.options.decoder_path,
                        "limits_path": self.options.limits_path,
                        **self.options.extra_meta},
            "limits": self.limits.to_dict(),
            "versions": package_versions(),
            "channels": {"names": list(info.channel_names), "types": list(info.channel_types),
                         "unit": info.unit, "sampling_rate_hz": info.sampling_rate_hz},
            "intention_names": list(self.scenario.intention_names),
            "hop_samples": self.scenario.dsp.hop_samples,
            "n_features": int(self.pipeline.n_features),
            "n_states": len(self.scenario.intention_names),
            "n_contacts": int(self.programs.array.n_contacts),
            "output_names": list(self.decoder.output_schema_.output_names),
            "output_units": list(self.decoder.output_schema_.output_units),
            "decoder_sha256": self.decoder_sha256,
            "decoder_kind": self.decoder.name,
            "calibration": self.calibration,
        }

    def open(self, source: BaseSource | None = None,
             replay_cycles: CycleRows | None = None) -> ControlLoop:
        """Open the source, build the loop and warm every kernel up (nothing armed yet)."""
        if source is None:
            source = open_source(self.url,
                                 **_source_options(self.scenario, self.options.seed, self.url))
        self.source = source.open()
        check_source(self.scenario, self.source, self.url)
        # safety inputs: the options' and, whenever the source or the stimulator is on a
        # device link, that link's monitor (once), however this session was built
        self.safety_inputs = safety_input_providers(list(self.options.safety_inputs),
                                                    self.stimulator, self.source)
        hop_s = self.scenario.hop_s
        if replay_cycles is not None:
            capacity = int(replay_cycles.shape[0]) + 16
        else:
            duration = self.options.duration_s or self.scenario.runtime.duration_s
            capacity = int(duration / hop_s) + 16
        listeners = list(self.options.listeners)
        self.velocity_score = self._velocity_score(capacity)
        if self.velocity_score is not None:
            listeners.append(self.velocity_score)
        self.loop = ControlLoop(
            source=self.source, pipeline=self.pipeline, decoder=self.decoder,
            policy=self.policy, supervisor=self.supervisor, stimulator=self.stimulator,
            clock=self.clock, hop_samples=self.scenario.dsp.hop_samples,
            sampling_rate_hz=self.scenario.stream_rate_hz,
            deadline_ns=int(self.deadline_ms * 1e6), listeners=listeners,
            hooks=self.options.hooks, safety_inputs=self.safety_inputs,
            capacity=min(capacity, 1 << 22),
            replay_cycles=replay_cycles)
        self.progress("warming up compiled kernels")
        self.loop.warmup()
        self.policy.reset()  # warm-up stepped it; start the run from a clean policy state
        return self.loop

    def run(self, max_cycles: int | None = None, *, mode: str | None = None) -> dict[str, Any]:
        """Arm the supervisor, run the loop, close everything and return the summary."""
        assert self.loop is not None and self.source is not None, "call open() first"
        loop = self.loop
        # Everything slow happens before arming: mlockall faults every page in (about 0.5 s,
        # during which the process's other threads stall too), a full collection takes tens
        # of ms, and listeners (the recorder) open files. Done after ARM, that silence would
        # trip the device's watchdog; only the loop itself runs between ARM and cycle 0.
        # Freezing what survives the collection makes the loop's own collect() nearly free.
        rt = None
        if not self.options.fast and self.options.realtime_priority is not None:
            rt = enter_realtime(self.options.realtime_priority)
        summary: dict[str, Any] = {}
        try:
            gc.collect()
            gc.freeze()
            armed_ns = self.armed_ns if self.armed_ns is not None else self.clock.now_ns()
            if isinstance(self.clock, SimClock):
                self.clock.set(armed_ns)
            meta = self.meta()
            meta["armed_ns"] = int(armed_ns)
            for listener in list(loop.listeners):  # a recorder opens its files here
                try:
                    listener.on_start(meta)
                except Exception as exc:  # noqa: BLE001
                    loop._detach(listener, exc)
            if max_cycles is None and loop.replay_cycles is None:
                duration = self.options.duration_s or self.scenario.runtime.duration_s
                max_cycles = max(1, int(round(duration / self.scenario.hop_s)))
            arm_events = self.supervisor.arm(armed_ns)
            device_arm = getattr(self.stimulator, "arm", None)
            if callable(device_arm):  # a real or simulated device arms explicitly, authenticated
                device_arm()
            if arm_events:
                loop._note_events(arm_events)
            try:
                result = loop.run(max_cycles)
            finally:
                if rt is not None:
                    leave_realtime(rt)
            mode = mode or ("fast" if self.options.fast else "realtime")
            summary = summarise(result, deadline_ms=self.deadline_ms, mode=mode,
                                onsets=self._onsets())
            summary["scenario"] = self.scenario.name
            summary["calibration"] = self.calibration
            summary["stimulator"] = self.stimulator.status()
            summary["supervisor_state"] = self.supervisor.state.name
            summary.update(therapy_metrics(self.policy, self.source))
            if self.velocity_score is not None:
                summary["velocity"] = self.velocity_score.result(
                    self.source, skip_s=2.0, hop_s=self.scenario.hop_s)
            detection = detection_summary(result, self.source, self.decoder)
            if detection is not None:  # a seizure detector: sensitivity, false/h, latency
                summary["detection"] = detection
            if rt is not None:
                summary["realtime"] = rt.describe()
            if loop.device_error is not None:
                summary["error"] = str(loop.device_error)
            return summary
        finally:
            gc.unfreeze()  # the loop unfreezes too; this covers a failed ARM
            if rt is not None:
                leave_realtime(rt)  # no-op unless arming failed before the loop ran
            self.source.close()
            for listener in list(loop.listeners):
                try:
                    listener.on_stop(summary)
                except Exception as exc:  # noqa: BLE001
                    loop.listener_errors.append(f"{type(listener).__name__}: {exc}")

    def _velocity_score(self, capacity: int) -> Any:
        """A :class:`~neuroloop.runtime.kinematics.VelocityScore` when the decoder outputs a
        2D velocity and the source knows the true one (the intracortical population)."""
        from .kinematics import VelocityScore, raw_samples_per_row

        names = self.decoder.output_schema_.output_names
        if "velocity_x_m_per_s" not in names or "velocity_y_m_per_s" not in names \
                or not hasattr(self.source, "true_velocity"):
            return None
        per_row = raw_samples_per_row(self.scenario)
        return VelocityScore(min(capacity, 1 << 22), (names.index("velocity_x_m_per_s"),
                                                      names.index("velocity_y_m_per_s")),
                             self.scenario.dsp.hop_samples * per_row, per_row)

    def _onsets(self) -> list[tuple[int, int]] | None:
        """Exact intention changes from the source's schedule (synthetic), else None."""
        schedule = getattr(self.source, "schedule", None)
        if schedule is None or not hasattr(schedule, "transitions"):
            return None
        out: list[tuple[int, int]] = []
        prev = None
        for sample, state in schedule.transitions():
            if state != prev:
                out.append((int(sample), int(state)))
            prev = state
        return out


def therapy_metrics(policy: Any, source: Any) -> dict[str, dict[str, float]]:
    """The run summary's ``"control"`` (:meth:`ControlPolicy.metrics`) and ``"patient"``
    (:meth:`BaseSource.metrics`) tables, each only when it has figures."""
    out: dict[str, dict[str, float]] = {}
    for key, obj in (("control", policy), ("patient", source)):
        get = getattr(obj, "metrics", None)  # a duck-typed wrapper may lack it
        figures = get() if callable(get) else {}
        if figures:
            out[key] = {str(k): float(v) for k, v in figures.items()}
    return out


def summary_json(summary: dict[str, Any]) -> str:
    """One JSON object (NaN written as null)."""
    def clean(o: Any) -> Any:
        if isinstance(o, float) and o != o:
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            return clean(o.item())
        return o
    return json.dumps(clean(summary))
