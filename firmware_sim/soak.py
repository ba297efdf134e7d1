"""Soak test: ``neuroloop run --device`` against firmware-sim over a pty, for minutes.

Usage::

    python -m firmware_sim.soak --duration 600            # the issue-4 target run (10 min)
    python -m firmware_sim.soak --duration 60 -- --corrupt-bytes 0.01 --samples-per-frame 1

    python -m firmware_sim.soak --duration 60 --config binned.toml --baud 3000000 \
        --e2e-p99-us 1000                    # intracortical binned (README), e2e target

Everything after ``--`` goes to firmware-sim. ``--config FILE`` runs your own scenario file
(firmware-sim streams its preset, e.g. ``base = "intracortical"``); ``--baud`` sets the line
speed on both ends; ``--e2e-p99-us`` adds the loop's end-to-end p99 (the frame's last byte
read by the host -> STIM written) as a target. The report compares the run with the link
targets: no frame lost, no CRC error, every STIM acknowledged (host STIMs sent = STIMs the
device applied, no NAK, no ACK missing) and the device-measured end-to-end latency (hop's
last sample acquired -> STIM applied, device clock) p99 <= 5 ms. With faults injected the
targets do not apply; the report still shows every counter. Exit code 0 when the targets hold
(or ``--no-targets``), 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from neuroloop import _checks as B
from neuroloop.errors import NeuroloopError

__all__ = ["main", "soak"]

LATENCY_P99_TARGET_US = 5000.0


def _start_sim(key_file: Path, log: Path, duration_s: float, extra: list[str]
               ) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "firmware_sim", "--pty", "--key-file", str(key_file),
           "--log", str(log), "--duration", str(duration_s), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None  # both are pipes
    ready, _, _ = select.select([stdout], [], [], 60.0)
    line = stdout.readline() if ready else ""
    if not line.startswith("firmware-sim: listening on "):
        proc.kill()
        raise RuntimeError(f"firmware-sim did not start: {line!r} {stderr.read()}")
    return proc, line.split()[-1]


def soak(duration_s: float, *, scenario: str = "bsi", sim_args: list[str] | None = None,
         key_file: Path | None = None, workdir: Path | None = None,
         config: Path | None = None, baud: int | None = None,
         e2e_p99_us: float | None = None) -> dict[str, Any]:
    """Run the soak; returns {"run": neuroloop's JSON summary, "device": firmware-sim's
    summary, "checks": {...}, "passed": bool}.

    ``config``: a scenario file instead of the preset ``scenario`` (its preset, e.g.
    ``base = "intracortical"``, is what firmware-sim streams); ``baud``: line speed of both
    ends; ``e2e_p99_us``: also check the loop's end-to-end p99 against it (us)."""
    if config is not None:
        from neuroloop.config import load_scenario

        scenario = load_scenario(Path(config)).name
    run_scenario = ["--config", str(config)] if config is not None else ["--scenario", scenario]
    baud_args = [] if baud is None else ["--baud", str(int(baud))]
    tmp = Path(workdir or tempfile.mkdtemp(prefix="neuroloop-soak-"))
    kf = key_file or tmp / "keys.toml"
    log = tmp / "firmware.jsonl"
    extra = list(sim_args or [])
    from .streamer import patient_presets

    if "--preset" not in extra and scenario in patient_presets():
        extra = ["--preset", scenario, *extra]  # the device streams the scenario's patient
    if baud is not None and "--baud" not in extra:
        extra = [*extra, *baud_args]
    sim, address = _start_sim(kf, log, duration_s + 120.0, extra)
    try:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "neuroloop.cli", "run", *run_scenario,
                            "--device", address, "--key-file", str(kf), *baud_args,
                            "--duration", str(duration_s), "--json"],
                           capture_output=True, text=True)
        wall = time.monotonic() - t0
    finally:
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(30)
        except subprocess.TimeoutExpired:
            sim.kill()
    if r.returncode != 0:
        raise RuntimeError(f"neuroloop run failed ({r.returncode}): {r.stderr.strip()}")
    run = json.loads(r.stdout)
    entries = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    device = entries[-1]
    trains = [e for e in entries if e["kind"] == "train"]
    out_of_limits = _out_of_limits(trains, str(config) if config is not None else scenario)
    link = run["link"]
    lat = device["stim_latency_us"]
    checks = {
        f"all {len(trains)} delivered pulse trains within limits (validate)": not out_of_limits,
        "frames_lost == 0": link["frames_lost"] == 0,
        "crc_errors == 0": link["crc_errors"] == 0,
        "malformed_frames == 0": link["malformed_frames"] == 0,
        "every STIM acknowledged": (link["stims_sent"] == device["device"]["stims_applied"]
                                    and link["naks"]["total"] == 0
                                    and link["acks_missing"] == 0),
        "no watchdog trip or device fault": not [e for e in entries
                                                 if e["kind"] in ("watchdog", "fault")],
        "supervisor never in FAULT": run["time_in_state_s"].get("FAULT", 0.0) == 0.0,
        f"device latency p99 <= {LATENCY_P99_TARGET_US:g} us":
            lat.get("p99", float("inf")) <= LATENCY_P99_TARGET_US,
    }
    if e2e_p99_us is not None:
        checks[f"loop e2e p99 <= {e2e_p99_us:g} us"] = run["e2e_us"]["p99"] <= e2e_p99_us
        checks["no deadline miss, no stall, no sample lost"] = (
            run["deadline_misses"] == 0 and run["stall_cycles"] == 0
            and run["samples_lost"] == 0)
    return {"run": run, "device": device, "checks": checks, "passed": all(checks.values()),
            "out_of_limits": out_of_limits,
            "wall_s": round(wall, 1), "workdir": str(tmp)}


