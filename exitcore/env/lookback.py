"""Check that every feature reads no further back than the ``lookback`` it declares.

A feature's lookback sets the purge gap between the time splits (``max_bars + lookback``,
:mod:`exitcore.data.splits`): a test trade's observations may then only read bars of the test
split. A feature that reads further back than it declares silently shrinks that gap, and its
test observations carry bars from the gap or from the training split.

For a decision at bar ``b`` and a feature declaring lookback ``L``, the prices (open, high,
low, close) and the engine's ATR series of every bar **before** ``b - L`` are poisoned (NaN, or
:data:`HUGE_FACTOR` times their value: "huge"), the feature is **rebuilt from its factory** on
that market (so a statistic fitted in ``build`` over all history is caught too) and recomputed
for the same decision state; its columns must agree to a relative :data:`RTOL` (plus
:data:`ATOL`). Not bit-identity, and not 1e6 as the future's poisoning: pandas' rolling
statistics keep float64 running sums in which every value that passed through the window
leaves a rounding trace: after prices of 1e6 a changed result (a z-score of -1.8 read -0.3),
after twice the prices still 1e-5 of a short window's, where reading one poisoned bar changes a
value by a large fraction. What the engine hands every feature is left as
it is: the decision state (``state.atr``, the ATR at the decision bar, included) and the
bar times. The look-ahead audit runs this next to the future poisoning of
:mod:`exitcore.env.causality`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch

from exitcore.data.progress import counter as progress_counter
from exitcore.env.causality import UNSTABLE_WORDS, Leak, fixed_rng
from exitcore.env.poisoning import HUGE_FACTOR, PAST_MODES
from exitcore.env.state import EnvState
from exitcore.errors import describe_exception

_POISONED_FIELDS = ("open", "high", "low", "close", "atr")
#: relative and absolute difference a recomputed column may show (running-sum rounding: at most
#: about 1e-6 of a pandas rolling z-score's value, windows of 3 to 500 bars, prices x 1.1);
#: reading a poisoned bar moves a value by far more
RTOL, ATOL = 1e-5, 1e-7


def poison_market_before(market: Any, before: int, mode: str) -> Any:
    """``market`` with the prices and ATR of every bar before position ``before`` poisoned by ``mode``."""
    if mode not in PAST_MODES:
        raise ValueError(f"unknown past poisoning {mode!r}; use one of {PAST_MODES}")
    poisoned = {}
    for name in _POISONED_FIELDS:
        t = getattr(market, name).clone()
        if mode == "nan":
            t[: max(before, 0)] = float("nan")
        else:
            t[: max(before, 0)] *= HUGE_FACTOR
        poisoned[name] = t
    return attrs.evolve(market, **poisoned)


def probe_lookback(assembled: Any, rows: Sequence[EnvState], modes: Sequence[str] = PAST_MODES) -> list[Leak]:
    """Recompute every feature of ``assembled`` for each one-row decision state in ``rows``
    with the bars before its declared lookback poisoned by each of ``modes`` (see module doc).

    Returns one :class:`Leak` of kind ``"lookback"`` per differing column, or per feature that
    fails to build or compute on the poisoned market. Features whose lookback reaches the first
    bar are not probed for that decision: there is nothing before it to poison.
    """
    comps = assembled.components
    # built in this order by build_components: the i-th factory made the i-th feature
    features = list(zip(assembled.resolved.features, comps.features, comps.feature_specs))
    found_by_feature: dict[int, list[Leak]] = {}
    bounded: dict[int, int] = {}  # feature -> farthest reach seen that stops short of the first bar
    to_first: dict[int, int] = {}  # feature -> latest decision bar at which it read back to bar 0
    unstable: list[Leak] = []  # features that differ when rebuilt on the unpoisoned bars
    tick = progress_counter("checked the lookbacks at {done} of {total} decisions", len(rows))
    for done, row in enumerate(rows, start=1):
        bar, trade, k = int(row.bar[0]), int(row.trade[0]), int(row.k[0])
        for i, (factory, named, spec) in enumerate(features):
            before = bar - spec.lookback
            if before <= 0:
                continue
            original = spec.compute(assembled.market, row)[0]
            recompute = _recompute(assembled, factory, row)
            found, exposed_by = _row_findings(recompute, original, named, spec, modes, before, trade, k, bar)
            if not exposed_by:
                continue
            # Random draws differ on every rebuild: compare under one seed of the global generators,
            # so that only the bars can make the feature differ (exitcore/env/causality.py).
            seeded = _seeded(recompute)
            try:
                control = seeded(0, exposed_by)
            except Exception:  # noqa: BLE001 - it computed on these bars before: keep the findings
                control = None
            if control is not None and not _same(control, original):
                again = _control_differences(seeded, control, named, spec, trade, k, bar)
                if again:  # differs on the same bars even so: state kept between calls, untestable
                    unstable.extend(again)
                    continue
                original, recompute = control, seeded
                found, exposed_by = _row_findings(recompute, original, named, spec, modes, before, trade, k, bar)
                if not exposed_by:
                    continue  # random, but reads no further back than it declares
            found_by_feature.setdefault(i, []).extend(found)
            far = bounded.get(i, 0)
            if spec.lookback < far < bar and _unchanged(recompute, original, bar - far, exposed_by):
                continue  # reads no farther here than already seen: no bisection needed
            here = _reach(recompute, original, bar, spec.lookback, exposed_by)
            if here < bar:
                bounded[i] = max(far, here)
            else:  # to the first bar here; near the start of the data a rolling window does that too
                to_first[i] = max(to_first.get(i, 0), bar)
        tick(done)
    # what to declare is only known from the decisions sampled: the farthest of them, a minimum
    leaks: list[Leak] = list(unstable)
    for i, found in found_by_feature.items():
        if not found:
            continue
        n = len({(f.trade, f.k) for f in found})
        if i in bounded:  # a bounded reach somewhere: the first-bar hits were early decisions
            words = _reach_words(max(bounded[i], to_first.get(i, 0)), n)
            leaks.extend(attrs.evolve(f, detail=f"{f.detail}; {words}") for f in found)
        else:  # every decision found read back to bar 0: each finding says how far that is from it
            leaks.extend(attrs.evolve(f, detail=f"{f.detail}; {_unbounded_words(f.bar)}") for f in found)
    return leaks


def _recompute(assembled: Any, resolved_feature: Any, row: EnvState) -> Any:
    """``recompute(before, mode)``: the feature rebuilt on the market poisoned before ``before``, for ``row``."""

    def recompute(before: int, mode: str) -> torch.Tensor:
        market = poison_market_before(assembled.market, before, mode)
        spec = resolved_feature.build(attrs.evolve(assembled.ctx, market=market))
        return spec.compute(market, row)[0]

    return recompute


def _row_findings(recompute: Any, original: torch.Tensor, named: Any, spec: Any, modes: Sequence[str], before: int,
                  trade: int, k: int, bar: int) -> tuple[list[Leak], str | None]:
    """The feature's differences at one decision with the bars before ``before`` poisoned by
    each mode, and the first mode that exposed one (None: none did)."""
    found: list[Leak] = []
    exposed_by = None
    for mode in modes:
        try:
            values = recompute(before, mode)
        except Exception as exc:  # noqa: BLE001 - needing those bars is the finding
            here = [Leak(mode, trade, k, bar, "lookback", f"{named.name} [{named.origin}]",
                         f"fails (declares lookback {spec.lookback}): {describe_exception(exc)}")]
        else:
            here = _column_differences(original, values, named, spec, mode, trade, k, bar)
        if here:
            found.extend(here)
            exposed_by = exposed_by or mode
    return found, exposed_by


def _seeded(recompute: Any) -> Any:
    """``recompute`` run with the global random generators seeded alike each time."""

    def seeded(before: int, mode: str) -> torch.Tensor:
        with fixed_rng():
            return recompute(before, mode)

    return seeded


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical float32 columns (NaN equal to itself)."""
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.view(torch.int32), b.view(torch.int32)))


