"""neuroloop and firmware-sim in two real processes over a pseudo-terminal (and a socket)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from neuroloop.acquisition.synthetic import SyntheticSource
from neuroloop.errors import AuthenticationError, DeviceError
from neuroloop.link.device import DeviceLink, LinkSettings, open_device_link
from neuroloop.link.keys import LinkKeys, generate_key_file, load_key_file
from neuroloop.safety.limits import SafetyLimits
from neuroloop.safety.validate import validate
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import electrode_array, paddle_5_6_5


def collect(link: DeviceLink, seconds: float) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Read blocks for ``seconds``; copies of (first_index, data, labels)."""
    out = []
    end = time.monotonic() + seconds
    src = link.source.open()
    while time.monotonic() < end:
        b = src.read(59, timeout=0.5)
        if b is not None:
            out.append((b.first_index, b.data.copy(), b.labels.copy()))
    return out


def ground_truth(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """What the simulated patient produced: samples 0..n-1, quantised as on the wire."""
    src = SyntheticSource("bsi", seed=seed)
    x = np.empty((n, 64))
    lab = np.empty(n, np.int8)
    src.read_into(x, lab)
    return np.clip(np.rint(x / 0.25), -32768, 32767) * 0.25, lab


def monopolar(contact: int, amplitude_ma: float, cycle: int = 0) -> StimCommand:
    cmd = StimCommand.off(16, cycle)
    cmd.amplitude_ma[contact] = -amplitude_ma
    cmd.case_ma = amplitude_ma
    cmd.pulse_width_us, cmd.frequency_hz, cmd.interphase_gap_us = 300.0, 40.0, 50.0
    cmd.program_id = 1
    return cmd


def wait_for(pred, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_closed_link_over_a_pty(firmware) -> None:
    fw = firmware()
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    assert link.info is not None and link.info.n_channels == 64
    assert link.source.info.sampling_rate_hz == 586.0
    assert link.source.info.intention_names[0] == "rest"
    blocks = collect(link, 1.2)
    # arm, then ramp up from zero within the slew limit (+0.8 mA per 100 ms hop)
    link.arm()
    src = link.source
    amp = 0.0
    sent = 0
    for _ in range(12):
        b = src.read(59, timeout=0.5)
        assert b is not None
        link.stimulator.send(monopolar(2, amp, sent), hop_last_sample=b.first_index + 58)
        amp = min(amp + 0.8, 2.0)
        sent += 1
    # every STIM acknowledged (+ the ARM), with the device's own latency measurement
    assert wait_for(lambda: link.stats()["acks"] >= sent + 1)
    # the stream: consecutive, nothing lost, and exactly what the patient model produced
    for (f0, d0, _), (f1, _, _) in zip(blocks, blocks[1:], strict=False):
        assert f1 == f0 + d0.shape[0]
    first, last = blocks[0][0], blocks[-1][0] + blocks[-1][1].shape[0]
    truth, labels = ground_truth(1, last)
    got = np.concatenate([d for _, d, _ in blocks])
    np.testing.assert_array_equal(got, truth[first:last])
    np.testing.assert_array_equal(np.concatenate([lab for _, _, lab in blocks]),
                                  labels[first:last])
    st = link.stats()
    assert st["stims_sent"] == sent and st["naks"]["total"] == 0
    assert st["frames_lost"] == 0 and st["crc_errors"] == 0 and st["malformed_frames"] == 0
    assert st["device_latency_us"]["max"] < 1e6 and link.device_latencies_us().size == sent
    assert st["link_rtt_us"]["p50"] > 0 and st["device_state"] == "STIMULATING"
    # STOP: always accepted; the device ends the train and disarms
    link.stimulator.stop()
    assert wait_for(lambda: link.device_state is not None and link.device_state.name ==
                    "DISARMED")
    link.close()
    assert fw.stop() == 0
    log = fw.log()
    trains = [e for e in log if e["kind"] == "train"]
    assert len(trains) == sent - 1 and trains[-1]["end_reason"] == "stop"  # the first was off
    limits, array = SafetyLimits(), paddle_5_6_5()
    for tr in trains:
        cmd = monopolar(2, -tr["amplitude_ma"][2])
        assert validate(cmd, limits, array) == []
    assert fw.summary()["rx"]["crc_errors"] == 0


def test_wrong_keys_are_one_line_authentication_errors(firmware, tmp_path) -> None:
    fw = firmware()
    other = generate_key_file(tmp_path / "other.toml")
    with pytest.raises(AuthenticationError, match="check --key-file") as info:
        open_device_link(fw.address, keys=other)
    assert "\n" not in str(info.value)
    # right device->host key, wrong host->device key: the device NAKs our ARM
    good = load_key_file(fw.key_file)
    half = LinkKeys(other.h2d, good.d2h)
    link = DeviceLink(fw.address, keys=half, settings=LinkSettings(auto_arm=False)).open()
    with pytest.raises(AuthenticationError, match="device rejected our key: check --key-file"):
        link.arm()
    link.close()
    assert fw.stop() == 0
    assert fw.summary()["naks_by_reason"] == {"AUTH": 1}
    assert not [e for e in fw.log() if e["kind"] in ("arm", "train")]


def test_wrong_path_busy_port_and_wrong_baud(firmware) -> None:
    with pytest.raises(DeviceError, match="no such device"):
        open_device_link("/dev/pts/does-not-exist", keys=LinkKeys(b"a" * 32, b"b" * 32))
    fw = firmware()
    keys = load_key_file(fw.key_file)
    link = open_device_link(fw.address, keys=keys)
    with pytest.raises(DeviceError, match="busy"):
        DeviceLink(fw.address, keys=keys).open()
    link.close()
    with pytest.raises(DeviceError, match="check the baud rate") as info:
        DeviceLink(fw.address, keys=keys, baudrate=115200,
                   settings=LinkSettings(open_timeout_s=1.0)).open()
    assert "\n" not in str(info.value) and "115200" in str(info.value)


def test_cable_pulled_is_a_device_error_and_a_safety_input(firmware) -> None:
    fw = firmware()
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    collect(link, 0.5)
    link.arm()
    fw.kill()
    with pytest.raises(DeviceError, match="vanished") as info:
        for _ in range(50):
            link.source.read(59, timeout=0.2)
    assert "\n" not in str(info.value)
    kinds = [k for k, _ in link.poll_safety_inputs()]
    assert "heartbeat_lost" in kinds
    with pytest.raises(DeviceError):
        link.stimulator.send(monopolar(2, 0.5))
    link.stimulator.stop()  # attempted, never raises
    assert link.stats()["error"] and link.stats()["reconnects"] == 0
    link.close()


def test_silent_host_trips_the_device_watchdog(firmware) -> None:
    fw = firmware("--watchdog-ms", "300")
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    src = link.source.open()
    link.arm()
    for i in range(5):  # from zero, +0.8 mA per hop: within the device-clock slew limit
        b = src.read(59, timeout=0.5)
        link.stimulator.send(monopolar(5, 0.8 * min(i, 2)),
                             hop_last_sample=b.first_index + b.n_samples - 1)
    assert wait_for(lambda: link.device_state is not None and
                    link.device_state.name == "STIMULATING")
    # the control loop hangs: no read, no send -> the link stops its heartbeat after 0.5 s
    # and the device's watchdog ramps the output to zero 0.3 s later
    assert wait_for(lambda: link.device_state.name == "WATCHDOG", timeout=3.0)
    inputs = dict(link.poll_safety_inputs())
    assert "watchdog tripped" in inputs.get("device_fault", "")
    b = src.read(59, timeout=0.5)
    link.stimulator.send(monopolar(5, 0.8), hop_last_sample=b.first_index + 58)
    assert wait_for(lambda: link.stats()["naks"]["by_reason"].get("WATCHDOG", 0) == 1)
    link.close()
    fw.stop()
    log = fw.log()
    assert [e["kind"] for e in log if e["kind"] == "watchdog"] == ["watchdog"]
    ramp = [e for e in log if e["kind"] == "ramp"]
    assert ramp and ramp[0]["end_reason"] in ("ramp_done", "stop")
    assert ramp[0]["stop_us"] - ramp[0]["start_us"] <= 200_000 + 5000


def test_replayed_frame_over_the_pty_changes_nothing(firmware) -> None:
    fw = firmware()
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    src = link.source.open()
    link.arm()
    written: list[bytes] = []
    ser = link.port.ser
    real_write = ser.write
    ser.write = lambda data: (written.append(bytes(data)), real_write(data))[1]
    b = src.read(59, timeout=0.5)
    link.stimulator.send(monopolar(2, 0.5), hop_last_sample=b.first_index + 58)
    stim_frame = written[-1]
    assert wait_for(lambda: link.stats()["acks"] >= 2)
    real_write(stim_frame)  # the same bytes again: a replay
    real_write(stim_frame[:-8] + b"\x00")  # and a truncated copy
    assert wait_for(lambda: link.stats()["naks"]["by_reason"].get("REPLAY", 0) == 1)
    link.close()
    fw.stop()
    assert len([e for e in fw.log() if e["kind"] == "train"]) == 1
    assert fw.summary()["device"]["stims_applied"] == 1


def test_one_percent_corrupted_bytes_every_corruption_counted(firmware) -> None:
    # 1-sample frames (~190 B) so that some survive 1 % byte errors; the link comes up first
    fw = firmware("--corrupt-bytes", "0.01", "--samples-per-frame", "1", "--faults-after",
                  "0.8")
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    src = link.source.open()
    time.sleep(0.8)
    link.arm_async()
    blocks = []
    end = time.monotonic() + 2.5
    amp, k = 0.0, 0
    while time.monotonic() < end:
        b = src.read(59, timeout=0.3)
        if b is None:
            continue
        blocks.append((b.first_index, b.data.copy()))
        if k % 50 == 0:
            amp = min(amp + 0.3, 1.5)
            link.stimulator.send(monopolar(2, amp, k), hop_last_sample=b.first_index +
                                 b.n_samples - 1)
        k += 1
    st = link.stats()
    link.close()
    fw.stop()
    assert st["crc_errors"] + st["malformed_frames"] > 0
    assert st["frames_lost"] > 0 and st["samples_lost"] > 0
    # every sample that was accepted is exactly what the device sent: no corruption got in
    last = max(f + d.shape[0] for f, d in blocks)
    truth, _ = ground_truth(1, last)
    for f, d in blocks:
        np.testing.assert_array_equal(d, truth[f:f + d.shape[0]])
    summary = fw.summary()
    assert summary["injected"]["frames_corrupted"] > 0
    assert summary["rx"]["crc_errors"] + summary["rx"]["malformed_frames"] > 0
    limits, array = SafetyLimits(), paddle_5_6_5()
    for tr in (e for e in fw.log() if e["kind"] == "train"):
        assert validate(monopolar(2, -tr["amplitude_ma"][2]), limits, array) == []


def test_device_reboot_is_seen_and_indices_keep_increasing(firmware) -> None:
    fw = firmware("--reboot-after", "0.8")
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    blocks = collect(link, 2.0)
    firsts = [f for f, _, _ in blocks]
    assert firsts == sorted(firsts)
    st = link.stats()
    assert st["device_reboots"] == 1 and st["samples_lost"] > 0
    assert any(k == "device_fault" and "rebooted" in v for k, v in link.poll_safety_inputs())
    link.arm()  # a new session: the link re-learnt it and arms again
    link.close()


def test_socket_transport_and_reconnect(firmware) -> None:
    fw = firmware("--listen", "socket://127.0.0.1:0", "--disconnect-after", "0.8")
    assert fw.address.startswith("socket://127.0.0.1:")
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    blocks = collect(link, 1.6)
    assert blocks and link.stats()["reconnects"] == 1
    assert link.stats()["error"] is None
    link.close()


@pytest.mark.parametrize(("args", "match"), [
    (["--corrupt-bytes", "2"], "probability"),
    (["--listen", "nonsense"], "socket://HOST:PORT"),
    (["--baud", "1234"], "standard rate"),
    (["--open-contact", "99"], "contacts are 0"),
    (["--array", "paddle-99"], "known arrays: paddle-5-6-5, dbs-3389, rns-strip-depth"),
])
def test_firmware_sim_bad_input_is_one_line_exit_2(args, match, tmp_path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "firmware_sim", "--key-file",
                        str(tmp_path / "k.toml"), *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert match in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_firmware_sim_creates_a_private_key_file(firmware, tmp_path) -> None:
    fw = firmware()
    assert oct(os.stat(fw.key_file).st_mode & 0o777) == "0o600"


def test_the_device_reports_its_array_and_the_link_arms_only_a_match(firmware) -> None:
    fw = firmware("--array", "dbs-3389")
    link = open_device_link(fw.address, key_file=str(fw.key_file))
    dbs = electrode_array("dbs-3389")
    assert link.device_array_name == "dbs-3389" and link.info.n_contacts == 4
    np.testing.assert_array_equal(link.device_area_cm2, dbs.area_cm2)
    with pytest.raises(DeviceError, match="reports array 'dbs-3389', the scenario's is "
                                          "'paddle-5-6-5'"):
        link.arm(expected_array=paddle_5_6_5())
    link.arm(expected_array=dbs)  # the matching array arms
    assert wait_for(lambda: link.device_state is not None and link.device_state.name == "ARMED")
    link.close()
    fw.stop()
    assert len([e for e in fw.log() if e["kind"] == "arm"]) == 1
