"""Regenerate data/example_trades.csv: a trades file for the csv_trades entry strategy.

The trades are 800 of the moving-average-cross signals (fast 20, slow 50) of the default synthetic data
set (synthetic, seed 0, 3 years of M15), written the way a user's own strategy would export
them: signal-bar time, direction, stop and target in pips. Run from the repository root:

    python scripts/make_example_trades.py [OUT]
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from exitcore.data.source_params import SynthParams
from exitcore.data.synth import generate


def example_trades() -> pd.DataFrame:
    """The example trades (deterministic)."""
    from exitcore_entries import MaCrossParams
    from exitcore_entries.strategies import ma_cross

    bars = generate(SynthParams())
    trades = ma_cross(MaCrossParams(), None)(bars).frame
    trades = trades.iloc[:: max(1, len(trades) // 800)].head(800)  # spread over the whole span
    ts = bars.frame.index[trades["signal_bar"].to_numpy()]
    return pd.DataFrame(
        {
            "time": ts.strftime("%Y-%m-%d %H:%M"),
            "direction": np.where(trades["direction"] > 0, "long", "short"),
            "stop_pips": (trades["stop_dist"] / bars.pip_size).round(1),
            "target_pips": (trades["target_dist"] / bars.pip_size).round(1),
        }
    )


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "data/example_trades.csv"
    example_trades().to_csv(out, index=False, lineterminator="\n")
    print(f"wrote {out}")
