"""The ``neuroloop`` command: a thin layer over the library.

Exit codes: 0 success; 1 ``replay --check`` found a divergence; 2 a user error (bad option,
bad config, missing file, device problem) reported as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from .. import _checks as B
from ..errors import ConfigError, NeuroloopError

__all__ = ["main"]

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _eprint(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


#: An argparse ``type`` for a number in a :class:`~neuroloop._checks.Range` (one checker).
_bounded = B.argparse_number


def _inject_spec(text: str) -> str:
    """``KIND@SECONDS[:DURATION]`` with both numbers finite and bounded (the kind and the rest
    of the syntax are checked by :func:`neuroloop.runtime.inject.parse_injections`)."""
    try:
        return B.check_inject_spec(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _build_parser() -> _Parser:
    p = _Parser(prog="neuroloop", description=(
        "Simulated closed-loop neuromodulation controller: ECoG/EEG -> Numba DSP -> decoder "
        "-> safe epidural stimulation, in a deadline-checked real-time loop."))
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a scenario in closed loop",
                         description="Calibrate (or load) a decoder, then run the closed "
                         "loop in real time (or --fast on a simulated clock).")
    _scenario_args(run)
    run.add_argument("--duration", type=_bounded(B.DURATION_S, "at most 7 days; with --fast "
                                                  "at most 24 h and 1000000 cycles"),
                     metavar="S", help="seconds of closed loop (default: the scenario's "
                     "runtime.duration_s; at most 7 days, with --fast at most 24 h simulated "
                     "and 1000000 cycles)")
    run.add_argument("--fast", action="store_true",
                     help="simulated clock: run as fast as possible")
    run.add_argument("--seed", type=_bounded(B.SEED, "e.g. 1"), metavar="N",
                     help="seed of the synthetic patient (closed-loop segment), 0..2**32-1")
    run.add_argument("--decoder", metavar="FILE", help="use a trained decoder file instead of "
                     "calibrating")
    run.add_argument("--limits", metavar="FILE", help="safety limits file (TOML) replacing the "
                     "scenario's [safety] table; it can only tighten the built-in ceilings")
    run.add_argument("--deadline-ms", type=_bounded(B.DEADLINE_MS, "e.g. 10"), metavar="MS",
                     help="end-to-end deadline per cycle, 0.05..10000 (default: "
                     "runtime.deadline_ms, 10)")
    run.add_argument("--source", metavar="URL", help="override the scenario's source URL")
    run.add_argument("--device", metavar="URL", help="close the loop through a device: a serial "
                     "port, a pty path or socket://host:port (firmware-sim or hardware)")
    run.add_argument("--key-file", metavar="FILE", help="link keys for --device (else "
                     "NEUROLOOP_KEY_H2D / NEUROLOOP_KEY_D2H)")
    run.add_argument("--baud", type=_bounded(B.BAUD, "e.g. 921600"), default=921600,
                     help="baud rate for --device, 300..16000000 (default 921600)")
    run.add_argument("--record", metavar="DIR", help="record the session into DIR")
    run.add_argument("--inject", action="append", default=[], type=_inject_spec,
                     metavar="KIND@SECONDS[:DURATION]",
                     help="inject a fault at SECONDS into the loop, for DURATION seconds (each "
                     "kind has a default): decoder-nan, decoder-random, decoder-max, "
                     "source-stall, deadline-overrun, impedance-open, estop (repeatable)")
    run.add_argument("--no-rt", action="store_true",
                     help="do not ask for SCHED_FIFO priority and locked memory in live runs")
    run.add_argument("--json", action="store_true",
                     help="print exactly one JSON summary object on stdout")
    run.add_argument("--lsl-out", nargs="?", const="neuroloop", default=None, metavar="PREFIX",
                     help="publish the decoded state and probabilities, the stimulation sent "
                     "and interlock events as LSL streams PREFIX-decoder, PREFIX-stimulation, "
                     "PREFIX-markers (default prefix neuroloop; docs/lab.md)")
    run.add_argument("--compare-continuous", action="store_true",
                     help="also run the same patient (same seed, same cycles, simulated "
                     "clock) under continuous stimulation at the program's maximum amplitude "
                     "and report both runs' therapy figures and their ratios")
    run.add_argument("--compare-unstimulated", action="store_true",
                     help="also run the same patient without stimulation (an unstimulated "
                     "control) and report both runs' figures and their ratios")
    run.add_argument("--monitor", metavar="[HOST:]PORT", help="serve a live view of the loop "
                     "with an E-STOP in the browser (default host 127.0.0.1; port 0: any free "
                     "port; the URL is printed on stderr)")
    run.add_argument("--monitor-public", action="store_true", help="allow --monitor on a host "
                     "other than loopback (anyone who reaches the page can press E-STOP)")

    train = sub.add_parser("train", help="calibrate a decoder and save it")
    _scenario_args(train)
    train.add_argument("--source", metavar="URL", help="labelled calibration source "
                       "(default: the scenario's synthetic patient, calibration seed)")
    train.add_argument("--duration", type=_bounded(B.CALIBRATION_S, "e.g. 120"), metavar="S",
                       help="seconds of calibration data, at most 3600 (default "
                       "decoder.calibration_s)")
    train.add_argument("--seed", type=_bounded(B.SEED, "e.g. 1000"), metavar="N",
                       help="seed of the calibration segment, 0..2**32-1")
    train.add_argument("--out", required=True, metavar="FILE", help="decoder file to write")
    train.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="latency benchmarks against SciPy/NumPy references")
    bench.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                       help="workloads to run (default: all)")
    bench.add_argument("--hops", type=_bounded(B.BENCH_HOPS, "e.g. 5000"), default=5000,
                       help="measured hops per workload, 100..200000 (default 5000)")
    bench.add_argument("--no-rt", action="store_true",
                       help="measure under the normal scheduler (default: SCHED_FIFO if allowed, "
                       "for both paths alike)")
    bench.add_argument("--json", action="store_true")

    exp = sub.add_parser("export", help="export a recording")
    exp.add_argument("directory", metavar="DIR")
    exp.add_argument("--edf", metavar="FILE", help="EDF+ (or BDF+, .bdf) file to write")
    exp.add_argument("--fif", metavar="FILE", help="MNE-Python FIF file to write (raw.fif)")
    exp.add_argument("--json", action="store_true", help="one JSON object on stdout")

    sub.add_parser("scenarios", help="list the shipped scenarios")
    for module in _command_modules():
        module.register(sub)

    lim = sub.add_parser("limits", help="show a scenario's effective safety limits",
                         description="Print every safety limit of a scenario with its value and "
                         "source (built-in, scenario, --limits, catalogue), and what each "
                         "program asks at its clinician maximum against Shannon, charge "
                         "density and the charge cap, so you can see why a program is refused.")
    _scenario_args(lim)
    lim.add_argument("--limits", metavar="FILE", help="a limits file that may only tighten")
    lim.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return p


def _scenario_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scenario", default=None, metavar="NAME",
                   help="shipped scenario: bsi or eeg-bci (default bsi)")
    g.add_argument("--config", metavar="FILE", help="your own scenario TOML file")


def _version() -> str:
    from .. import __version__

    return f"neuroloop {__version__}"


def _load_scenario(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from ..config import load_scenario

    # --config is always a file (a Path), --scenario a preset name (or a file by its look).
    return load_scenario(Path(args.config) if args.config else args.scenario or "bsi")


# -- run -------------------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    from ..runtime.session import RunOptions, Session, summary_json

    scenario = _load_scenario(args)
    if args.fast:  # a simulated run must finish: bounded simulated time and cycle count
        B.check_fast_duration("--duration" if args.duration else
                              f"{scenario.path}: runtime.duration_s",
                              args.duration or scenario.runtime.duration_s, scenario.hop_s)
    quiet = args.json
    progress = (lambda m: None) if quiet else (lambda m: _eprint(f"neuroloop: {m}"))
    listeners: list[Any] = []
    stimulator = None
    link = None
    extra_meta: dict[str, Any] = {}
    if args.record:  # lets the reader tell an edited meta.json config from the one that ran
        from ..io.format import config_sha256

        extra_meta["config_sha256"] = config_sha256(scenario.raw)
    if args.inject:
        from ..runtime.inject import parse_injections

        injections = parse_injections(args.inject)
        extra_meta["inject"] = list(args.inject)
    else:
        injections = []
    if args.record:
        from ..io.recorder import SessionRecorder
        from ..runtime.session import check_new_recording_dir

        check_new_recording_dir(args.record)
        _check_writable_dir(args.record)  # before calibrating, not after
        recorder: Any = SessionRecorder(args.record)
        subset = scenario.dsp.params.get("record_raw_channels")
        if subset is not None and scenario.dsp.params.get("acquisition") == "raw":
            from ..io.raw_subset import RawChannelSubset, check_raw_subset

            recorder = RawChannelSubset(recorder, check_raw_subset(
                subset, scenario.source.n_channels), max_block=scenario.dsp.hop_samples)
        listeners.append(recorder)
    lsl_out = None
    if args.lsl_out is not None:
        from ..io.lsl_outlets import LslOutlets

        lsl_out = LslOutlets(B.check_stream_prefix("--lsl-out", args.lsl_out))
        listeners.append(lsl_out)
    monitor = None
    if args.monitor is not None or args.monitor_public:  # bound now: a bad port fails early
        from ..monitor.live import LiveMonitor, check_monitor_options

        check_monitor_options(args.monitor, args.monitor_public)
        monitor = LiveMonitor.open(args.monitor, public=args.monitor_public, say=_eprint)
        listeners.append(monitor.publisher)
    source_url = args.source
    if args.device:
        from ..link.capacity import check_link, transport_for
        from ..link.device import open_device_link

        # the device's stream must fit the link (the message names a transport that would)
        n_ch, rate = scenario.stream_channels, scenario.stream_rate_hz
        check_link(n_ch, rate, max(1, min(scenario.dsp.hop_samples, 8000 // n_ch)),
                   transport_for(args.device, args.baud), key=f"--device {args.device}",
                   what=f"scenario {scenario.name}'s stream",
                   binned_hint=('set [dsp] acquisition = "binned" (features computed on the '
                                "implant)" if scenario.dsp.params.get("acquisition") == "raw"
                                else ""),
                   headroom=0.2 if scenario.dsp.kind == "spike-band" else 0.0)
        link = open_device_link(args.device, key_file=args.key_file, baudrate=args.baud)
        source_url = args.device
        stimulator = link.stimulator
        extra_meta["device"] = args.device
        if args.record:  # the link's counters over time, next to the recording (report)
            from ..monitor.link_log import LinkLogger

            listeners.append(LinkLogger(link, args.record))
    options = RunOptions(duration_s=args.duration, fast=args.fast, seed=args.seed,
                         source_url=source_url, decoder_path=args.decoder,
                         limits_path=args.limits,
                         deadline_ms=args.deadline_ms, listeners=listeners,
                         stimulator=stimulator, extra_meta=extra_meta,
                         realtime_priority=None if args.no_rt else 50)
    options.as_json = bool(args.json)
    if monitor is not None:  # the page's E-STOP and the terminal's stop/rearm, every cycle
        options.safety_inputs = [monitor.operator]
    try:
        session = Session(scenario, options, progress=progress)
        if lsl_out is not None:
            lsl_out.contact_names = list(session.programs.array.contact_names)
        if args.record:
            session.save_decoder(args.record)
        if injections:  # the device link's safety inputs are the session's own
            from ..runtime.inject import build_hooks

            options.hooks = build_hooks(injections, session)
        source = link.source if link is not None else None
        loop = session.open(source=source)
        if not quiet and sys.stderr.isatty():
            loop.status_cb = _StatusLine(session).update
            loop.status_interval_ns = int(scenario.runtime.status_interval_s * 1e9)
        progress(f"armed; running {scenario.name} "
                 f"{'on a simulated clock' if args.fast else 'in real time'} "
                 f"for {options.duration_s or scenario.runtime.duration_s:g} s")
        _install_sigint(loop)
        if monitor is not None:
            monitor.start_console()
        summary = session.run()
    finally:
        if link is not None:
            link.close()
        if monitor is not None:
            monitor.close()
    if monitor is not None:
        summary.update(monitor.summary())
    if link is not None:
        summary["link"] = link.stats()
    from ..runtime.counterfactual import BY_OPTION, add_counterfactuals

    wanted = [cf for dest, cf in BY_OPTION.items() if getattr(args, dest, False)]
    if wanted and not summary.get("error"):
        add_counterfactuals(summary, scenario, options, wanted, progress=progress)
    if args.record:
        summary["recording"] = args.record
    if args.json:
        sys.stdout.write(summary_json(summary) + "\n")
    else:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        sys.stdout.write(_format_summary(summary) + "\n")
    if summary.get("error"):  # the run ended on a device error: summary first, then the error
        sys.stdout.flush()
        _eprint(f"neuroloop: error: {summary['error']}")
        return EXIT_USAGE
    return EXIT_OK


def _check_writable_dir(directory: str) -> None:
    """The directory ``directory`` can be created (its nearest existing ancestor is a writable
    directory), or a one-line ConfigError now rather than after calibrating."""
    from pathlib import Path

    p = Path(directory).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise ConfigError(f"cannot record into {directory}: {p} is not a directory; choose a "
                          "new directory path")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot record into {directory}: {p} is not writable; choose a "
                          "writable path")


def _install_sigint(loop: Any) -> None:
    def handler(signum: int, frame: Any) -> None:
        loop.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


class _StatusLine:
    """The live one-line status on a terminal."""

    def __init__(self, session: Any) -> None:
        self.names = session.scenario.intention_names
        self.hop_s = session.scenario.hop_s

    def update(self, loop: Any) -> None:
        rec = loop.record[0]
        true = int(rec["true_state"])
        amp = float(np.abs(rec["amplitude_ma"]).sum()) / 2.0 + abs(float(rec["case_ma"])) / 2.0
        p99 = np.percentile(loop.e2e_log.recent(600), 99) / 1000.0 if loop.e2e_log.count else 0.0
        prog = int(rec["program_id"])
        line = (f"\rcycle {loop.cycle:6d} t={loop.cycle * self.hop_s:7.1f}s  "
                f"decoded {self._name(int(rec['state'])):<24} true {self._name(true):<24} "
                f"program {self._name(prog) if prog > 0 else '-':<24} {amp:5.2f} mA  "
                f"e2e p99 {p99:7.0f} us  misses {loop.deadline_misses}  "
                f"{loop.supervisor.state.name:<11} events {sum(loop.event_counts.values())}")
        sys.stderr.write(line)
        sys.stderr.flush()

    def _name(self, i: int) -> str:
        return self.names[i] if 0 <= i < len(self.names) else "?"


def _fmt_pct(d: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.0f}" for k, v in d.items() if v is not None)


def _format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"scenario            {s.get('scenario')}  ({s.get('mode')}, {s.get('simulated_s')} s "
        f"simulated in {s.get('wall_s')} s wall, x{s.get('realtime_factor')})",
        f"cycles              {s['cycles']}   deadline misses {s['deadline_misses']} "
        f"(deadline {s['deadline_ms']} ms)",
        f"compute us          {_fmt_pct(s['compute_us'])}",
        f"end-to-end us       {_fmt_pct(s['e2e_us'])}",
        "stage us p50/p99    " + "  ".join(
            f"{k} {v['p50']:.0f}/{v['p99']:.0f}" for k, v in s.get("stages_us", {}).items()),
        f"accuracy            {s['accuracy']}  over {s['accuracy_hops']} hops",
        f"intent->stim ms     median {s['intent_to_stim_ms']}  "
        f"(p90 {s['intent_to_stim']['p90_ms']}, {s['intent_to_stim']['matched']}/"
        f"{s['intent_to_stim']['onsets']} onsets)",
        f"interlock events    {s['interlock_events'] or 'none'}",
        f"supervisor          {s.get('supervisor_state')}  time in state (s) "
        f"{s.get('time_in_state_s')}",
    ]
    if s.get("calibration"):
        lines.append(f"calibration         {s['calibration']}")
    for key in ("control", "patient"):  # therapy figures of the policy and the patient model
        if s.get(key):
            lines.append(f"{key:<20}" + "  ".join(f"{k} {v:.4g}" for k, v in s[key].items()))
    for cf in s.get("counterfactuals", []):
        from ..runtime.counterfactual import format_comparison

        lines.extend(format_comparison(cf))
    vel = s.get("velocity")
    if vel:  # a continuous decoder scored against the true velocity (intracortical)
        lines.append(f"decoded velocity    corr x {vel.get('corr_x')}  y {vel.get('corr_y')}  "
                     f"rmse x {vel.get('rmse_x_m_per_s')}  y {vel.get('rmse_y_m_per_s')} m/s "
                     f"over {vel.get('cycles_scored')} cycles")
    if s.get("stall_cycles") or s.get("samples_lost"):
        lines.append(f"source              stalls {s['stall_cycles']}  samples lost "
                     f"{s['samples_lost']}")
    if s.get("realtime"):
        rt = s["realtime"]
        lines.append(f"scheduling          {rt['scheduler']}, memory locked {rt['memory_locked']}"
                     + (f" ({'; '.join(rt['notes'])})" if rt.get("notes") else ""))
    if s.get("link"):
        lines.extend(_format_link(s["link"]))
    if s.get("jit_compiles_in_loop"):
        lines.append(f"WARNING             {s['jit_compiles_in_loop']} JIT compiles in the loop")
    if s.get("listener_errors"):
        lines.append(f"listener errors     {s['listener_errors']}")
    if s.get("recording"):
        lines.append(f"recording           {s['recording']}")
    if s.get("lsl_out"):
        o = s["lsl_out"]
        lines.append(f"lsl out             {', '.join(o['streams'])}: {o['cycles_published']} "
                     f"cycles, {o['markers_published']} markers, push max "
                     f"{o['max_push_us']:.0f} us")
    return "\n".join(lines)


def _format_link(k: dict[str, Any]) -> list[str]:
    def pct(d: Any) -> str:
        return _fmt_pct(d) if isinstance(d, dict) else "-"

    util = k.get("utilisation") or {}
    naks = k.get("naks") or {}
    return [
        f"link                {k.get('device')}: frames {k.get('frames_received')} "
        f"(lost {k.get('frames_lost')}, samples lost {k.get('samples_lost')}), "
        f"crc errors {k.get('crc_errors')}, malformed {k.get('malformed_frames')}, "
        f"auth failures {k.get('auth_failures')}, reconnects {k.get('reconnects')}",
        f"link commands       stims {k.get('stims_sent')}, acks {k.get('acks')}, "
        f"naks {naks.get('total')} {naks.get('by_reason') or ''}, "
        f"acks missing {k.get('acks_missing')}",
        f"link rtt us         {pct(k.get('link_rtt_us'))}",
        f"device latency us   {pct(k.get('device_latency_us'))}  (hop's last sample -> "
        "STIM applied, device clock)",
        f"link utilisation    {util.get('d2h_pct')} % device->host, {util.get('h2d_pct')} % "
        f"host->device at {util.get('baud')} baud; device {k.get('device_state')}, "
        f"battery {k.get('battery_pct')} %" + (f"; error: {k['error']}" if k.get("error") else ""),
    ]


# -- train -----------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    from ..runtime.session import build_pipeline, train_decoder

    scenario = _load_scenario(args)
    if args.duration:
        B.check_calibration_size("--duration", args.duration, scenario.source.sampling_rate_hz,
                                 scenario.source.n_channels)
    progress = (lambda m: None) if args.json else (lambda m: _eprint(f"neuroloop: {m}"))
    pipeline = build_pipeline(scenario)
    decoder, cal = train_decoder(scenario, pipeline, url=args.source, duration_s=args.duration,
                                 seed=args.seed, progress=progress, as_json=args.json)
    try:
        path = decoder.save(args.out)
    except OSError as exc:
        raise ConfigError(f"cannot write decoder file {args.out}: {exc.strerror}") from None
    out = {"decoder": str(path), "kind": decoder.name, "scenario": scenario.name, **cal}
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        fit = (f"training accuracy {cal['train_accuracy']}" if "train_accuracy" in cal else
               ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cal.items() if k != "hops"))
        sys.stdout.write(f"wrote {path} ({decoder.name}, {cal['hops']} calibration hops, "
                         f"{fit})\n")
    return EXIT_OK


# -- bench -----------------------------------------------------------------------------------
def _cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import format_bench, run_bench, workload_names

    known = workload_names()
    for w in args.workloads:
        if w not in known:
            raise ConfigError(f"unknown workload {w!r}; use one of: {', '.join(known)}")
    progress = (lambda m: None) if args.json else (lambda m: _eprint(f"neuroloop: {m}"))
    from ..realtime import enter_realtime, leave_realtime

    rt = None if args.no_rt else enter_realtime()
    try:
        result = run_bench(args.workloads or None, n_hops=args.hops, progress=progress)
    finally:
        if rt is not None:
            leave_realtime(rt)
    result["realtime"] = rt.describe() if rt is not None else None
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(format_bench(result) + "\n")
    return EXIT_OK


# -- export (replay lives in replay.py) ------------------------------------------------------
def _cmd_export(args: argparse.Namespace) -> int:
    from ..io.edf import export_edf

    if not args.edf and not args.fif:
        raise ConfigError("export needs --edf FILE and/or --fif FILE; e.g. "
                          f"neuroloop export {args.directory} --fif out_raw.fif")
    out: dict[str, Any] = {}
    if args.edf:
        out["edf"] = export_edf(args.directory, args.edf, as_json=args.json)
    if args.fif:
        from ..io.mne_export import export_fif

        out["fif"] = export_fif(args.directory, args.fif, as_json=args.json)
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        for key in ("edf", "fif"):
            if key in out:
                sys.stdout.write(f"wrote {out[key]['path']}\n")
    return EXIT_OK


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from ..config import load_scenario, scenario_names

    for name in scenario_names():
        sys.stdout.write(f"{name:10s} {load_scenario(name).description}\n")
    return EXIT_OK


def _cmd_limits(args: argparse.Namespace) -> int:
    from ..safety.effective import format_tables, limit_rows, program_rows, scenario_limits
    from ..safety.supervisor import check_programs
    from ..stimulation.programs import build_program_set

    scenario = _load_scenario(args)
    programs = build_program_set(scenario.stimulation, scenario.intention_names)
    resolved = scenario_limits(scenario, programs.array, limits_path=args.limits)
    problems = check_programs(resolved.limits, programs)
    if args.json:
        json.dump({"scenario": scenario.name, "array": programs.array.name,
                   "limits": limit_rows(resolved), "programs": program_rows(resolved, programs),
                   "refused": problems}, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"scenario {scenario.name} ({scenario.path}), array "
                         f"{programs.array.name}\n\n{format_tables(resolved, programs)}\n")
        if problems:
            sys.stdout.write("\n`neuroloop run` refuses this scenario:\n"
                             + "".join(f"  {p}\n" for p in problems))
    return EXIT_OK


#: Commands that live in their own module, ``neuroloop/cli/<module>.py``. Each module defines
#: ``register(sub)``, which adds its sub-parser(s) (``parser_class`` is the one-line-error
#: parser), and ``COMMANDS``, a dict of command name -> ``fn(args) -> exit code``. Heavy imports
#: stay inside the command functions, so ``neuroloop --help`` stays fast.
_COMMAND_MODULES: tuple[str, ...] = ("replay", "evaluate", "compare", "sweep", "report")


def _command_modules() -> list[Any]:
    import importlib

    return [importlib.import_module(f"{__name__}.{m}") for m in _COMMAND_MODULES]


_COMMANDS = {"limits": _cmd_limits, "run": _cmd_run, "train": _cmd_train, "bench": _cmd_bench,
             "export": _cmd_export, "scenarios": _cmd_scenarios}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuroloop`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    commands = dict(_COMMANDS)
    for module in _command_modules():
        commands.update(module.COMMANDS)
    try:
        return commands[args.command](args)
    except NeuroloopError as exc:
        # one line, whatever a path or value in the message holds
        _eprint(f"neuroloop: error: {' '.join(str(exc).splitlines())}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _eprint("neuroloop: interrupted")
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # an unforeseen bug: still one line, never a traceback
        if os.environ.get("NEUROLOOP_DEBUG"):
            raise
        first = " ".join(str(exc).splitlines())[:300]
        _eprint(f"neuroloop: internal error: {type(exc).__name__}: {first}; this is a bug in "
                "neuroloop, not in your input: rerun with NEUROLOOP_DEBUG=1 for the traceback "
                "and report it")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