def _out_of_limits(trains: list[dict[str, Any]], scenario: str = "bsi") -> list[str]:
    """Every delivered train checked with the independent oracle, against the scenario's
    limits (its ``[safety]`` table over the SAFETY.md defaults) on the scenario's array."""
    import numpy as np

    from neuroloop.config import load_scenario
    from neuroloop.safety.limits import load_limits
    from neuroloop.safety.validate import validate
    from neuroloop.stimulation.command import StimCommand
    from neuroloop.stimulation.electrodes import electrode_array

    sc = load_scenario(scenario)
    limits, array = load_limits(sc.safety), electrode_array(sc.stimulation.array)
    bad = []
    for tr in trains:
        cmd = StimCommand(amplitude_ma=np.asarray(tr["amplitude_ma"], dtype=np.float64),
                          pulse_width_us=tr["pulse_width_us"], frequency_hz=tr["frequency_hz"],
                          interphase_gap_us=tr["interphase_gap_us"], case_ma=tr["case_ma"])
        bad += [f"train at {tr['start_us']} us: {v}" for v in validate(cmd, limits, array)]
    return bad


def _report(res: dict[str, Any]) -> str:
    run, dev, link = res["run"], res["device"], res["run"]["link"]
    lat = dev["stim_latency_us"]
    lines = [
        f"soak: {run['cycles']} cycles, {run.get('simulated_s', 0):g} s of {run.get('scenario')}"
        f" through {link['device']} ({res['wall_s']} s wall)",
        f"  frames: {link['frames_received']} received, {link['frames_lost']} lost, "
        f"{link['crc_errors']} CRC errors, {link['malformed_frames']} malformed "
        f"(device sent {dev['frames_sent']} of {dev['frames_produced']})",
        f"  STIM: {link['stims_sent']} sent, {dev['device']['stims_applied']} applied, "
        f"{link['naks']['total']} NAKs {link['naks']['by_reason']}, "
        f"{link['acks_missing']} ACKs missing",
        f"  device latency (sample acquired -> applied) us: p50 {lat.get('p50')} "
        f"p99 {lat.get('p99')} p99.9 {lat.get('p999')} max {lat.get('max')} (n={lat.get('n')})",
        f"  link RTT us: {link['link_rtt_us']}; loop e2e us: {run['e2e_us']}; "
        f"deadline misses {run['deadline_misses']}, stalls {run['stall_cycles']}, "
        f"samples lost {run['samples_lost']}; decodes rehearsed {link.get('rehearsals')}",
        f"  frame's last byte read -> samples queued us: {link.get('frame_to_queue_us')}",
        f"  DATA frame lateness on the device us: {dev['frame_lateness_us']}",
        f"  accuracy {run.get('accuracy')}, intent_to_stim_ms {run.get('intent_to_stim_ms')}, "
        f"interlocks {run.get('interlock_events')}",
        f"  link utilisation at {link['utilisation']['baud']} baud: "
        f"{link['utilisation']['d2h_pct']} % device->host, "
        f"{link['utilisation']['h2d_pct']} % host->device",
    ]
    for name, ok in res["checks"].items():
        lines.append(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    return "\n".join(lines)


#: A loop end-to-end p99 to check against, us (1 us to 1 s).
_E2E_P99_US = B.Range(0.0, 1e6, lo_open=True, unit="us")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sim_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, sim_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m firmware_sim.soak",
                                description="Long closed-loop run through firmware-sim.")
    p.add_argument("--duration", type=B.argparse_number(B.DURATION_S, "e.g. 600"), default=600.0,
                   help="seconds (default 600)")
    p.add_argument("--scenario", default="bsi")
    p.add_argument("--config", type=Path, help="your own scenario file (instead of --scenario)")
    p.add_argument("--baud", type=B.argparse_number(B.BAUD, "e.g. 3000000"),
                   help="line speed of both ends (default 921600)")
    p.add_argument("--e2e-p99-us", type=B.argparse_number(_E2E_P99_US, "e.g. 1000"),
                   help="also check the loop's end-to-end p99 against this many us")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--no-targets", action="store_true",
                   help="exit 0 whatever the figures (for fault-injection runs)")
    args = p.parse_args(argv)
    try:
        res = soak(args.duration, scenario=args.scenario, sim_args=sim_args, config=args.config,
                   baud=args.baud, e2e_p99_us=args.e2e_p99_us)
    except (RuntimeError, NeuroloopError) as exc:  # a run that failed, a bad --config
        print(f"soak: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=1, default=str) if args.json else _report(res))
    return 0 if res["passed"] or args.no_targets else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
