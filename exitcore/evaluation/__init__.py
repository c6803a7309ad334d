"""Evaluation: the trade ledger, its metrics, and their statistical significance (design.md §7).

* :mod:`exitcore.evaluation.ledger_schema` — the ledger's columns (the contract between whoever
  produces a ledger and everything that reads one), validation, CSV/Parquet round trips;
* :mod:`exitcore.evaluation.metrics` — every metric, defined once, with its formula;
* :mod:`exitcore.evaluation.significance` — block bootstrap intervals, probabilistic and
  deflated Sharpe ratios, paired RL-vs-baseline differences;
* :mod:`exitcore.evaluation.jsonable` — strict JSON for results that contain NaN or infinity.

Importing this package imports nothing heavy; each module imports numpy/pandas itself.
"""
