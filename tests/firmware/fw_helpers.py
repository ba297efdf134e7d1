"""A scripted host for driving :class:`firmware_sim.device.FirmwareDevice` byte by byte."""

from __future__ import annotations

import numpy as np

from firmware_sim.device import DeviceConfig, FirmwareDevice, StreamInfo
from neuroloop.link.codec import Direction, Frame, encode_frame
from neuroloop.link.keys import LinkKeys
from neuroloop.link.messages import Ack, Message, Nak, Stim
from neuroloop.link.parser import StreamParser
from neuroloop.safety.limits import SafetyLimits

TEST_KEYS = LinkKeys(bytes(range(0x00, 0x20)), bytes(range(0x20, 0x40)), source="test")
OTHER_KEYS = LinkKeys(bytes(range(0x40, 0x60)), bytes(range(0x60, 0x80)), source="other")
FS = 586.0
SPF = 59


def stream_info() -> StreamInfo:
    return StreamInfo(FS, tuple(f"C{i}" for i in range(4)), "ecog", ("rest", "move"), SPF, 0.25)


def make_device(limits: SafetyLimits | None = None, **cfg) -> FirmwareDevice:
    config = DeviceConfig(stream=stream_info(), limits=limits or SafetyLimits(), **cfg)
    return FirmwareDevice(TEST_KEYS, config, now_us=0, seed=3, session=0xC0FFEE)


def stim(amps: dict[int, float] | None = None, *, hop: int = 58, pw: float = 300.0,
         f: float = 40.0, ipg: float = 50.0, program: int = 1, n: int = 16,
         case: float | None = None) -> Stim:
    a = np.zeros(n)
    for c, v in (amps or {}).items():
        a[c] = v
    if case is None:
        case = -float(a.sum())  # monopolar: the case returns the current
    return Stim(program, 1, hop, pw, f, ipg, case, 0, a)


class Host:
    """Encodes host frames (own sequence numbers, the device's session) and decodes replies."""

    def __init__(self, dev: FirmwareDevice, keys: LinkKeys = TEST_KEYS) -> None:
        self.dev = dev
        self.keys = keys
        self.seq = 0
        self.parser = StreamParser(Direction.D2H, TEST_KEYS.d2h)

    def frame(self, msg: Message, *, seq: int | None = None, session: int | None = None,
              key: bytes | None = None, direction: Direction = Direction.H2D) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        k = key if key is not None else (self.keys.h2d if direction is Direction.H2D
                                          else self.keys.d2h)
        return encode_frame(msg, direction=direction, seq=seq,
                            session=self.dev.session if session is None else session,
                            timestamp_us=0, key=k)

    def decode(self, raw: list[bytes]) -> list[Message]:
        out = []
        for r in raw:
            for f in self.parser.data_received(r):
                assert isinstance(f, Frame)
                out.append(f.message)
        return out

    def send(self, msg: Message, now_us: int, **kw) -> list[Message]:
        return self.decode(self.dev.receive(self.frame(msg, **kw), now_us))

    def raw(self, data: bytes, now_us: int) -> list[Message]:
        return self.decode(self.dev.receive(data, now_us))

    def answer(self, msg: Message, now_us: int, **kw) -> Ack | Nak:
        replies = [m for m in self.send(msg, now_us, **kw) if isinstance(m, Ack | Nak)]
        assert len(replies) == 1, replies
        return replies[0]


def start_stream(dev: FirmwareDevice, host: Host, now_us: int = 0) -> None:
    """GET_INFO (starts the stream at ``now_us``)."""
    from neuroloop.link.messages import GetInfo

    host.send(GetInfo(), now_us)


def run_until(dev: FirmwareDevice, host: Host, until_us: int, *, step_us: int = 2000,
              heartbeat_every_us: int | None = None, start_us: int = 0) -> list[Message]:
    """Advance the device clock: produce due DATA frames, tick, optionally send heartbeats."""
    from neuroloop.link.messages import Heartbeat

    out: list[Message] = []
    zeros = np.zeros((SPF, len(stream_info().channel_names)), dtype=np.int16)
    t = start_us
    next_hb = start_us
    while t <= until_us:
        if heartbeat_every_us is not None and t >= next_hb:
            out += host.send(Heartbeat(0, 0), t)
            next_hb = t + heartbeat_every_us
        while dev.streaming and t >= dev.frame_due_us(dev.frame_counter):
            dev.data_frame(zeros, None, int(dev.frame_due_us(dev.frame_counter)))
        out += host.decode(dev.tick(t))
        t += step_us
    return out
