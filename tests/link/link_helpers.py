"""Shared material of the link tests: the documented test keys and one message of each type."""

from __future__ import annotations

import numpy as np

from neuroloop.link.codec import Direction, encode_frame
from neuroloop.link.keys import LinkKeys
from neuroloop.link.messages import (
    Ack,
    Arm,
    Data,
    DeviceState,
    FaultFlag,
    GetInfo,
    Heartbeat,
    Info,
    Message,
    Nak,
    NakReason,
    Status,
    Stim,
    Stop,
)
from neuroloop.stimulation.electrodes import electrode_array

#: The test keys of docs/protocol.md (never used outside tests and the documented vectors).
TEST_KEYS = LinkKeys(bytes(range(0x00, 0x20)), bytes(range(0x20, 0x40)), source="test")
SESSION = 0x1234ABCD


def stim_example() -> Stim:
    amps = np.zeros(16)
    amps[2] = -2.0
    amps[7] = 1.5
    return Stim(program_id=3, cycle=42, hop_last_sample=58, pulse_width_us=300.0,
                frequency_hz=40.0, interphase_gap_us=50.0, case_ma=0.5, waveform=0,
                amplitude_ma=amps)


def examples() -> list[tuple[Message, Direction]]:
    """One message of every type, with the direction it travels."""
    data = Data(frame_counter=7, first_sample_index=413, uv_per_lsb=0.25,
                samples=np.array([[1, -2, 300], [-32768, 32767, 0]], dtype=np.int16),
                labels=np.array([0, 3], dtype=np.int8))
    return [
        (data, Direction.D2H),
        (Data(1, 2, 0.5, np.array([[5]], dtype=np.int16), None), Direction.D2H),
        (Status(81.5, True, DeviceState.STIMULATING, FaultFlag.IMPEDANCE, 10, 2, 1, 0, 3,
                np.array([900.0, np.inf], dtype=np.float32)), Direction.D2H),
        (Info(586.0, 2, 16, 59, 0.25, 300, 100, 17, "sim", "ecog", ("A", "B"),
              ("rest", "walk"), "paddle-5-6-5", np.full(16, 0.06)), Direction.D2H),
        (Info(250.0, 1, 4, 25, 0.05, 300, 100, 0, "", "eeg", ("Cz",), (), "dbs-3389",
              electrode_array("dbs-3389").area_cm2), Direction.D2H),
        (Ack(12, 0x11, 123456789, 1500), Direction.D2H),
        (Nak(13, 0x11, NakReason.LIMIT, 5, "shannon on contact 5"), Direction.D2H),
        (Heartbeat(int(DeviceState.ARMED), 99), Direction.D2H),
        (Heartbeat(0, 5), Direction.H2D),
        (GetInfo(), Direction.H2D),
        (stim_example(), Direction.H2D),
        (Arm(), Direction.H2D),
        (Stop(), Direction.H2D),
    ]


def same(a: Message, b: Message) -> bool:
    """Field-by-field equality (arrays compared exactly, NaN-aware)."""
    if type(a) is not type(b):
        return False
    for k, v in vars(a).items():
        w = vars(b)[k]
        if isinstance(v, np.ndarray) or isinstance(w, np.ndarray):
            if v is None or w is None:
                return False
            if not np.array_equal(np.asarray(v, dtype=float), np.asarray(w, dtype=float),
                                  equal_nan=True):
                return False
        elif v != w:
            return False
    return True


def d2h_frame(msg: Message, seq: int, timestamp_us: int = 0, session: int = SESSION) -> bytes:
    """``msg`` on the wire as the device sends it (test keys), COBS + delimiter."""
    return encode_frame(msg, direction=Direction.D2H, seq=seq, session=session,
                        timestamp_us=timestamp_us, key=TEST_KEYS.d2h)
