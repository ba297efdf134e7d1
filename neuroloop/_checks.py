"""The one checker of every number a user hands neuroloop (except the safety limits).

Scenario keys (:mod:`neuroloop.config`), command-line options (:mod:`neuroloop.cli`) and
recording metadata (:mod:`neuroloop.io.reader`) all go through :func:`check_number` with a
:class:`Range` from this module, so a value is refused the same way wherever it comes from:
one line naming the key or option, the value, the allowed range and the fix. Safety limits
have their own single checker, :func:`neuroloop.safety.limits.check_limit_value`.

The bounds are project choices, documented here and in each option's ``--help``:

==========================  =====================  ==========================================
value                        allowed                why
==========================  =====================  ==========================================
run duration (real time)     (0, 604800] s          7 days of wall clock
run duration (``--fast``)    <= 86400 s simulated   24 h and at most 1 000 000 cycles, so a
                             and 1e6 cycles         simulated run finishes (minutes)
deadline                     [0.05, 10000] ms       a cycle deadline, not a timeout
sampling rate                [1, 1e6] Hz            1024-ch intracortical at 30 kHz fits
channels                     [1, 4096]
hop                          [1, 1e6] samples,      one control cycle
                             <= 10 s of signal
filter order                 [1, 20]                Butterworth band-pass sections
notch Q                      [0.5, 1000]
calibration                  (0, 3600] s and        the segment is held in memory
                             <= 2**29 values (4 GiB)
status interval              [0.01, 60] s
seeds                        [0, 2**32 - 1]         integers
--baud                       [300, 16000000]
bench --hops                 [100, 200000]
==========================  =====================  ==========================================
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = [
    "Range", "check_number", "show_value", "argparse_number",
    "DURATION_S", "FAST_DURATION_MAX_S", "FAST_CYCLES_MAX", "DEADLINE_MS", "SAMPLING_RATE_HZ",
    "N_CHANNELS", "HOP_SAMPLES", "HOP_MAX_S", "HOP_MAX_VALUES", "FILTER_ORDER", "NOTCH_Q",
    "CALIBRATION_S", "CALIBRATION_MAX_VALUES", "STATUS_INTERVAL_S", "SEED", "SNR", "BAUD",
    "BENCH_HOPS", "INJECT_AT_S", "INJECT_DURATION_S", "MAX_BANDS", "MAX_NOTCHES",
    "MAX_INTENTIONS", "check_calibration_size", "check_fast_duration", "check_inject_spec",
]


def _fmt(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e16:
        return str(int(x))
    return f"{x:g}"


@dataclass(frozen=True)
class Range:
    """An interval of allowed values, ``[lo, hi]`` (or open at either end).

    Attributes
    ----------
    lo, hi : float
    lo_open, hi_open : bool
        Exclude the end point.
    integer : bool
        Only whole numbers (an int; a float such as ``4.0`` is refused).
    unit : str
        For messages (``"s"``, ``"Hz"``).
    """

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    unit: str = ""

    def text(self) -> str:
        """E.g. ``"(0, 604800] s"``."""
        unit = f" {self.unit}" if self.unit else ""
        lo_open = self.lo_open or math.isinf(self.lo)
        hi_open = self.hi_open or math.isinf(self.hi)
        return (f"{'(' if lo_open else '['}{_fmt(self.lo)}, {_fmt(self.hi)}"
                f"{')' if hi_open else ']'}{unit}")

    def contains(self, v: float) -> bool:
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below


def _clip(text: str) -> str:
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= 40 else text[:37] + "..."


def show_value(value: Any) -> str:
    """A value as a message shows it (its repr, short, one line)."""
    return _clip(repr(value))


def check_number(name: str, value: Any, rng: Range, *, hint: str = "",
                 error: type[Exception] = ConfigError, shown: str | None = None) -> Any:
    """``value`` as an int (``rng.integer``) or a float, or raise ``error`` (one line).

    Parameters
    ----------
    name : str
        The key or option as the user wrote it (``"my.toml: dsp.hop_samples"``,
        ``"--duration"``). Empty: the message starts with the value (argparse adds the
        option itself).
    value : object
        Anything (a TOML value, a parsed option, a JSON value). ``bool`` is not a number.
    rng : Range
    hint : str
        Appended to the fix, e.g. ``"e.g. 586"``.
    error : exception class
        :class:`~neuroloop.errors.ConfigError` (default) or, for recordings,
        :class:`~neuroloop.errors.RecordingError`.
    shown : str or None
        How to show the value (the text as typed on the command line); default its repr.

    Raises
    ------
    error
        Not a number (or not an integer), not finite, or outside ``rng``.
    """
    text = show_value(value) if shown is None else _clip(shown)
    what = f"{name} = {text}" if name else text
    fix = f"use {'an integer' if rng.integer else 'a value'} in {rng.text()}" + (
        f" ({hint})" if hint else "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{what} is not {'an integer' if rng.integer else 'a number'}; {fix}")
    if rng.integer and not isinstance(value, int):
        raise error(f"{what} is not an integer; {fix}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        v = math.inf if value > 0 else -math.inf
    if math.isnan(v):
        raise error(f"{what} is not a number (NaN); {fix}")
    if math.isinf(v):
        raise error(f"{what} is not finite; {fix}")
    if not rng.contains(v):
        if v < rng.lo or (rng.lo_open and v <= rng.lo):
            problem = ("not positive" if rng.lo == 0 and rng.lo_open
                       else "negative" if rng.lo == 0 and v < 0 else "too small")
        else:
            problem = "too large"
        raise error(f"{what} is {problem}; {fix}")
    return int(value) if rng.integer else v


def argparse_number(rng: Range, hint: str = "") -> Any:
    """An argparse ``type`` for a number in ``rng``: the same checker as the scenario keys
    (:func:`check_number`); argparse names the option in the one-line message (exit 2)."""
    def parse(text: str) -> int | float:
        try:
            value: int | float = int(text) if rng.integer else float(text)
        except ValueError:
            value = text  # type: ignore[assignment]  # check_number refuses it with the fix
        try:
            return check_number("", value, rng, hint=hint, shown=text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "integer" if rng.integer else "number"
    return parse


# -- the bounds ------------------------------------------------------------------------------
DURATION_S = Range(0.0, 7 * 86400.0, lo_open=True, unit="s")
FAST_DURATION_MAX_S = 86400.0
FAST_CYCLES_MAX = 1_000_000
DEADLINE_MS = Range(0.05, 10000.0, unit="ms")
SAMPLING_RATE_HZ = Range(1.0, 1e6, unit="Hz")
N_CHANNELS = Range(1, 4096, integer=True)
HOP_SAMPLES = Range(1, 1_000_000, integer=True)
HOP_MAX_S = 10.0
HOP_MAX_VALUES = 1 << 24  # hop_samples x n_channels: one hop is at most 128 MiB of float64
FILTER_ORDER = Range(1, 20, integer=True)
NOTCH_Q = Range(0.5, 1000.0)
CALIBRATION_S = Range(0.0, 3600.0, lo_open=True, unit="s")
CALIBRATION_MAX_VALUES = 1 << 29  # samples x channels of the calibration segment (4 GiB)
STATUS_INTERVAL_S = Range(0.01, 60.0, unit="s")
SEED = Range(0, 2**32 - 1, integer=True)
SNR = Range(0.0, 1e6)
BAUD = Range(300, 16_000_000, integer=True)
BENCH_HOPS = Range(100, 200_000, integer=True)
INJECT_AT_S = Range(0.0, 7 * 86400.0, unit="s")
INJECT_DURATION_S = Range(0.0, 7 * 86400.0, lo_open=True, unit="s")
MAX_BANDS = 64
MAX_NOTCHES = 32
MAX_INTENTIONS = 64


def check_calibration_size(name: str, duration_s: float, rate_hz: float, n_channels: int,
                           error: type[Exception] = ConfigError) -> None:
    """Refuse a calibration segment larger than :data:`CALIBRATION_MAX_VALUES` samples x
    channels (it is held in memory as float64, with its features)."""
    values = duration_s * rate_hz * n_channels
    if values > CALIBRATION_MAX_VALUES:
        most = CALIBRATION_MAX_VALUES / (rate_hz * n_channels)
        raise error(f"{name} = {duration_s:g} s is too long for {n_channels} channels at "
                    f"{rate_hz:g} Hz: the segment would hold {values:.3g} values, more than "
                    f"{CALIBRATION_MAX_VALUES} (4 GiB); use at most {most:.4g} s")


def check_fast_duration(name: str, duration_s: float, hop_s: float,
                        error: type[Exception] = ConfigError) -> None:
    """Refuse a ``--fast`` run that would not finish in minutes: more than
    :data:`FAST_DURATION_MAX_S` of simulated time or :data:`FAST_CYCLES_MAX` cycles."""
    cycles = duration_s / hop_s
    if duration_s > FAST_DURATION_MAX_S or cycles > FAST_CYCLES_MAX:
        most = min(FAST_DURATION_MAX_S, FAST_CYCLES_MAX * hop_s)
        raise error(f"{name} = {duration_s:g} s is too long for --fast: a simulated run is at "
                    f"most {FAST_DURATION_MAX_S:g} s (24 h) and {FAST_CYCLES_MAX} cycles (this "
                    f"scenario has {hop_s * 1e3:.4g} ms cycles); use at most {most:g} s, or "
                    "drop --fast to run in real time")


def check_inject_spec(text: str, *, name: str = "", error: type[Exception] = ConfigError) -> str:
    """The numbers of an ``--inject KIND@SECONDS[:DURATION]`` spec are finite and bounded
    (:data:`INJECT_AT_S`, :data:`INJECT_DURATION_S`); the kind and the rest of the syntax are
    checked by :func:`neuroloop.runtime.inject.parse_injections`. Returns ``text``."""
    if not isinstance(text, str):
        raise error(f"{name or '--inject'} = {show_value(text)} is not a string such as "
                    "\"estop@20\"")
    _, sep, when = text.partition("@")
    if sep:
        start, colon, dur = when.partition(":")
        parts = [("SECONDS", start, INJECT_AT_S)]
        if colon:
            parts.append(("DURATION", dur, INJECT_DURATION_S))
        for what, part, rng in parts:
            try:
                value: Any = float(part)
            except ValueError:
                value = part
            check_number(f"{name + ': ' if name else ''}{_clip(text)}: {what}", value, rng,
                         shown=part, hint="e.g. estop@20 or source-stall@10:2.5", error=error)
    return text


def check_stream_prefix(name: str, text: str, *, error: type[Exception] = ConfigError) -> str:
    """An LSL stream-name prefix (``--lsl-out PREFIX``): 1..64 printable ASCII characters
    without spaces, so that every LSL tool shows and matches it. Returns ``text``."""
    if not (isinstance(text, str) and 0 < len(text) <= 64 and text.isascii()
            and text.isprintable() and " " not in text):
        raise error(f"{name} {show_value(text)} is not a stream name prefix; use 1 to 64 "
                    "printable ASCII characters without spaces, e.g. neuroloop")
    return text
