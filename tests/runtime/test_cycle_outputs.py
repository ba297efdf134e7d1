"""The cycle record carries the decoder's continuous outputs (``DecoderOutput.values``)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from neuroloop.decoders.base import DecoderOutput
from neuroloop.records import FLAG_SOURCE_STALL, LoopListener, cycle_dtype
from neuroloop.runtime.cycle_record import CycleRecordWriter
from neuroloop.runtime.loop import FaultHooks
from neuroloop.runtime.session import RunOptions, Session
from neuroloop.stimulation.command import StimCommand


class _Outputs(FaultHooks):
    """Keeps what the decoder output of each cycle held (and stalls cycles 20..24)."""

    def __init__(self) -> None:
        self.values: dict[int, np.ndarray] = {}

    def stall(self, cycle: int) -> bool:
        return 20 <= cycle < 25

    def alter_intention(self, cycle: int, intention: DecoderOutput) -> bool:
        self.values[cycle] = intention.values.copy()
        return False


class _Rows(LoopListener):
    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def on_cycle(self, record: np.ndarray) -> None:
        self.rows.append(record.copy())


def test_loop_records_the_decoder_outputs_and_nan_when_stalled(small_bsi, bsi_decoder_file):
    hooks, spy = _Outputs(), _Rows()
    s = Session(small_bsi, RunOptions(fast=True, decoder_path=bsi_decoder_file,
                                      duration_s=6.0, listeners=[spy], hooks=hooks))
    loop = s.open()
    schema = s.decoder.output_schema_
    assert schema.n_outputs == 3
    assert loop.dtype == cycle_dtype(s.pipeline.n_features, len(small_bsi.intention_names),
                                     s.programs.array.n_contacts, schema.n_outputs)
    s.run()
    rows = np.concatenate(spy.rows)
    stalled = (rows["flags"] & FLAG_SOURCE_STALL) != 0
    assert np.flatnonzero(stalled).tolist() == list(range(20, 25))
    assert np.isnan(rows["outputs"][stalled]).all()
    for k in np.flatnonzero(~stalled):
        np.testing.assert_array_equal(rows["outputs"][k], hooks.values[int(k)])
    assert np.isfinite(rows["outputs"][~stalled & (rows["valid"] == 1)]).all()


def test_writer_copies_outputs_into_its_row_without_allocating():
    w = CycleRecordWriter(4, 3, 2, 2)
    out = DecoderOutput(state=1, raw_state=1, probabilities=np.array([0.2, 0.7, 0.1]),
                        confidence=0.7, values=np.array([0.7, -3.25]))
    feats = np.arange(4.0)
    off = StimCommand.off(2)
    kw = dict(first_sample=0, flags=0, available_ns=0, now_ns=0, sent_ns=0, compute_ns=0,
              e2e_ns=0, true_state=1, features=feats, request=off, command=off,
              supervisor_state=1, n_events=0)
    for k in range(50):  # warm
        w.fill(cycle=k, output=out, **kw)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for k in range(500):
            record = w.fill(cycle=k, output=out, **kw)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 512 and peak - before < 1024
    assert record["outputs"][0].tolist() == [0.7, -3.25]
    out.values[0] = 0.5  # the decoder overwrites its output: the row keeps the copy
    assert record["outputs"][0, 0] == 0.7
    record = w.fill(cycle=500, output=None, **kw)  # a stalled cycle
    assert np.isnan(record["outputs"][0]).all()