def _unchanged(recompute: Any, original: torch.Tensor, before: int, mode: str) -> bool:
    """Whether poisoning the bars before ``before`` by ``mode`` leaves the feature as it was."""
    try:
        values = recompute(before, mode)
    except Exception:  # noqa: BLE001 - failing means it reads those bars
        return False
    return values.shape == original.shape and values.dtype == original.dtype and not bool(_moved(original, values).any())


def _moved(original: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per column, whether ``values`` differs from ``original`` by more than :data:`RTOL` of the
    larger plus :data:`ATOL` (NaN against a number is a difference, NaN against NaN is not; an
    infinity equals only itself)."""
    a, b = original.to(torch.float64), values.to(torch.float64)
    nan_a, nan_b = torch.isnan(a), torch.isnan(b)
    finite = torch.isfinite(a) & torch.isfinite(b)
    far = (a - b).abs() > RTOL * torch.maximum(a.abs(), b.abs()) + ATOL
    return (nan_a != nan_b) | torch.where(finite, far, ~nan_a & ~nan_b & (a != b))


def _reach(recompute: Any, original: torch.Tensor, bar: int, declared: int, mode: str) -> int:
    """The fewest bars back whose poisoning by ``mode`` leaves the feature unchanged, by bisection.

    Poisoning before ``bar - declared`` changes it and poisoning nothing (``bar`` bars back)
    cannot, so the answer lies in ``(declared, bar]``; ``bar`` means it reads the first bar.
    """
    lo, hi = declared, bar  # unchanged at lo is False, at hi True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _unchanged(recompute, original, bar - mid, mode):
            hi = mid
        else:
            lo = mid
    return hi


def _unbounded_words(bar: int) -> str:
    """For a finding at decision bar ``bar`` that reads back to bar 0: its own distance, the one
    a report shows beside it (the farthest of the decisions checked was cited beside an earlier one)."""
    return (f"it reads back to the first bar of the data ({bar:,} bars before this decision): no purge gap can "
            f"separate that from the training split; use a rolling window and declare its length")


def _reach_words(reach: int, n_decisions: int) -> str:
    return (f"it reads at least {reach} bar{'s' if reach > 1 else ''} back (the farthest of the "
            f"{n_decisions} decision(s) checked that read past its lookback): declare lookback >= {reach}, "
            f"or the farthest it can reach if that depends on the decision (back to a trade's signal bar: max_bars)")


def _control_differences(recompute: Any, original: torch.Tensor, named: Any, spec: Any, trade: int, k: int,
                         bar: int) -> list[Leak]:
    """``"unstable"`` findings for the columns that differ when the feature is rebuilt on the
    unpoisoned market (nothing before bar 0 to poison)."""
    try:
        values = recompute(0, PAST_MODES[0])
    except Exception:  # noqa: BLE001 - it computed on these bars before: leave the finding as it is
        return []
    return [attrs.evolve(f, kind="unstable", component=f"feature {f.component}",
                         detail=f"{f.detail.split(' (declares')[0]}: {UNSTABLE_WORDS}")
            for f in _column_differences(original, values, named, spec, "control", trade, k, bar)]


def _column_differences(original: torch.Tensor, values: torch.Tensor, named: Any, spec: Any, mode: str,
                        trade: int, k: int, bar: int) -> list[Leak]:
    if values.shape != original.shape or values.dtype != original.dtype:
        return [Leak(mode, trade, k, bar, "lookback", f"{named.name} [{named.origin}]",
                     f"returns shape {tuple(values.shape)} {values.dtype} instead of {tuple(original.shape)} {original.dtype}")]
    differ = torch.nonzero(_moved(original, values)).flatten().tolist()
    return [Leak(mode, trade, k, bar, "lookback", f"{named.name}.{spec.names[c]} [{named.origin}]",
                 f"{float(original[c])!r} became {float(values[c])!r} (declares lookback {spec.lookback})")
            for c in differ]
