"""Seeing a session: figures and the `report` of a recording, and the live view (`run --monitor`).

Figures are drawn with matplotlib (Agg, object API); `metric_grid` is the one figure that
`compare`, `evaluate` and `sweep` share.

========================  ===================================================================
module                    job
========================  ===================================================================
``report``                ``neuroloop report DIR``: the self-contained HTML page
``figures``               one function per figure of a recording
``session_data``          the columns a report draws, read in chunks; decimation
``layout``                the electrode array as drawn (report and page)
``link_log``              device runs: the link's counters over time (``DIR/link.jsonl``)
``address``               ``--monitor [HOST:]PORT``: parse and bind before anything slow
``channel``               the shared-memory channel between the loop and the server
``publisher``             the loop's side: a listener that only copies; the operator's STOP
``server``                the web server process (uvicorn + starlette + websockets)
``live``                  what ``run --monitor`` wires together
``bench``                 ``neuroloop bench monitor``
``static/``               the page: HTML, CSS and its canvas-drawing JavaScript
========================  ===================================================================
"""
