"""Figures and reports made from recordings, summaries and result tables (matplotlib, Agg)."""
