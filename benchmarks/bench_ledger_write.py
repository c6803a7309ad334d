"""Writing a ledger CSV: its times formatted by pandas' ``date_format`` against numpy.

``write_ledger`` formats the UTC time columns with numpy before ``to_csv``
(``exitcore.evaluation.ledger_schema._utc_times_as_text``); pandas formats each value in Python.
This script builds a ledger of ``--rows`` trades with the real ledger's columns and types, writes
it to memory both ways, alternating ``--rounds`` times in one process (same machine load for
both), and checks the bytes are the same. Run: ``python benchmarks/bench_ledger_write.py`` (``--help``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import time

import numpy as np
import pandas as pd
from bench_ppo_compute import cpu_model  # the benchmarks' one way to name the machine

from exitcore.evaluation.ledger_schema import CSV_TIME_FORMAT, LEDGER_COLUMNS, _utc_times_as_text


def ledger(rows: int, seed: int = 0) -> pd.DataFrame:
    """A ledger-shaped frame of ``rows`` trades (random values of each column's kind)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2018-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.integers(0, 2 * 365 * 1440, rows)), "min")
    columns = {}
    for name, column in LEDGER_COLUMNS.items():
        if column.kind == "time":
            columns[name] = start + pd.to_timedelta(rng.integers(0, 100, rows), "min")
        elif column.kind == "float":
            columns[name] = rng.normal(0.0, 1e-3, rows)
        elif column.kind == "bool":
            columns[name] = rng.random(rows) < 0.1
        elif column.kind == "str":
            columns[name] = pd.Series(rng.choice(["HHE", "T", "HB", ""], rows), dtype="string")
        else:
            columns[name] = rng.integers(0, 100, rows)
    return pd.DataFrame(columns)


def write(frame: pd.DataFrame, by_numpy: bool) -> bytes:
    buffer = io.StringIO()
    frame = frame.assign(**_utc_times_as_text(frame)) if by_numpy else frame
    frame.to_csv(buffer, index=False, date_format=CSV_TIME_FORMAT)
    return buffer.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=230_000, help="trades in the ledger (default 230,000: an M1 test split)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    frame = ledger(args.rows)
    times: dict[str, list[float]] = {"pandas": [], "numpy": []}
    digests = set()
    for _ in range(args.rounds):
        for name in times:
            t0 = time.perf_counter()
            data = write(frame, name == "numpy")
            times[name].append(time.perf_counter() - t0)
            digests.add(hashlib.md5(data).hexdigest())
    if len(digests) != 1:
        raise SystemExit("the two ways wrote different bytes")
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"{cpu_model()}, {args.rows:,} rows, {len(data) / 2**20:.0f} MB: pandas date_format {median['pandas']:.2f} s, "
          f"numpy {median['numpy']:.2f} s ({median['pandas'] / median['numpy']:.2f}x); same bytes")
    if args.json:
        print(json.dumps({"machine": cpu_model(), "rows": args.rows, "seconds": times}))


if __name__ == "__main__":
    main()
