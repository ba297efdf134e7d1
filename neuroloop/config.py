"""Scenario files (TOML) -> frozen dataclasses, validated once at load time.

Every error is a :class:`~neuroloop.errors.ConfigError` whose one-line message names the file,
the key, the bad value and what to do instead. Shipped presets live in
``neuroloop/scenarios/*.toml``; ``--config FILE`` loads a user's own file, which may start
from a preset with ``base = "bsi"`` and override only some keys.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from . import _checks as B
from ._checks import Range, check_number
from ._files import read_text_capped
from .errors import ConfigError

__all__ = [
    "Scenario", "SourceConfig", "DspConfig", "DecoderConfig", "ProgramConfig",
    "StimulationConfig", "ControlConfig", "RuntimeConfig", "load_scenario", "scenario_names",
    "scenario_from_dict",
]

_SECTIONS = ("scenario", "source", "dsp", "decoder", "stimulation", "control", "safety",
             "runtime", "base")


@dataclass(frozen=True)
class SourceConfig:
    """Where samples come from.

    Attributes
    ----------
    url : str
        Source URL (``synthetic://bsi``, ``/dev/ttyUSB0``, ``replay://DIR``, ``edf://F``).
    sampling_rate_hz : float
        Rate the pipeline is designed for; checked against the source at start.
    n_channels : int
        Channel count the pipeline is designed for; checked against the source at start.
    options : dict
        Backend options (seed, snr, ...), passed to the source.
    """

    url: str
    sampling_rate_hz: float
    n_channels: int
    options: Mapping[str, Any] = field(default_factory=dict)


#: Feature kinds of ``[dsp] features``.
DSP_FEATURES = ("log_power", "covariance", "biomarker", "detector")


@dataclass(frozen=True)
class DspConfig:
    """Streaming feature extraction: CAR, notch, band-pass bank, log power per hop.

    ``kind = "spike-band"`` (the intracortical scenario) instead bins threshold crossings and
    spike-band power (:mod:`neuroloop.dsp.spikes`); its keys are in ``params`` (checked when
    the pipeline is built) and ``hop_samples`` is one bin (``bin_ms``), or 1 when the implant
    sends bins (``acquisition = "binned"``).
    """

    hop_samples: int
    bands_hz: tuple[tuple[float, float], ...]
    filter_order: int = 4
    car: bool = True
    notch_hz: tuple[float, ...] = ()
    notch_q: float = 30.0
    #: ``"log_power"`` (per band and channel), ``"covariance"`` (per band, the packed
    #: spatial covariance of the hop: the input of the riemann and csp-lda decoders),
    #: ``"biomarker"`` (one band's power averaged over channels and smoothed, dB: the adbs
    #: biomarker) or ``"detector"`` (line length, area and band RMS per channel for
    #: responsive detectors, one band).
    features: str = "log_power"
    #: EMA time constant of the ``"biomarker"`` power, s.
    biomarker_smoothing_s: float = 1.0
    #: Channels the biomarker averages (None: all).
    biomarker_channels: tuple[int, ...] | None = None
    #: High-pass and low-pass cut-offs (Hz) of the ``"detector"`` measures (0: none).
    highpass_hz: float = 1.0
    lowpass_hz: float = 0.0
    kind: str = "band-power"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder kind, its parameters and the calibration segment."""

    kind: str
    params: Mapping[str, Any]
    calibration_s: float
    calibration_seed: int


@dataclass(frozen=True)
class ProgramConfig:
    """One stimulation program as written in the scenario (contacts by name)."""

    intention: str
    cathodes: Mapping[str, float]
    anodes: Mapping[str, float]
    frequency_hz: float
    pulse_width_us: float
    interphase_gap_us: float
    amplitude_ma: tuple[float, float]


@dataclass(frozen=True)
class StimulationConfig:
    """Electrode array and programs (how decoder output drives them is ``[control]``).

    Attributes
    ----------
    array : str
        Name of an array of the electrode catalogue (:mod:`neuroloop.stimulation.electrodes`);
        its contact areas are what every charge limit uses.
    contact_area_cm2 : float or None
        An effective area stated by the scenario, cm^2: it may only be smaller than each of
        the catalogue's contact areas (stricter), never larger. None: the catalogue's.
    """

    array: str
    contact_area_cm2: float | None
    programs: tuple[ProgramConfig, ...]


#: The control policy of a scenario without a ``[control]`` table.
DEFAULT_POLICY = "program-per-state"


@dataclass(frozen=True)
class ControlConfig:
    """The ``[control]`` table: which control policy turns decoder output into requests.

    Only ``policy`` is checked here (config stays a leaf); the policy validates its own keys
    (``params``) when the session is built, naming ``control.<key>`` and ``label`` on error
    (:mod:`neuroloop.control`).

    Attributes
    ----------
    policy : str
        Registered policy name, e.g. ``"program-per-state"`` or ``"proportional"``.
    params : dict
        Every other key of ``[control]`` (``confidence_threshold``, ``output``, ...).
    label : str
        The scenario file, for error messages.
    """

    policy: str = DEFAULT_POLICY
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = "<config>"


@dataclass(frozen=True)
class RuntimeConfig:
    """Real-time loop settings."""

    deadline_ms: float = 10.0
    duration_s: float = 60.0
    status_interval_s: float = 0.25


@dataclass(frozen=True)
class Scenario:
    """A complete, validated scenario."""

    name: str
    description: str
    intention_names: tuple[str, ...]
    source: SourceConfig
    dsp: DspConfig
    decoder: DecoderConfig
    stimulation: StimulationConfig
    safety: Mapping[str, Any]
    runtime: RuntimeConfig
    path: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    control: ControlConfig = field(default_factory=ControlConfig)

    @property
    def hop_s(self) -> float:
        return self.dsp.hop_samples / self.stream_rate_hz

    @property
    def stream_rate_hz(self) -> float:
        """Rate of the stream the loop reads: the source's, or the bin rate when the implant
        sends bins (``[dsp] kind = "spike-band"``, ``acquisition = "binned"``)."""
        return float(self.dsp.params.get("stream_rate_hz", self.source.sampling_rate_hz))

    @property
    def stream_channels(self) -> int:
        """Channels of the stream the loop reads (2 per electrode for binned intracortical)."""
        return int(self.dsp.params.get("stream_channels", self.source.n_channels))


def scenario_names() -> list[str]:
    """Names of the shipped presets."""
    files = resources.files("neuroloop.scenarios")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    # Capped, regular files only, UTF-8: /dev/zero, a FIFO or a binary is one line, promptly.
    text = read_text_capped(path, f"config file {label}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label} is not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"{label} nests arrays or tables too deeply for TOML; a scenario "
                          "needs at most a few levels") from None


def _preset_table(name: str) -> dict[str, Any]:
    res = resources.files("neuroloop.scenarios") / f"{name}.toml"
    if name not in scenario_names() or not res.is_file():
        raise ConfigError(
            f"unknown scenario {name!r}; use one of: {', '.join(scenario_names())}")
    return tomllib.loads(res.read_text(encoding="utf-8"))


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _names_a_file(text: str) -> bool:
    """True when ``text`` is the path of an existing file; False for anything the OS cannot
    even look up (a name longer than the file system allows, a NUL byte)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a preset by name (``"bsi"``) or a TOML file by path.

    A :class:`~pathlib.Path` is always a file (``--config``); a string is a file when it
    ends in ``.toml``, has a ``/`` or names an existing file, else a preset name. A file may
    say ``base = "bsi"`` to start from a preset and override some keys.
    """
    text = str(name_or_path)
    if (isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text
            or _names_a_file(text)):
        path = Path(text)
        table = _read_toml(path, str(path))
        label = str(path)
        base = table.pop("base", None)
        table = _move_old_control_keys(table, label)
        if base is not None:
            if not isinstance(base, str):
                raise ConfigError(f"{label}: base must be a preset name such as \"bsi\"")
            table = _merge(_base_for(_preset_table(base), table), table)
    else:
        table = _preset_table(text)
        label = f"{text}.toml"
    return scenario_from_dict(table, label=label)


def _move_old_control_keys(table: dict[str, Any], label: str) -> dict[str, Any]:
    """Scenario files written before ``[control]`` existed set ``confidence_threshold`` in
    ``[stimulation]``: move it to ``[control]``, where it lives now (both places: an error)."""
    st, co = table.get("stimulation"), table.get("control", {})
    if not (isinstance(st, Mapping) and "confidence_threshold" in st and isinstance(co, Mapping)):
        return table
    if "confidence_threshold" in co:
        raise ConfigError(f"{label}: stimulation.confidence_threshold has moved to "
                          "control.confidence_threshold; set it only in [control]")
    table = dict(table)
    table["stimulation"] = {k: v for k, v in st.items() if k != "confidence_threshold"}
    table["control"] = {"confidence_threshold": st["confidence_threshold"], **co}
    return table


def _base_for(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A preset's keys of one control policy mean nothing to another: a file that picks
    another ``control.policy`` than its base starts from an empty ``[control]``."""
    co, base_co = over.get("control"), base.get("control", {})
    if isinstance(co, Mapping) and isinstance(base_co, Mapping) and "policy" in co \
            and co["policy"] != base_co.get("policy", DEFAULT_POLICY):
        base = {k: v for k, v in base.items() if k != "control"}
    return base


# -- validation helpers ----------------------------------------------------------------------
class _Section:
    """Typed getters over one TOML table that name the key on error."""

    def __init__(self, table: Any, prefix: str, label: str) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(f"{label}: [{prefix}] must be a table")
        self.t, self.prefix, self.label = table, prefix, label
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def fail(self, key: str, value: Any, what: str) -> ConfigError:
        return ConfigError(f"{self.label}: {self._key(key)} = {value!r} {what}")

    def get(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key in self.t:
            return self.t[key]
        if default is ...:
            raise ConfigError(f"{self.label}: missing key {self._key(key)}; add it "
                              "(see the shipped presets in neuroloop/scenarios/)")
        return default

    def number(self, key: str, default: Any = ..., *, lo: float | None = None,
               hi: float | None = None, positive: bool = False, rng: Range | None = None,
               hint: str = "") -> float:
        """A finite number in ``rng`` (or in ``[lo, hi]``, ``(0, hi]`` when ``positive``)."""
        if rng is None:
            rng = Range(0.0 if positive else (-math.inf if lo is None else lo),
                        math.inf if hi is None else hi, lo_open=positive and lo is None)
        return float(check_number(f"{self.label}: {self._key(key)}", self.get(key, default),
                                  rng, hint=hint))

    def integer(self, key: str, default: Any = ..., *, lo: int | None = None,
                rng: Range | None = None, hint: str = "") -> int:
        """An integer in ``rng`` (or ``>= lo``)."""
        if rng is None:
            rng = Range(-math.inf if lo is None else lo, math.inf, integer=True)
        return int(check_number(f"{self.label}: {self._key(key)}", self.get(key, default),
                                rng, hint=hint))

    def string(self, key: str, default: Any = ...) -> str:
        v = self.get(key, default)
        if not isinstance(v, str) or not v:
            raise self.fail(key, v, "must be a non-empty string")
        return v

    def boolean(self, key: str, default: Any = ...) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, v, "must be true or false")
        return v

    def check_unknown(self, allowed_extra: tuple[str, ...] = ()) -> None:
        unknown = set(self.t) - self.used - set(allowed_extra)
        if unknown:
            k = sorted(unknown)[0]
            raise ConfigError(f"{self.label}: unknown key {self._key(k)}; "
                              f"known keys are {', '.join(sorted(self.used))}")


def scenario_from_dict(table: Mapping[str, Any], *, label: str = "<config>") -> Scenario:
    """Validate a parsed scenario table and build a :class:`Scenario`."""
    table = _move_old_control_keys(dict(table), label)
    unknown = set(table) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"{label}: unknown section [{sorted(unknown)[0]}]; "
                          f"sections are {', '.join(_SECTIONS[:-1])}")
    sc = _Section(table.get("scenario", {}), "scenario", label)
    name = sc.string("name")
    description = sc.get("description", "")
    if not isinstance(description, str):
        raise sc.fail("description", description, "must be a string (one line of text)")
    intentions = sc.get("intentions")
    if (not isinstance(intentions, list) or not 2 <= len(intentions) <= B.MAX_INTENTIONS
            or not all(isinstance(s, str) and s for s in intentions)
            or len(set(intentions)) != len(intentions)):
        raise sc.fail("intentions", intentions,
                      f"must list 2 to {B.MAX_INTENTIONS} distinct state names, rest first")
    if "rest" in intentions and intentions[0] != "rest":
        raise sc.fail("intentions", intentions, "must list \"rest\" first (or have no rest "
                      "state at all, e.g. [\"left\", \"right\"])")
    movements = [s for s in intentions if s != "rest"]  # the states that may have a program
    sc.check_unknown()

    so = _Section(table.get("source", {}), "source", label)
    url = so.string("url")
    rate = so.number("sampling_rate_hz", rng=B.SAMPLING_RATE_HZ,
                     hint="the rate of your source, e.g. 586")
    n_channels = so.integer("n_channels", rng=B.N_CHANNELS,
                            hint="the channel count of your source, e.g. 64")
    # seed and snr go to every source (the synthetic patient uses them): checked here too.
    if "seed" in so.t:
        so.integer("seed", rng=B.SEED, hint="e.g. 1")
    if "snr" in so.t:
        so.number("snr", rng=B.SNR, hint="e.g. 1.0; higher is easier")
    options = {k: v for k, v in so.t.items() if k not in ("url", "sampling_rate_hz", "n_channels")}
    source = SourceConfig(url, rate, n_channels, options)

    ds = _Section(table.get("dsp", {}), "dsp", label)
    dsp_kind = ds.get("kind", "band-power")
    if dsp_kind == "spike-band":
        dsp = _spike_band_dsp(ds, rate, n_channels, label)
        # the decoder is calibrated on features (2 per electrode per bin), not raw samples
        rate, n_channels = rate / dsp.params["bin_samples"], 2 * n_channels
    elif dsp_kind == "band-power":
        dsp = _band_power_dsp(ds, rate, n_channels)
    else:
        raise ds.fail("kind", dsp_kind, "must be \"band-power\" (ECoG/EEG) or \"spike-band\" "
                      "(intracortical)")

    de = _Section(table.get("decoder", {}), "decoder", label)
    kind = de.string("kind")
    cal_s = de.number("calibration_s", 120.0, rng=B.CALIBRATION_S, hint="e.g. 120")
    B.check_calibration_size(f"{label}: decoder.calibration_s", cal_s, rate, n_channels)
    cal_seed = de.integer("calibration_seed", 1000, rng=B.SEED, hint="e.g. 1000")
    params = {k: v for k, v in de.t.items() if k not in ("kind", "calibration_s",
                                                          "calibration_seed")}
    decoder = DecoderConfig(kind, params, cal_s, cal_seed)

    st = _Section(table.get("stimulation", {}), "stimulation", label)
    # The catalogue checks the name and the area against its geometry when the program set
    # and the limits are built (stimulation.programs, safety.effective): config stays a leaf.
    array = st.string("array", "paddle-5-6-5")
    area: float | None = None
    if st.get("contact_area_cm2", None) is not None:
        area = st.number("contact_area_cm2", positive=True)
    progs_raw = st.get("programs", [])
    if not isinstance(progs_raw, list):
        raise st.fail("programs", progs_raw, "must be an array of tables [[stimulation.programs]]")
    programs: list[ProgramConfig] = []
    for i, p in enumerate(progs_raw):
        ps = _Section(p, f"stimulation.programs[{i}]", label)
        intention = ps.string("intention")
        if intention not in movements:
            raise ps.fail("intention", intention,
                          f"is not a movement intention; use one of {', '.join(movements)}")
        cath, an = ps.get("cathodes"), ps.get("anodes", {})
        for key, m in (("cathodes", cath), ("anodes", an)):
            if not isinstance(m, Mapping) or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1
                    for v in m.values()):
                raise ps.fail(key, m, "must map contact names to fractions in (0, 1], "
                              "e.g. {E3 = 0.5, E8 = 0.5}")
        if not cath:
            raise ps.fail("cathodes", cath, "needs at least one cathode")
        amp = ps.get("amplitude_ma")
        if (not isinstance(amp, list) or len(amp) != 2
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in amp)
                or not 0 <= amp[0] <= amp[1]):
            raise ps.fail("amplitude_ma", amp, "must be [min, max] with 0 <= min <= max (mA)")
        programs.append(ProgramConfig(
            intention, dict(cath), dict(an),
            ps.number("frequency_hz", positive=True), ps.number("pulse_width_us", positive=True),
            ps.number("interphase_gap_us", 50.0, lo=0.0), (float(amp[0]), float(amp[1]))))
        ps.check_unknown()
    st.check_unknown()
    stim = StimulationConfig(array, area, tuple(programs))

    co = _Section(table.get("control", {}), "control", label)
    policy = co.string("policy", DEFAULT_POLICY)
    control = ControlConfig(policy, {k: v for k, v in co.t.items() if k != "policy"}, label)

    safety = table.get("safety", {})
    if not isinstance(safety, Mapping):
        raise ConfigError(f"{label}: [safety] must be a table")

    rt = _Section(table.get("runtime", {}), "runtime", label)
    runtime = RuntimeConfig(
        deadline_ms=rt.number("deadline_ms", 10.0, rng=B.DEADLINE_MS, hint="e.g. 10"),
        duration_s=rt.number("duration_s", 60.0, rng=B.DURATION_S,
                             hint="at most 7 days; e.g. 60"),
        status_interval_s=rt.number("status_interval_s", 0.25, rng=B.STATUS_INTERVAL_S,
                                    hint="e.g. 0.25"),
    )
    rt.check_unknown()
    return Scenario(name, description, tuple(intentions), source, dsp, decoder, stim,
                    dict(safety), runtime, path=label, raw=dict(table), control=control)


def _band_power_dsp(ds: _Section, rate: float, n_channels: int) -> DspConfig:
    """``[dsp]`` of the band-power pipeline (CAR, notch, filter bank, log power)."""
    ds.get("kind", "band-power")
    hop = ds.integer("hop_samples", rng=B.HOP_SAMPLES, hint="e.g. 100 ms of signal")
    if hop / rate > B.HOP_MAX_S:
        raise ds.fail("hop_samples", hop, f"is {hop / rate:g} s at {rate:g} Hz, longer than "
                      f"the {B.HOP_MAX_S:g} s a control cycle may last; use at most "
                      f"{int(B.HOP_MAX_S * rate)} (about 0.1 s of signal is usual)")
    if hop * n_channels > B.HOP_MAX_VALUES:
        raise ds.fail("hop_samples", hop, f"x source.n_channels = {n_channels} is {hop * n_channels} "
                      f"values per cycle, more than {B.HOP_MAX_VALUES}; use at most "
                      f"{B.HOP_MAX_VALUES // n_channels}")
    nyquist = rate / 2.0
    bands_raw = ds.get("bands_hz")
    if not isinstance(bands_raw, list) or not 1 <= len(bands_raw) <= B.MAX_BANDS:
        raise ds.fail("bands_hz", bands_raw, f"must be a list of 1 to {B.MAX_BANDS} [low, high] "
                      "pairs in Hz, e.g. [[8, 12], [13, 30]]")
    bands: list[tuple[float, float]] = []
    for b in bands_raw:
        if (not isinstance(b, list) or len(b) != 2
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in b)):
            raise ds.fail("bands_hz", b, "must be a [low, high] pair of numbers in Hz")
        lo, hi = float(b[0]), float(b[1])
        if not 0 < lo < hi:
            raise ds.fail("bands_hz", b, "must satisfy 0 < low < high")
        if hi >= nyquist:
            raise ds.fail("bands_hz", b, f"reaches the Nyquist frequency ({nyquist:g} Hz of a "
                          f"{rate:g} Hz signal); keep the upper edge below {nyquist:g} Hz")
        bands.append((lo, hi))
    order = ds.integer("filter_order", 4, rng=B.FILTER_ORDER, hint="e.g. 4")
    car = ds.boolean("car", True)
    notch_raw = ds.get("notch_hz", [])
    if not isinstance(notch_raw, list) or len(notch_raw) > B.MAX_NOTCHES or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and 0 < x for x in notch_raw):
        raise ds.fail("notch_hz", notch_raw, f"must be a list of at most {B.MAX_NOTCHES} "
                      "positive frequencies in Hz, e.g. [50.0, 100.0]")
    for f in notch_raw:
        if f >= nyquist:
            raise ds.fail("notch_hz", notch_raw, f"has {f} Hz at or above Nyquist ({nyquist:g} "
                          "Hz); drop that harmonic")
    notch_q = ds.number("notch_q", 30.0, rng=B.NOTCH_Q, hint="e.g. 30")
    features = ds.get("features", "log_power")
    if features not in DSP_FEATURES:
        raise ds.fail("features", features, f"must be one of {', '.join(DSP_FEATURES)}")
    smoothing = 1.0
    bio_channels: tuple[int, ...] | None = None
    if features == "biomarker":
        if len(bands) != 1:
            raise ds.fail("bands_hz", bands_raw, "must hold exactly one [low, high] band (the "
                          "biomarker's, e.g. [[13, 30]]) with features = \"biomarker\"")
        smoothing = ds.number("biomarker_smoothing_s", 1.0, lo=0.0, hi=600.0,
                              hint="the biomarker's smoothing time constant, e.g. 0.5")
        raw_ch = ds.get("biomarker_channels", None)
        if raw_ch is not None:
            if (not isinstance(raw_ch, list) or not raw_ch
                    or not all(isinstance(c, int) and not isinstance(c, bool)
                               and 0 <= c < n_channels for c in raw_ch)):
                raise ds.fail("biomarker_channels", raw_ch, f"must list channel indices "
                              f"0..{n_channels - 1}, e.g. [0, 1]")
            bio_channels = tuple(raw_ch)
    highpass_hz, lowpass_hz = 1.0, 0.0
    if features == "detector":
        if len(bands) != 1:
            raise ds.fail("bands_hz", bands_raw, "must hold exactly one [low, high] band with "
                          "features = \"detector\" (the bandpass detector's band)")
        highpass_hz = ds.number("highpass_hz", 1.0, rng=Range(0.0, nyquist, hi_open=True),
                                hint=f"e.g. 1.0, below Nyquist ({nyquist:g} Hz); 0 for none")
        lowpass_hz = ds.number("lowpass_hz", 0.0, rng=Range(0.0, nyquist, hi_open=True),
                               hint=f"e.g. 90, below Nyquist ({nyquist:g} Hz); 0 for none")
        if lowpass_hz and lowpass_hz <= highpass_hz:
            raise ds.fail("lowpass_hz", lowpass_hz, f"is not above dsp.highpass_hz = "
                          f"{highpass_hz:g}; raise it above the high-pass cut-off, or use 0 "
                          "for none")
    ds.check_unknown()
    return DspConfig(hop, tuple(bands), order, car, tuple(float(x) for x in notch_raw), notch_q,
                     features, smoothing, bio_channels, highpass_hz, lowpass_hz)


#: Keys of ``[dsp]`` with ``kind = "spike-band"`` (validated by :mod:`neuroloop.dsp.spikes`).
SPIKE_BAND_KEYS = ("kind", "acquisition", "bin_ms", "car", "threshold_multiplier",
                   "threshold_calibration_s", "spike_band_hz", "sbp_band_hz", "filter_order",
                   "record_raw_channels")


def _spike_band_dsp(ds: _Section, rate: float, n_channels: int, label: str) -> DspConfig:
    """``[dsp]`` of the intracortical spike-band pipeline: the bin, the acquisition mode and
    the values the user may get wrong (a bin shorter than a sample period, a threshold
    multiplier of the wrong sign) are checked here; the rest when the pipeline is built."""
    acq = ds.string("acquisition", "raw")
    if acq not in ("raw", "binned"):
        raise ds.fail("acquisition", acq, "must be \"raw\" (the host extracts features) or "
                      "\"binned\" (the implant sends bins)")
    bin_ms = ds.get("bin_ms", 20.0)
    period_ms = 1000.0 / rate
    if isinstance(bin_ms, bool) or not isinstance(bin_ms, int | float) \
            or not math.isfinite(bin_ms) or bin_ms < period_ms:
        raise ds.fail("bin_ms", bin_ms, f"is shorter than one sample period ({period_ms:.4g} "
                      f"ms at {rate:g} Hz); use at least {period_ms:.4g} ms, e.g. 20")
    if bin_ms > 1000.0 * B.HOP_MAX_S:
        raise ds.fail("bin_ms", bin_ms, f"is longer than {B.HOP_MAX_S:g} s; use e.g. 20")
    bin_samples = int(round(bin_ms / period_ms))
    mult = ds.get("threshold_multiplier", -4.5)
    if isinstance(mult, bool) or not isinstance(mult, int | float) or not math.isfinite(mult) \
            or mult == 0:
        raise ds.fail("threshold_multiplier", mult, "must be a finite negative number, e.g. "
                      "-4.5 (times the RMS)")
    if mult > 0:
        raise ds.fail("threshold_multiplier", mult, "has the wrong sign: spikes are "
                      f"negative-going, so thresholds sit below zero; use {-mult:g}")
    sub = ds.get("record_raw_channels", None)
    if sub is not None and (not isinstance(sub, list) or not sub or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n_channels for c in sub)
            or len(set(sub)) != len(sub)):
        bad = next((c for c in sub if not (isinstance(c, int) and not isinstance(c, bool)
                                           and 0 <= c < n_channels)), None) \
            if isinstance(sub, list) else sub
        raise ds.fail("record_raw_channels", sub if bad is None else bad,
                      f"is not a subset of the {n_channels} electrodes; list distinct indices "
                      f"0..{n_channels - 1}, e.g. [0, 1, 2, 3]")
    car = ds.boolean("car", True)
    order = ds.integer("filter_order", 2, rng=Range(1, 2, integer=True), hint="1 or 2")
    params: dict[str, Any] = {k: ds.t[k] for k in SPIKE_BAND_KEYS if k in ds.t and k != "kind"}
    params.update(acquisition=acq, bin_ms=float(bin_ms), bin_samples=bin_samples,
                  threshold_multiplier=float(mult), car=car, filter_order=order,
                  electrodes=n_channels, sampling_rate_hz=rate)
    ds.used.update(SPIKE_BAND_KEYS)
    ds.check_unknown()
    if acq == "binned":
        params.update(stream_channels=2 * n_channels, stream_rate_hz=rate / bin_samples)
        hop = 1
    else:
        params.update(stream_channels=n_channels, stream_rate_hz=rate)
        hop = bin_samples
    return DspConfig(hop, (), 2, car, (), 30.0, kind="spike-band", params=params)

