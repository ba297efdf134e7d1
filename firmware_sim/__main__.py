"""``firmware-sim`` / ``python -m firmware_sim``: the simulated implant on a pty or a socket.

The first line on stdout is ``firmware-sim: listening on <address>`` (flushed at once), where
``<address>`` is what ``neuroloop run --device`` takes: a pty path such as ``/dev/pts/5`` or
``socket://127.0.0.1:7000``. Everything else goes to stderr (and ``--log``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from neuroloop.errors import ConfigError, NeuroloopError

__all__ = ["main", "build_parser"]

_EXIT_OK = 0
_EXIT_USAGE = 2

#: SCHED_FIFO priority of the simulator's thread: above every time-shared process, below the
#: host's control loop and link threads (50). A real implant runs on hardware of its own;
#: sharing the host's cores, a simulator above the host preempted the loop in the middle of
#: its STIM write whenever it woke to read that STIM (binned 15 s run through a 3 Mbaud pty:
#: the write took p50 28 us but p90 0.49 ms, p99 0.88 ms at priority 60).
FIRMWARE_PRIORITY = 45


def _prob(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability in [0, 1] "
                                         "(1 % is 0.01)")
    return p


def _nonneg(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return x


def _at(text: str) -> tuple[int, float]:
    """``C`` or ``C@SECONDS``."""
    idx, _, at = text.partition("@")
    try:
        return int(idx), float(at) if at else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use INDEX or INDEX@SECONDS, e.g. 3@10"
                                         ) from None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump): ``firmware-sim: error: ...``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(_EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="firmware-sim",
        description="Simulated implant: streams a synthetic patient over a framed, "
                    "authenticated serial protocol and applies STIM commands after its own "
                    "checks (see docs/protocol.md).")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="create a pseudo-terminal (default)")
    where.add_argument("--listen", metavar="socket://HOST:PORT",
                       help="listen on TCP instead (port 0 picks a free one)")
    p.add_argument("--key-file", metavar="FILE",
                   help="link keys; created (mode 0600) if missing. Default: environment "
                        "NEUROLOOP_KEY_H2D/NEUROLOOP_KEY_D2H")
    from .streamer import patient_presets

    p.add_argument("--preset", choices=patient_presets(), default="bsi")
    p.add_argument("--mode", choices=("binned", "raw"), default="binned",
                   help="intracortical: send bins computed on the chip (default) or raw samples")
    p.add_argument("--electrodes", type=int, default=1024,
                   help="intracortical: electrode count (default 1024)")
    p.add_argument("--bin-ms", type=float, default=20.0,
                   help="intracortical binned: bin length in ms (default 20)")
    p.add_argument("--threshold-multiplier", type=float, default=-4.5,
                   help="intracortical binned: threshold in RMS units (default -4.5)")
    p.add_argument("--array", metavar="NAME", default=None,
                   help="electrode array the output stage drives, from the catalogue "
                        "(default: the preset's, paddle-5-6-5 for bsi and eeg-bci, dbs-3389 "
                        "for adbs; also rns-strip-depth); reported to the host in INFO, which "
                        "refuses to arm on a mismatch")
    p.add_argument("--seed", type=int, default=1, help="patient data seed (default 1)")
    p.add_argument("--snr", type=_nonneg, default=1.0, help="task modulation depth (default 1)")
    p.add_argument("--samples-per-frame", type=int, default=None,
                   help="samples per DATA frame (default: one control hop, 59 bsi / 25 eeg)")
    p.add_argument("--baud", type=int, default=921600, help="line speed (default 921600)")
    p.add_argument("--watchdog-ms", type=_nonneg, default=300.0, help="T_wd (default 300)")
    p.add_argument("--watchdog-ramp-ms", type=_nonneg, default=200.0,
                   help="ramp-down time after a watchdog trip (default 200)")
    p.add_argument("--battery-pct", type=_nonneg, default=80.0, help="initial charge (80)")
    p.add_argument("--limits", metavar="FILE", help="the device's own limits file (TOML)")
    faults = p.add_argument_group("fault injection")
    faults.add_argument("--drop-frames", type=_prob, default=0.0, metavar="P",
                        help="probability a DATA frame is lost")
    faults.add_argument("--corrupt-bytes", type=_prob, default=0.0, metavar="P",
                        help="probability a byte gets a flipped bit (both directions)")
    faults.add_argument("--latency-ms", type=_nonneg, default=0.0, metavar="X",
                        help="added delay on every device->host frame")
    faults.add_argument("--stuck-channel", type=_at, metavar="C[@S]",
                        help="channel C freezes (from S seconds of stream)")
    faults.add_argument("--noise-bursts", type=_nonneg, default=0.0, metavar="RATE",
                        help="broadband noise bursts per second")
    faults.add_argument("--faults-after", type=_nonneg, default=0.0, metavar="S",
                        help="start dropping/corrupting/delaying after S seconds (default 0)")
    faults.add_argument("--disconnect-after", type=_nonneg, metavar="S",
                        help="pull the cable after S seconds")
    faults.add_argument("--reboot-after", type=_nonneg, metavar="S",
                        help="reboot the device after S seconds")
    faults.add_argument("--open-contact", type=_at, metavar="C[@S]",
                        help="contact C's lead breaks (after S seconds)")
    p.add_argument("--no-realtime", action="store_true",
                   help="stay time-shared (default: ask for SCHED_FIFO, as firmware runs on "
                        "its own core)")
    p.add_argument("--log", metavar="FILE", help="JSON lines: every pulse train and event")
    p.add_argument("--duration", type=_nonneg, metavar="S", help="stop after S seconds")
    return p


def _parse_listen(text: str) -> tuple[str, int]:
    addr = text.split("://", 1)[1] if "://" in text else text
    host, _, port = addr.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        port_n = -1
    if not host or not 0 <= port_n <= 65535:
        raise ConfigError(f"--listen {text!r}: use socket://HOST:PORT, e.g. "
                          "socket://127.0.0.1:7000")
    return host, port_n


def _keys(path: str | None) -> Any:
    from neuroloop.link.keys import generate_key_file, load_key_file, load_keys

    if path is None:
        return load_keys(None)
    if not Path(path).exists():
        keys = generate_key_file(path)
        print(f"firmware-sim: created key file {path} (mode 0600); give it to neuroloop with "
              f"--key-file {path}", file=sys.stderr)
        return keys
    return load_key_file(path)


def _preset_array(preset: str) -> str:
    """The electrode array of the shipped scenario named ``preset`` (paddle-5-6-5 if none)."""
    from neuroloop.config import load_scenario, scenario_names

    if preset in scenario_names():
        return load_scenario(preset).stimulation.array
    return "paddle-5-6-5"


def _preset_limits(preset: str) -> Any:
    """The device's own limits without ``--limits``: the shipped scenario's ``[safety]`` table
    (the built-in defaults when it has none), checked by the same loader."""
    from neuroloop.config import load_scenario, scenario_names
    from neuroloop.safety.limits import load_limits

    if preset in scenario_names():
        return load_limits(load_scenario(preset).safety, source=f"{preset}.toml [safety]")
    return load_limits(None)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from neuroloop.safety.limits import load_limits_file
    from neuroloop.stimulation.electrodes import array_names, electrode_array

    from .device import DeviceConfig
    from .faults import FaultConfig
    from .sim import Simulator
    from .streamer import Streamer
    from .transport import BAUD_CONSTANTS, PtyTransport, SocketTransport

    if args.baud not in BAUD_CONSTANTS:
        raise ConfigError(f"--baud {args.baud} is not a standard rate; use one of "
                          f"{', '.join(map(str, BAUD_CONSTANTS))}")
    array_name = args.array or _preset_array(args.preset)
    try:
        array = electrode_array(array_name)
    except KeyError:
        raise ConfigError(f"--array {array_name!r} is not in the electrode catalogue; known "
                          f"arrays: {', '.join(array_names())}") from None
    limits = load_limits_file(args.limits) if args.limits else _preset_limits(args.preset)
    stuck, stuck_at = args.stuck_channel or (None, 0.0)
    open_c, open_at = args.open_contact or (None, 0.0)
    from neuroloop.link.capacity import check_link, transport_for

    ic = None
    if args.preset == "intracortical":
        ic = {"mode": args.mode, "n_channels": args.electrodes, "bin_ms": args.bin_ms,
              "threshold_multiplier": args.threshold_multiplier}
        if args.electrodes >= 1 and args.bin_ms >= 1000.0 / 30000.0:  # else the source says
            # the link must carry the stream (with headroom), or the device falls behind:
            # checked before the 30 kHz model is built
            binned = args.mode == "binned"
            check_link(2 * args.electrodes if binned else args.electrodes,
                       1000.0 / args.bin_ms if binned else 30000.0,
                       1 if binned else max(1, min(30, 8000 // args.electrodes)),
                       transport_for(args.listen or "pty", args.baud),
                       key="--preset intracortical", what=f"the {args.mode} stream",
                       binned_hint="" if binned else "use --mode binned (bins on the chip)",
                       headroom=0.2)
    try:
        streamer = Streamer(args.preset, args.seed, samples_per_frame=args.samples_per_frame,
                            stuck_channel=stuck, stuck_after_s=stuck_at,
                            noise_bursts_per_s=args.noise_bursts, fault_seed=args.seed,
                            snr=args.snr, intracortical=ic)
        faults = FaultConfig(drop_frames=args.drop_frames, corrupt_bytes=args.corrupt_bytes,
                             latency_ms=args.latency_ms, stuck_channel=stuck,
                             stuck_after_s=stuck_at, noise_bursts_per_s=args.noise_bursts,
                             disconnect_after_s=args.disconnect_after,
                             reboot_after_s=args.reboot_after, open_contact=open_c,
                             open_contact_after_s=open_at, faults_after_s=args.faults_after)
        config = DeviceConfig(stream=streamer.info, array=array, limits=limits,
                              watchdog_ms=args.watchdog_ms,
                              watchdog_ramp_ms=args.watchdog_ramp_ms,
                              battery_pct=min(args.battery_pct, 100.0),
                              device_name=f"firmware_sim preset={args.preset} seed={args.seed}")
        if open_c is not None and not 0 <= open_c < config.array.n_contacts:
            raise ValueError(f"--open-contact {open_c}: contacts are 0..."
                             f"{config.array.n_contacts - 1}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    listen = _parse_listen(args.listen) if args.listen else None
    keys = _keys(args.key_file)  # after every other check: bad input creates no file
    if listen is not None:
        host, port = listen
        try:
            transport: Any = SocketTransport(host, port)
        except OSError as exc:
            raise ConfigError(f"--listen {args.listen}: {exc.strerror}; pick another port"
                              ) from None
    else:
        transport = PtyTransport(args.baud, rng=np.random.default_rng(args.seed))
    log = open(args.log, "w", encoding="utf-8") if args.log else None  # noqa: SIM115
    sim = Simulator(transport=transport, keys=keys, streamer=streamer, config=config,
                    faults=faults, seed=args.seed, log=log, duration_s=args.duration)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sim.request_stop())
    info = streamer.info
    rt_note = ""
    if not args.no_realtime:
        from neuroloop.realtime import enter_realtime

        rt = enter_realtime(FIRMWARE_PRIORITY, lock_memory=True)
        rt_note = f", {rt.scheduler}"
    print(f"firmware-sim: listening on {transport.address}", flush=True)
    print(f"firmware-sim: {args.preset}, {len(info.channel_names)} ch at "
          f"{info.sampling_rate_hz:g} Hz, {info.samples_per_frame} samples/frame, "
          f"array {array.name} ({array.n_contacts} contacts), {args.baud} baud, watchdog {args.watchdog_ms:g} ms, keys {keys.fingerprint()}"
          f"{rt_note}",
          file=sys.stderr, flush=True)
    try:
        summary = sim.run()
    finally:
        if log is not None:
            log.close()
    print(f"firmware-sim: stopped ({summary['stopped_by']}): {summary['frames_sent']} frames "
          f"sent, {summary['device']['stims_applied']} STIMs applied, "
          f"{summary['device']['naks_sent']} NAKs, {summary['pulse_trains']} pulse trains",
          file=sys.stderr, flush=True)
    return _EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``firmware-sim``; returns the exit code (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except NeuroloopError as exc:
        print(f"firmware-sim: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except KeyboardInterrupt:
        return _EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
