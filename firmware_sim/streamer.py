"""The implant's amplifier: the synthetic patient, quantised to int16, frame by frame.

The simulator owns its own seeded :class:`~neuroloop.acquisition.synthetic.SyntheticSource`
(with its own scripted intention schedule), so what it streams does not depend on the host.
Samples are quantised as ``q = clip(rint(x / uv_per_lsb), -32768, 32767)``; the host gets
``x' = q * uv_per_lsb`` back, within half a step of ``x`` unless ``x`` is beyond the int16 range.

Sample-level fault injection lives here: a stuck channel (an ADC channel that freezes at its
last value) and noise bursts (broadband interference on every channel).
"""

from __future__ import annotations

import importlib
from typing import Any, TypedDict, Unpack

import numpy as np

from neuroloop.acquisition.synthetic import SyntheticSource

from .device import StreamInfo

__all__ = ["Streamer", "PRESET_FRAMING", "PATIENTS", "patient_presets", "quantise"]

#: Default (samples per frame, uV per LSB) per preset. One frame per 59-sample control hop
#: of the bsi scenario (~100 ms), so a hop's last sample is the last sample of a frame and
#: reaches the host as soon as it is acquired; 25 samples (100 ms) at 250 Hz for EEG.
#: 0.25 uV/LSB covers +/-8192 uV (the ECoG rail is 3000 uV); 0.05 uV/LSB covers +/-1638 uV
#: (the EEG rail is 1000 uV); 0.01 uV/LSB covers +/-327 uV for the STN LFP (adbs: beta of a
#: few uV and a stimulation artifact of tens of uV).
PRESET_FRAMING: dict[str, tuple[int, float]] = {"bsi": (59, 0.25), "eeg-bci": (25, 0.05),
                                                 "adbs": (25, 0.01), "intracortical": (1, 1.0)}
#: The intracortical implant in binned mode streams one bin per frame, its values already
#: integers (crossings, spike-band power in ADC counts): one count per LSB. In raw mode it
#: streams int16 counts at the headstage gain, 30 samples (1 ms at 30 kHz) per frame.
INTRACORTICAL_RAW_FRAMING = (30, 0.195)

#: Patient models other than the :class:`SyntheticSource` presets: preset -> ``module:Class``
#: of a :class:`~neuroloop.acquisition.base.BaseSource` built as ``Class(seed=..., **opts)``
#: that has ``read_into(out, labels)``. A model that reacts to stimulation hears what the
#: output stage applies (:meth:`Streamer.apply_output`).
PATIENTS: dict[str, str] = {
    "adbs": "neuroloop.acquisition.lfp_patient:LfpPatientSource",
    "responsive": "neuroloop.acquisition.responsive:ResponsivePatient",
}


def patient_presets() -> tuple[str, ...]:
    """Every preset the simulator can stream."""
    return ("bsi", "eeg-bci", "intracortical", *PATIENTS)


def _patient(preset: str, seed: int, options: dict[str, Any]) -> Any:
    target = PATIENTS.get(preset)
    if target is None:
        return SyntheticSource(preset, seed=seed, **options)
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(seed=seed, **options)


class SourceOptions(TypedDict, total=False):
    """Keyword options of :class:`SyntheticSource` a :class:`Streamer` passes through."""

    snr: float | str
    artifact_rate_per_min: float | str | None
    line_hz: float | str | None
    duration_s: float | str | None
    segment: int | str
    patient: int | str
    max_block_samples: int | str
    n_channels: int | str | None
    sampling_rate_hz: float | str | None


def quantise(x: np.ndarray, uv_per_lsb: float, out: np.ndarray) -> np.ndarray:
    """Quantise microvolts to int16 counts into ``out`` (round half to even, saturating)."""
    q = np.rint(x / uv_per_lsb)
    np.clip(q, -32768, 32767, out=q)
    out[...] = q
    return out


