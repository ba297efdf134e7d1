"""Seeing a session: figures and the `report` of a recording, and the live view (`run --monitor`).

Figures are drawn with matplotlib (Agg); `metric_grid` is the one figure that `compare`,
`evaluate` and `sweep` share.
"""
