"""exitcore observation features.

Causal features (bars ``<= state.bar`` and the position state only):

* ``position`` - net unrealized PnL (percent), bars held (k / max_bars), remaining size,
  partial-taken and breakeven flags, direction, distance to the stop and to the target in
  ATR units.
* ``price_window`` - the last ``window`` close-to-close moves and the decision bar's range,
  in ATR units and signed by the trade direction (positive = in the trade's favour).
* ``time_of_day`` - sine and cosine of the decision bar's close time (UTC).

And one deliberately broken feature:

* ``leaky_next_move`` - the *next* bar's close-to-close move (signed, in ATR). It is the
  research log's v3 look-ahead bug, kept so ``compare v3 v4`` and the audit can show what the
  bug did. Never use it in a real experiment.
"""

from __future__ import annotations

import attrs

from exitcore import hookimpl
from exitcore.components import lazy
from exitcore.params import positive_int


@attrs.frozen
class WindowParams:
    """``window``: how many past close-to-close moves to include."""

    window: int = attrs.field(default=16, validator=positive_int)


def _lazy(name):
    return lazy(f"exitcore_features.compute:{name}")


@hookimpl
def register_features(register):
    """Register the shipped features."""
    register("position", _lazy("position"), description="upnl, bars held, size, flags, direction, stop/target distance in ATR")
    register("price_window", _lazy("price_window"), params=WindowParams,
             description="last `window` close moves and the bar range, in ATR, signed by direction")
    register("time_of_day", _lazy("time_of_day"), description="sin/cos of the decision bar's UTC close time")
    register("leaky_next_move", _lazy("leaky_next_move"),
             description="LEAKY (v3's bug): the next bar's move; for demonstrating the audit only")