class Streamer:
    """Produces DATA frame contents from the patient model.

    Parameters
    ----------
    preset : {"bsi", "eeg-bci"}
    seed : int
        Seed of the patient's data (noise, intention schedule, artifacts).
    samples_per_frame : int, optional
        Defaults to :data:`PRESET_FRAMING`.
    uv_per_lsb : float, optional
        Defaults to :data:`PRESET_FRAMING`.
    stuck_channel : int or None
        Channel whose ADC freezes at ``stuck_after_s`` of stream time.
    stuck_after_s : float
    noise_bursts_per_s : float
        Poisson rate of broadband interference bursts (50-200 ms, 500 uV rms, every channel).
    fault_seed : int
        Seeds the noise-burst process.
    source_options : dict
        Extra options for the synthetic source (``snr``, ``patient``, ...).
    """

    def __init__(self, preset: str = "bsi", seed: int = 1, *, samples_per_frame: int | None = None,
                 uv_per_lsb: float | None = None, stuck_channel: int | None = None,
                 stuck_after_s: float = 0.0, noise_bursts_per_s: float = 0.0,
                 fault_seed: int = 0, intracortical: dict | None = None,
                 **source_options: Unpack[SourceOptions]) -> None:
        self.source: Any
        if preset == "intracortical":  # the N1-scale implant: bins on the chip, or raw
            from neuroloop.acquisition.intracortical import IntracorticalSource

            ic = dict(intracortical or {})
            self.source = IntracorticalSource(ic.pop("mode", "binned"), seed=seed,
                                              snr=source_options.get("snr", 1.0), **ic)
        else:
            self.source = _patient(preset, seed, dict(source_options))
        self.source.open()
        self.reacts = bool(getattr(self.source, "reacts_to_stimulation", False))
        info = self.source.info
        spf_default, scale_default = PRESET_FRAMING.get(preset, (max(1, round(info.sampling_rate_hz
                                                                               / 10)), 0.25))
        self._prefetch = preset == "intracortical"
        #: the model runs in a thread of its own and produces when released (release_model)
        self.model_in_thread = self._prefetch
        if preset == "intracortical" and self.source.mode == "raw":
            # a DATA payload holds at most 16 KB: fewer samples per frame for many electrodes
            spf_default = max(1, min(INTRACORTICAL_RAW_FRAMING[0], 8000 // info.n_channels))
            scale_default = self.source.gain_uv
        self.spf = int(samples_per_frame or spf_default)
        if not 1 <= self.spf <= 120:
            raise ValueError(f"samples_per_frame must be 1..120, got {self.spf}")
        self.uv_per_lsb = float(uv_per_lsb or scale_default)
        if not self.uv_per_lsb > 0:
            raise ValueError("uv_per_lsb must be positive")
        n_ch = info.n_channels
        if stuck_channel is not None and not 0 <= stuck_channel < n_ch:
            raise ValueError(f"stuck channel {stuck_channel} outside 0..{n_ch - 1}")
        self.info = StreamInfo(
            sampling_rate_hz=info.sampling_rate_hz, channel_names=info.channel_names,
            channel_type=info.channel_types[0], intention_names=info.intention_names,
            samples_per_frame=self.spf, uv_per_lsb=self.uv_per_lsb)
        self._x = np.zeros((self.spf, n_ch))
        self._labels = np.zeros(self.spf, np.int8)
        self._q = np.zeros((self.spf, n_ch), dtype="<i2")
        self._stuck = stuck_channel
        self._stuck_after = int(round(stuck_after_s * info.sampling_rate_hz))
        self._stuck_value: float | None = None
        self._burst_rate = float(noise_bursts_per_s)
        self._rng = np.random.default_rng(fault_seed)
        self._burst_left = 0
        self._next_burst = self._draw_burst_gap()
        self.position = 0  # patient time generated so far, samples
        self._ready = False
        self.noise_bursts = 0

    def _draw_burst_gap(self) -> int:
        if self._burst_rate <= 0:
            return 2**62
        fs = self.info.sampling_rate_hz
        return int(self._rng.exponential(1.0 / self._burst_rate) * fs) + 1

    def skip(self, n_samples: int) -> None:
        """Let ``n_samples`` of patient time pass unrecorded (device rebooting)."""
        if self._ready:  # the prepared frame is part of the time that passed
            self._ready = False
            n_samples -= self.spf
        if self._prefetch:  # the model runs in its thread: let whole frames pass
            for _ in range(-(-max(n_samples, 0) // self.spf)):
                self._read_frame()
            self.position += max(n_samples, 0)
            return
        buf = np.empty((min(max(n_samples, 1), 4096), len(self.info.channel_names)))
        left = n_samples
        while left > 0:
            k = min(left, buf.shape[0])
            self.source.read_into(buf[:k])
            left -= k
        self.position += max(n_samples, 0)

    def apply_output(self, output: Any) -> None:
        """The output stage delivers ``output`` (a StimCommand) from now on: a patient model
        that reacts to stimulation hears it from the next frame it generates (the frame being
        prepared ahead, so one frame after the command, as the host's loop does with one hop).
        """
        if self.reacts:
            self.source.stimulation_applied(output.amplitude_ma, float(output.frequency_hz),
                                            float(output.pulse_width_us), self.position)

    def _read_frame(self) -> None:
        """The next frame's samples into ``_x``/``_labels``. The intracortical implant's
        model (30.7 M samples/s and the binning) runs in a producer thread of its own, so
        the simulator's thread stays free to answer the host."""
        if not self._prefetch:
            self.source.read_into(self._x, self._labels)
            return
        if self.source._producer is None:
            # the model refills a frame only when released (release_model): the simulator
            # does so between frames, away from the host's work on the frame just sent
            self.source.start_prefetch(self.spf, depth=16, release_when_idle=True)
        block = self.source.read(self.spf)
        if block is None:
            raise RuntimeError("the intracortical model ended")
        self._x[...] = block.data
        self._labels[...] = block.labels

    def release_model(self) -> None:
        """Let the intracortical model's thread produce the frames taken since the last call.

        The simulator calls it a fraction of a frame period after each frame
        (:data:`~firmware_sim.sim.MODEL_PHASE`), or at once when the model is behind: a real
        implant computes its bins on its own chip, and on a shared machine the model's
        30.7 M samples/s would otherwise be computed just as the host decodes the frame and
        closes its loop, on the same cores. No-op for the other presets.
        """
        if self._prefetch:
            self.source.idle()

    def frame_ready(self) -> bool:
        """True when the next frame can be had without waiting for the patient model (always,
        except when the intracortical model, in its own thread, is behind real time)."""
        if self._ready or not self._prefetch:
            return True
        producer = self.source._producer
        return producer is None or producer.ready

    def prepare(self) -> None:
        """Generate the next frame ahead of its due time (so sending it costs no compute)."""
        if not self._ready:
            self._read_frame()
            self._inject(self._x)
            self.position += self.spf
            quantise(self._x, self.uv_per_lsb, self._q)
            self._ready = True

    def next_frame(self) -> tuple[np.ndarray, np.ndarray]:
        """The next frame: (samples (spf, n_channels) int16, labels (spf,) int8).

        The arrays are reused by the next call; the device encodes them at once.
        """
        self.prepare()
        self._ready = False
        return self._q, self._labels

    def _inject(self, x: np.ndarray) -> None:
        first = self.position
        if self._stuck is not None:
            for i in range(x.shape[0]):
                if first + i >= self._stuck_after:
                    if self._stuck_value is None:
                        self._stuck_value = float(x[i - 1, self._stuck]) if i else \
                            float(x[i, self._stuck])
                    x[i, self._stuck] = self._stuck_value
        if self._burst_rate > 0:
            fs = self.info.sampling_rate_hz
            for i in range(x.shape[0]):
                if self._burst_left == 0:
                    self._next_burst -= 1
                    if self._next_burst <= 0:
                        self._burst_left = int(self._rng.uniform(0.05, 0.2) * fs)
                        self.noise_bursts += 1
                        self._next_burst = self._draw_burst_gap()
                if self._burst_left > 0:
                    x[i] += 500.0 * self._rng.standard_normal(x.shape[1])
                    self._burst_left -= 1
