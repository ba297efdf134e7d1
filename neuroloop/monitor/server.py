"""The live monitor's web server: its own process, reading the loop's shared-memory channel.

Started by :class:`~.publisher.MonitorPublisher` as ``python -m neuroloop.monitor.server`` on
the socket the CLI bound (inherited file descriptor). It leaves the loop's real-time
scheduling (normal policy, lower priority), so it can never take the CPU from the loop, and
it takes no lock the loop uses: the loop only writes shared memory.

One producer task turns the channel into a JSON frame a few tens of times a second; each page
gets the newest frame when it has acknowledged the ones before (at most
:data:`MAX_UNACKED` in flight), so a slow page gets fewer frames and a page that stops
acknowledging for :data:`STALL_S` seconds is dropped (its socket closed). Nothing a client
does reaches the loop except the E-STOP, which bumps a counter the loop polls every cycle.

Endpoints: ``/`` the page, ``/static/*`` its script and style, ``/ws`` the frames (and the
E-STOP), ``POST /api/estop`` (the same E-STOP, for a page whose socket is down),
``/api/state`` the newest frame, ``/api/stats`` the server's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ..records import FLAG_DEADLINE_MISSED, cycle_dtype
from ..stats import percentiles_us
from . import channel as C
from .channel import N_EVENT_SLOTS, N_SLOTS, ChannelLayout, MonitorChannel

__all__ = ["MonitorState", "build_app", "main", "MAX_UNACKED", "STALL_S", "FRAME_HZ"]

STATIC_DIR = Path(__file__).with_name("static")
#: frames per second at most (one per cycle when the loop is slower)
FRAME_HZ = 20.0
#: frames a page may have unacknowledged before it is sent no more
MAX_UNACKED = 3
#: seconds without an acknowledgement after which a page is dropped
STALL_S = 3.0
#: e2e samples the page's p50/p99 are computed over
_LATENCY_WINDOW = 600
#: display rate of the traces, samples per second per channel
_DISPLAY_HZ = 250.0


class MonitorState:
    """The server's view of the channel: turns new records, samples and events into frames."""

    def __init__(self, channel: MonitorChannel, meta: dict[str, Any]) -> None:
        self.ch = channel
        self.meta = meta
        self.dtype = cycle_dtype(meta["n_features"], meta["n_states"], meta["n_contacts"],
                                 meta["n_outputs"])
        self._buf = np.zeros(channel.layout.record_bytes, np.uint8)
        self._rec = np.frombuffer(self._buf, dtype=self.dtype)
        self.next_cycle = 0
        self.next_sample = 0
        self.next_event = 0
        self.lapped = 0
        self.e2e: deque[int] = deque(maxlen=_LATENCY_WINDOW)
        self.compute: deque[int] = deque(maxlen=_LATENCY_WINDOW)
        self.frame_seq = 0
        self.frame: str = json.dumps({"type": "frame", "seq": 0, "cycle": None})
        self.latest: dict[str, Any] = {}
        fs = float(meta["sampling_rate_hz"])
        self.stride = max(1, int(round(fs / _DISPLAY_HZ)))
        self._sos = _display_filter(meta, fs)
        self._zi: np.ndarray | None = None
        self.features_stride = max(1, math.ceil(meta["n_features"] / 1024))

    # -- reading the channel -----------------------------------------------------------------
    def _read_cycles(self) -> dict[str, Any] | None:
        ctl = self.ch.ctl
        end = int(ctl[C.CTL_CYCLES])
        start = self.next_cycle
        if end - start > N_SLOTS - 2:  # the loop lapped us: skip what was overwritten
            self.lapped += end - (N_SLOTS - 2) - start
            start = end - (N_SLOTS - 2)
        last: dict[str, Any] | None = None
        for seq in range(start, end):
            if not self.ch.read_record(seq, self._buf):
                self.lapped += 1
                continue
            r = self._rec[0]
            self.e2e.append(int(r["e2e_ns"]))
            self.compute.append(int(r["compute_ns"]))
            if seq == end - 1:
                last = _record_dict(r, self.features_stride)
        self.next_cycle = end
        ctl[C.CTL_SERVER_LAPPED] = self.lapped
        return last

    def _read_samples(self) -> dict[str, Any]:
        ring = self.ch.samples
        rows = ring.shape[0]
        end = int(self.ch.ctl[C.CTL_SAMPLES])
        start = self.next_sample
        if end - start > rows // 2 or start > end:  # fell behind (or a new run): restart
            start = max(0, end - min(rows // 2, int(2 * self.meta["sampling_rate_hz"])))
            self._zi = None
        self.next_sample = end
        if end <= start or self.meta["channel_names"] == []:
            return {"first": end, "stride": self.stride, "raw": [], "filtered": []}
        idx = np.arange(start, end) % rows
        block = ring[idx]  # (n, n_sel)
        if self._sos is not None:
            from scipy.signal import sosfilt, sosfilt_zi

            if self._zi is None:
                self._zi = (sosfilt_zi(self._sos)[:, :, None]
                            * block[:1, :][None, :, :]).astype(np.float64)
            filtered, self._zi = sosfilt(self._sos, block, axis=0, zi=self._zi)
        else:
            filtered = block
        # keep the samples on the display grid (absolute index multiple of the stride)
        first = start + (-start) % self.stride
        take = np.arange(first - start, end - start, self.stride)
        return {"first": int(first), "stride": self.stride,
                "raw": _rounded(block[take].T), "filtered": _rounded(filtered[take].T)}

    def _read_events(self) -> list[str]:
        end = int(self.ch.ctl[C.CTL_EVENTS])
        start = max(self.next_event, end - N_EVENT_SLOTS)
        out = [e for e in (self.ch.read_event(s) for s in range(start, end)) if e]
        self.next_event = end
        return out

    def step(self) -> bool:
        """Read what is new; build the next frame. True when there was a new cycle."""
        rec = self._read_cycles()
        samples = self._read_samples()
        events = self._read_events()
        if rec is None and not events and not samples["raw"]:
            return False
        ctl = self.ch.ctl
        if rec is not None:
            self.latest = rec
        e2e = percentiles_us(np.fromiter(self.e2e, np.int64, len(self.e2e)), digits=1)
        comp = percentiles_us(np.fromiter(self.compute, np.int64, len(self.compute)), digits=1)
        self.frame_seq += 1
        frame = {
            "type": "frame", "seq": self.frame_seq, **self.latest,
            "samples": samples, "events": events,
            "latency": {"e2e_p50_us": e2e["p50"], "e2e_p99_us": e2e["p99"],
                        "compute_p50_us": comp["p50"], "compute_p99_us": comp["p99"],
                        "window": len(self.e2e)},
            "misses": int(ctl[C.CTL_MISSES]), "cycles": int(ctl[C.CTL_CYCLES]),
            "closed": bool(ctl[C.CTL_CLOSED]),
            "estop": {"requests": int(ctl[C.CTL_ESTOP_REQUESTS]),
                      "applied": int(ctl[C.CTL_ESTOP_SEEN]),
                      "cycle": int(ctl[C.CTL_ESTOP_CYCLE]),
                      "latency_ms": round(int(ctl[C.CTL_ESTOP_LATENCY_NS]) / 1e6, 3),
                      "output_zero": bool(ctl[C.CTL_ESTOP_AMPLITUDE])},
            "server": self.stats(),
        }
        self.frame = json.dumps(_finite(frame), allow_nan=False, default=_nan_safe)
        return True

    def stats(self) -> dict[str, int]:
        ctl = self.ch.ctl
        return {"clients": int(ctl[C.CTL_SERVER_CLIENTS]),
                "accepted": int(ctl[C.CTL_SERVER_ACCEPTED]),
                "dropped_stalled": int(ctl[C.CTL_SERVER_DROPPED]),
                "frames_sent": int(ctl[C.CTL_SERVER_FRAMES]),
                "frames_held": int(ctl[C.CTL_SERVER_HELD]),
                "cycles_skipped": int(ctl[C.CTL_SERVER_LAPPED])}

    def request_estop(self) -> int:
        """Hand an E-STOP to the loop: timestamp first, then the counter it polls."""
        ctl = self.ch.ctl
        ctl[C.CTL_ESTOP_REQUEST_NS] = time.perf_counter_ns()  # CLOCK_MONOTONIC, as the loop's
        ctl[C.CTL_ESTOP_REQUESTS] += 1
        return int(ctl[C.CTL_ESTOP_REQUESTS])

    def bump(self, word: int, n: int = 1) -> None:
        self.ch.ctl[word] += n


def _nan_safe(o: Any) -> Any:
    return None


def _finite(o: Any) -> Any:
    """``o`` with every non-finite float replaced by None (strict JSON for the page)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def _rounded(a: np.ndarray) -> list[list[float | None]]:
    a = np.round(np.asarray(a, dtype=np.float64), 2)
    return [[(float(x) if math.isfinite(x) else None) for x in row] for row in a]


def _finite_list(a: np.ndarray, digits: int = 4) -> list[float | None]:
    return [(round(float(x), digits) if math.isfinite(x) else None) for x in np.ravel(a)]


def _record_dict(r: np.void, features_stride: int) -> dict[str, Any]:
    feats = np.asarray(r["features"])[::features_stride]
    return {
        "cycle": int(r["cycle"]), "state": int(r["state"]), "raw_state": int(r["raw_state"]),
        "true_state": int(r["true_state"]), "valid": bool(r["valid"]),
        "confidence": _finite_list(np.asarray([r["confidence"]]))[0],
        "probabilities": _finite_list(np.asarray(r["probabilities"])),
        "outputs": _finite_list(np.asarray(r["outputs"])),
        "features": _finite_list(feats, 3), "features_stride": features_stride,
        "amplitude_ma": _finite_list(np.asarray(r["amplitude_ma"])),
        "program_id": int(r["program_id"]), "supervisor_state": int(r["supervisor_state"]),
        "frequency_hz": _finite_list(np.asarray([r["frequency_hz"]]))[0],
        "pulse_width_us": _finite_list(np.asarray([r["pulse_width_us"]]))[0],
        "flags": int(r["flags"]), "missed": bool(int(r["flags"]) & FLAG_DEADLINE_MISSED),
        "e2e_us": round(int(r["e2e_ns"]) / 1000.0, 1),
        "compute_us": round(int(r["compute_ns"]) / 1000.0, 1),
        "sample": int(r["first_sample"]),
    }


def _display_filter(meta: dict[str, Any], fs: float) -> np.ndarray | None:
    from scipy.signal import butter

    lo, hi = meta.get("display_band_hz") or [1.0, 0.4 * fs]
    if not (0 < lo < hi < fs / 2):
        return None
    return np.asarray(butter(2, [lo, hi], btype="bandpass", fs=fs, output="sos"))


# -- the web app -------------------------------------------------------------------------------
class _Clients:
    """Per-page flow control: frames are sent only while a page keeps acknowledging them."""

    def __init__(self, state: MonitorState) -> None:
        self.state = state
        self.new_frame = asyncio.Condition()


def build_app(state: MonitorState) -> Any:
    """The Starlette application serving ``state``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    clients = _Clients(state)

    async def producer() -> None:
        period = max(1.0 / FRAME_HZ, 0.0)
        while True:
            try:
                changed = state.step()
            except Exception as exc:  # noqa: BLE001 - keep serving; the page shows it
                sys.stderr.write(f"neuroloop monitor: {type(exc).__name__}: {exc}\n")
                changed = False
            if changed:
                async with clients.new_frame:
                    clients.new_frame.notify_all()
            await asyncio.sleep(period)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html",
                            headers={"Cache-Control": "no-store"})

    async def meta(request: Request) -> Response:
        return JSONResponse(state.meta)

    async def latest(request: Request) -> Response:
        return Response(state.frame, media_type="application/json")

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def estop(request: Request) -> Response:
        n = state.request_estop()
        return JSONResponse({"type": "estop_ack", "requests": n,
                             "note": "E-STOP latched; re-arm only from the operator's terminal"})

    async def ws_endpoint(ws: WebSocket) -> None:
        await ws.accept()
        state.bump(C.CTL_SERVER_ACCEPTED)
        state.bump(C.CTL_SERVER_CLIENTS)
        acked = [0]  # frames this page acknowledged
        sent = [0]
        last_ack = [time.monotonic()]
        closed = asyncio.Event()

        async def sender() -> None:
            last_seq = -1
            while not closed.is_set():
                async with clients.new_frame:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(clients.new_frame.wait(), timeout=0.5)
                if state.frame_seq == last_seq:
                    continue
                if sent[0] - acked[0] >= MAX_UNACKED:
                    state.bump(C.CTL_SERVER_HELD)
                    if time.monotonic() - last_ack[0] > STALL_S:
                        state.bump(C.CTL_SERVER_DROPPED)
                        closed.set()
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(ws.close(code=4000, reason="stalled"), 1.0)
                        return
                    continue
                last_seq = state.frame_seq
                try:
                    await asyncio.wait_for(ws.send_text(state.frame), timeout=STALL_S)
                except Exception:  # noqa: BLE001 - a page that cannot take a frame is dropped
                    state.bump(C.CTL_SERVER_DROPPED)
                    closed.set()
                    return
                sent[0] += 1
                state.bump(C.CTL_SERVER_FRAMES)

        task = asyncio.create_task(sender())
        try:
            await ws.send_text(json.dumps({"type": "meta", **state.meta}, default=_nan_safe))
            while not closed.is_set():
                try:
                    msg = await ws.receive_text()
                except (WebSocketDisconnect, RuntimeError):
                    break
                try:
                    data = json.loads(msg)
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                kind = data.get("type")
                if kind == "ack":
                    acked[0] = sent[0] if not isinstance(data.get("n"), int) else min(
                        sent[0], int(data["n"]))
                    last_ack[0] = time.monotonic()
                elif kind == "estop":
                    n = state.request_estop()
                    with contextlib.suppress(Exception):
                        await ws.send_text(json.dumps({"type": "estop_ack", "requests": n}))
                # nothing else a page sends can reach the loop
        finally:
            closed.set()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            state.bump(C.CTL_SERVER_CLIENTS, -1)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        task = asyncio.create_task(producer())
        try:
            yield
        finally:
            task.cancel()

    return Starlette(routes=[
        Route("/", page), Route("/api/meta", meta), Route("/api/state", latest),
        Route("/api/stats", stats), Route("/api/estop", estop, methods=["POST"]),
        WebSocketRoute("/ws", ws_endpoint),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ], lifespan=lifespan)


def _leave_realtime() -> None:
    """Normal scheduling, lower priority: the server must never take the loop's CPU."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.nice(5)


def _ws_impl() -> str:
    """uvicorn's websockets protocol: the sans-I/O one where this uvicorn has it."""
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return "websockets"
    return "websockets-sansio"


async def _watch_parent(parent: int, server: Any) -> None:
    while True:
        await asyncio.sleep(0.5)
        if os.getppid() != parent:  # the loop's process is gone: so are we
            server.should_exit = True
            return


async def _serve(state: MonitorState, sock: socket.socket, parent: int) -> None:
    import uvicorn

    config = uvicorn.Config(build_app(state), log_level="warning", access_log=False,
                            lifespan="on", ws=_ws_impl(), timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    watch = asyncio.create_task(_watch_parent(parent, server))
    try:
        await server.serve(sockets=[sock])
    finally:
        watch.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neuroloop.monitor.server")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--parent", type=int, required=True)
    args = p.parse_args(argv)
    _leave_realtime()
    # import the web stack now, while the loop is still calibrating, then wait for the
    # channel: one line "<shared memory name> <layout numbers>" on stdin (EOF: no run)
    import scipy.signal  # noqa: F401
    import starlette.applications  # noqa: F401
    import uvicorn  # noqa: F401

    line = sys.stdin.readline().split()
    if len(line) != 5:
        return 0
    channel = MonitorChannel(ChannelLayout.from_args(line[1:]), name=line[0])
    state = MonitorState(channel, channel.read_meta())
    sock = socket.socket(fileno=args.fd)
    try:
        asyncio.run(_serve(state, sock, args.parent))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
