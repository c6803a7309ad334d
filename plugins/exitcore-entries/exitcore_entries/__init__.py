"""exitcore entry strategies: the classical strategy whose trades the agent manages.

Every strategy follows the timeline contract (design.md §2): it decides at the close of a
signal bar ``s`` from bars ``<= s`` only, the engine fills the trade at the open of ``s + 1``,
and the initial stop and target distances come from information ``<= s``.

* ``donchian`` - channel breakout. Long when the close of ``s`` is above the highest high of
  the ``period`` bars before ``s``, short when below their lowest low; only on the *first* bar
  of a breakout (the bar before was still inside its own channel), so a trend gives one
  signal, not one per bar. Optionally ``cooldown``: a signal is dropped when another breakout
  (either side) happened in the ``cooldown`` bars before it.
* ``ma_cross`` - moving-average cross. Long on the bar where the fast average closes above the
  slow one (it was at or below on the bar before), short on the opposite cross.
* ``csv_trades`` - your own strategy's trades from a CSV file: a time, a direction and
  optionally stop and target distances (see ``docs/data.md``).

``donchian`` and ``ma_cross`` set the stop at ``stop_atr`` and the target at ``target_atr``
times Wilder's ATR(``atr_period``) at the signal bar (defaults 1.5 and 3.0 x ATR(14)).

This module only registers; the strategies are imported when an experiment builds them, so
the CLI stays free of pandas and torch.
"""

from __future__ import annotations

import attrs

from exitcore import hookimpl
from exitcore.components import lazy
from exitcore.data.clocks import validate_clock
from exitcore.params import FieldError, non_empty_str, non_negative_int, one_of, positive, positive_int

_DIRECTIONS = one_of(["both", "long", "short"])


def _at_least_two(_inst, attribute, value):
    if not isinstance(value, int) or value < 2:
        raise FieldError(attribute.name, f"expected an integer >= 2, got {value!r}")


@attrs.frozen
class DonchianParams:
    """Channel breakout with ATR-based stop and target."""

    #: channel length: the breakout level is the extreme of the `period` bars before the signal bar
    period: int = attrs.field(default=20, validator=_at_least_two)
    atr_period: int = attrs.field(default=14, validator=positive_int)
    stop_atr: float = attrs.field(default=1.5, validator=positive)
    target_atr: float = attrs.field(default=3.0, validator=positive)
    #: "both", "long" or "short"
    direction: str = attrs.field(default="both", validator=_DIRECTIONS)
    #: drop a signal when another breakout happened in the `cooldown` bars before it (0: off)
    cooldown: int = attrs.field(default=0, validator=non_negative_int)


@attrs.frozen
class MaCrossParams:
    """Moving-average cross with ATR-based stop and target."""

    fast: int = attrs.field(default=20, validator=positive_int)
    slow: int = attrs.field(default=50, validator=_at_least_two)
    #: "sma" (simple) or "ema" (exponential, span = length)
    kind: str = attrs.field(default="sma", validator=one_of(["sma", "ema"]))
    atr_period: int = attrs.field(default=14, validator=positive_int)
    stop_atr: float = attrs.field(default=1.5, validator=positive)
    target_atr: float = attrs.field(default=3.0, validator=positive)
    direction: str = attrs.field(default="both", validator=_DIRECTIONS)

    def __attrs_post_init__(self) -> None:
        if self.fast >= self.slow:
            raise FieldError("fast", f"expected fast < slow ({self.slow}), got {self.fast}")


@attrs.frozen
class CsvTradesParams:
    """Trades of your own strategy, from a CSV file."""

    path: str = attrs.field(validator=non_empty_str)
    #: column holding the time of each trade
    time_column: str = attrs.field(default="time", validator=non_empty_str)
    #: "signal": the open timestamp of the signal bar (the trade fills at the next bar's open);
    #: "entry": the open timestamp of the entry bar (the signal bar is the bar before it)
    time_is: str = attrs.field(default="signal", validator=one_of(["signal", "entry"]))
    #: strptime format of the times; "" = ISO 8601
    time_format: str = ""
    #: clock of naive times (offsets written in the times win)
    timezone: str = attrs.field(default="UTC", validator=validate_clock)
    #: +1/-1, long/short or buy/sell
    direction_column: str = attrs.field(default="direction", validator=non_empty_str)
    #: optional columns with the stop and target distances; "" = stop_atr/target_atr x ATR
    stop_column: str = ""
    target_column: str = ""
    #: unit of the distance columns: "price", "pips" or "atr" (multiples of ATR at the signal bar)
    distance_unit: str = attrs.field(default="price", validator=one_of(["price", "pips", "atr"]))
    atr_period: int = attrs.field(default=14, validator=positive_int)
    stop_atr: float = attrs.field(default=1.5, validator=positive)
    target_atr: float = attrs.field(default=3.0, validator=positive)
    sep: str = ","


def _build(name):
    return lazy(f"exitcore_entries.strategies:{name}")


@hookimpl
def register_entry_strategies(register):
    """Register the shipped entry strategies."""
    register(
        "donchian",
        _build("donchian"),
        params=DonchianParams,
        description="Donchian channel breakout (first breakout bar only), stop/target in ATR",
    )
    register(
        "ma_cross",
        _build("ma_cross"),
        params=MaCrossParams,
        description="moving-average cross (SMA or EMA), stop/target in ATR",
    )
    register(
        "csv_trades",
        _build("csv_trades"),
        params=CsvTradesParams,
        description="your own trades from a CSV file (time, direction, optional stop/target)",
    )
