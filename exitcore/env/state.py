"""The position state every environment component sees: one row per environment.

Plugins (features, masks, guards, reward terms) receive :class:`EnvState` objects. Every field
is a tensor of shape ``[N]`` on the environment's device. The *decision* fields describe the
position at the close of the decision bar and are causal (they depend on bars ``<= bar``
only); the *step* fields are filled in the ``after`` state handed to reward terms and
describe what happened in the step. Prices are float64.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(slots=True)
class EnvState:
    """Position state of N environments (see docs/environment.md for the exact semantics)."""

    # --- which trade and when -----------------------------------------------------------
    trade: torch.Tensor  #: int64 row in the TradeTable
    bar: torch.Tensor  #: int64 decision bar (its close is "now"); = entry_bar + k
    k: torch.Tensor  #: int64 decision index, 0 at the close of the entry bar
    # --- the position -------------------------------------------------------------------
    direction: torch.Tensor  #: float64 +1 long, -1 short
    entry_open: torch.Tensor  #: float64 open of the entry bar
    entry_price: torch.Tensor  #: float64 entry fill (open plus costs)
    stop: torch.Tensor  #: float64 current stop level (never loosens)
    target: torch.Tensor  #: float64 target level
    size: torch.Tensor  #: float64 remaining size, 1.0 at entry
    realized: torch.Tensor  #: float64 net PnL realized so far (fraction of entry, all closes)
    realized_gross: torch.Tensor  #: float64 gross PnL realized so far
    costs_paid: torch.Tensor  #: float64 costs paid so far (fraction of entry)
    partial_taken: torch.Tensor  #: bool a partial exit was taken
    at_breakeven: torch.Tensor  #: bool the stop is at or beyond breakeven
    # --- what is known at the decision close --------------------------------------------
    price: torch.Tensor  #: float64 close of the decision bar
    upnl: torch.Tensor  #: float64 net PnL per unit if the position were closed now
    atr: torch.Tensor  #: float64 ATR at the decision bar
    # --- bookkeeping for the ledger -----------------------------------------------------
    n_stop_moves: torch.Tensor  #: int64 times the stop moved
    n_partials: torch.Tensor  #: int64 partial exits taken
    n_blocked: torch.Tensor  #: int64 decisions whose action a guard blocked
    ambiguous: torch.Tensor  #: bool the exit bar touched both stop and target
    exit_bar: torch.Tensor  #: int64 bar on which the trade ended (valid where done)
    exit_level: torch.Tensor  #: float64 level of the final close (valid where done)
    # --- the step (meaningful in the `after` state given to reward terms) ----------------
    done: torch.Tensor  #: bool the episode has ended
    exit_reason: torch.Tensor  #: int64 exitcore.timeline.ExitReason (OPEN while running)
    action: torch.Tensor  #: int64 action executed in the step (after guards)
    blocked: torch.Tensor  #: bool the sampled action was blocked by a guard in the step
    step_gross: torch.Tensor  #: float64 gross PnL realized in the step
    step_cost: torch.Tensor  #: float64 costs paid in the step
    step_mtm: torch.Tensor  #: float64 change of the open position's gross mark-to-market

    @property
    def n(self) -> int:
        """Number of environments."""
        return int(self.trade.shape[0])

    @property
    def bars_held(self) -> torch.Tensor:
        """Bars the position has been exposed to (through the decision bar, or the exit bar)."""
        last = torch.where(self.done, self.exit_bar, self.bar)
        return last - (self.bar - self.k) + 1

    def tensors(self) -> dict[str, torch.Tensor]:
        """All fields by name (for checkpoints and debugging)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_tensors(cls, data: dict[str, torch.Tensor]) -> EnvState:
        """Inverse of :meth:`tensors`."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    # ------------------------------------------------------------------ packed form
    # The environment keeps hot copies of many states (a fresh state per trade for auto-reset)
    # as three row-major tables, one per dtype: selecting or merging whole rows is then one
    # operation per table instead of one per field. Plugins only ever see named fields.

    def pack(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(float64 [N, F], int64 [N, I], bool [N, B])`` with the fields in declaration order."""
        groups: dict[torch.dtype, list[torch.Tensor]] = {torch.float64: [], torch.int64: [], torch.bool: []}
        for f in fields(self):
            value = getattr(self, f.name)
            groups[value.dtype].append(value)
        return tuple(torch.stack(groups[dt], dim=1) for dt in (torch.float64, torch.int64, torch.bool))  # type: ignore[return-value]

    @classmethod
    def layout(cls, like: EnvState) -> dict[str, tuple[int, int]]:
        """``{field: (table, column)}`` of :meth:`pack` for states shaped like ``like``."""
        order = {torch.float64: 0, torch.int64: 1, torch.bool: 2}
        counts = [0, 0, 0]
        out = {}
        for f in fields(cls):
            table = order[getattr(like, f.name).dtype]
            out[f.name] = (table, counts[table])
            counts[table] += 1
        return out

    @classmethod
    def unpack(cls, tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], layout: dict[str, tuple[int, int]]) -> EnvState:
        """A state whose fields are column views of packed ``tables`` (inverse of :meth:`pack`)."""
        return cls(**{name: tables[t][:, c] for name, (t, c) in layout.items()})

    def where(self, cond: torch.Tensor, other: EnvState) -> EnvState:
        """Row-wise select: ``self`` where ``cond``, else ``other``."""
        return EnvState(
            **{f.name: torch.where(cond, getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        )
