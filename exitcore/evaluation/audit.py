"""The look-ahead audit: prove the timeline contract for an experiment (design.md §2).

For a sample of the policy's decisions on the evaluated split, the audit recomputes what the
agent's side of the environment saw — the observation, the action mask, every guard's decision
for every action — **and the policy's action**, after the bars after the decision are
(a) truncated and (b) poisoned with NaN, huge prices and an unrelated random walk, with every
component rebuilt from its factory on the poisoned bars (:mod:`exitcore.env.causality`). Any
difference is a leak, named by the feature column or the plugin responsible, with the first
offending decision (trade, decision index, time). The engine is checked too: each sampled
trade is replayed on the poisoned bars with the policy's actions, and the position state the
environment computes must be bit-identical at every decision up to the sampled one.

It also checks the **entries**: the entry strategy is re-run on bars truncated (and poisoned)
right after each sampled trade's signal bar ``s`` and must produce the same trades up to ``s``
(signal bar, direction, stop and target distances, bit for bit); and every trade must be filled
at the open of ``s + 1`` (``entry_bar == s + 1``, ``entry_open == open[s + 1]``, the fill being
the open plus costs). Features, masks, guards and the entry strategy are also built (and the
strategy run) once more on bars NaN from the middle on, and must not still hold the per-bar
(or, for the strategy, per-trade) arrays their first build held: a module-level cache would
serve the clean table to every poisoned rebuild (:func:`check_held_state`, :func:`check_entry_state`).

It checks every feature's declared **lookback** (which sets the purge gap between the
splits): the same decisions are recomputed with the bars before each feature's lookback
poisoned (:mod:`exitcore.env.lookback`), and a feature that reads them fails the audit too.

Finally it flags out-of-sample results that are **too good to be true** (:data:`SUSPECT_RULES`),
for a run whose test metrics are known. A leak can hide from a sampled audit (it may act only
on some bars); implausible numbers are the other half of the evidence.

Verdicts and the exit status of ``exitcore audit`` (:data:`EXIT_CODES`): ``PASS`` (0) no leak and
nothing suspect; ``FAIL`` (1) a leak was found; ``SUSPECT`` (3) no leak found in the sample, but
the results break a plausibility rule. Bad input (unknown experiment, unreadable run) is a user
error, status 2, like every other command. A failing audit is a finding about the experiment,
not a mistake in the command, hence a status of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch

from exitcore.actions import ACTION_NAMES, HOLD, N_ACTIONS
from exitcore.data.progress import counter as progress_counter
from exitcore.env.causality import POISON_MODES, Leak, fixed_rng, poison_bars, probe_decisions, state_row
from exitcore.env.lookback import PAST_MODES, probe_lookback
from exitcore.env.state import EnvState
from exitcore.errors import describe_exception
from exitcore.evaluation.ledger import play, policy_actor, trade_rows, trade_rows_numpy
from exitcore.evaluation.audit_text import Finding, _mode_order, format_audit
from exitcore.evaluation.metrics import split_label
from exitcore.threads import one_torch_thread
from exitcore.words import plural

#: exit status of ``exitcore audit`` per verdict (2 stays "bad input", as for every command)
EXIT_CODES: Mapping[str, int] = {"PASS": 0, "FAIL": 1, "SUSPECT": 3}
#: findings listed in full in a report (every culprit is always listed)
MAX_LISTED = 20


# --------------------------------------------------------------------------- plausibility rules


@attrs.frozen
class SuspectRule:
    """A plausibility rule on out-of-sample metrics: ``test(metrics)`` true means suspect."""

    name: str
    rule: str  #: the threshold, in words
    why: str
    test: Callable[[Mapping[str, Any]], bool]


def _num(metrics: Mapping[str, Any], key: str) -> float:
    v = metrics.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


#: fewer out-of-sample trades than this cannot support a plausibility verdict either way
MIN_TRADES_FOR_RULES = 30

SUSPECT_RULES: tuple[SuspectRule, ...] = (
    SuspectRule(
        "win_rate_short_trades",
        "win rate > 80 % with trades held < 5 bars on average",
        "v3's signature (97 % wins at 1.3 bars): exits that quick are close to coin flips on the next "
        "bar's move, so winning 4 in 5 of them out of sample means the exits know that move",
        lambda m: _num(m, "win_rate") > 0.80 and _num(m, "avg_bars") < 5,
    ),
    SuspectRule(
        "sharpe",
        "annualised daily Sharpe > 4",
        "far beyond what an exit rule on a given entry achieves out of sample (the research log's "
        "classical reference is 0.82; its leaky v3 showed 11); more often a leak or a measurement "
        "error (in-sample data, per-trade annualisation) than skill",
        lambda m: _num(m, "sharpe") > 4,
    ),
    SuspectRule(
        "profit_factor",
        "profit factor > 5",
        "gross profits five times the gross losses over dozens of trades do not survive costs and "
        "noise without information from the future (v3 showed 7.3)",
        lambda m: _num(m, "profit_factor") > 5,
    ),
)


def suspect_reasons(metrics: Mapping[str, Any] | None) -> tuple[list[str], str]:
    """The plausibility rules ``metrics`` (a :func:`~exitcore.evaluation.metrics.compute_metrics`
    result of the RL policy) breaks, and a note on what was checked.

    Only out-of-sample metrics are judged (``in_sample`` false) and only with at least
    :data:`MIN_TRADES_FOR_RULES` trades.
    """
    if not metrics:
        return [], "no out-of-sample results to judge; audit a finished run for the plausibility rules"
    if metrics.get("in_sample"):
        return [], "the results given are in-sample; plausibility rules judge out-of-sample results only"
    n = int(metrics.get("n_trades") or 0)
    if n < MIN_TRADES_FOR_RULES:
        return [], f"only {n} out-of-sample trades (< {MIN_TRADES_FOR_RULES}): plausibility rules not applied"
    reasons = [f"{r.rule} ({_fmt_metrics(metrics, r.name)}): {r.why}" for r in SUSPECT_RULES if r.test(metrics)]
    return reasons, f"plausibility rules applied to {n:,} trades on {metrics.get('label', metrics.get('split', '?'))}"


def _fmt_metrics(m: Mapping[str, Any], rule: str) -> str:
    if rule == "win_rate_short_trades":
        return f"win rate {100 * _num(m, 'win_rate'):.1f} %, {_num(m, 'avg_bars'):.1f} bars"
    if rule == "sharpe":
        return f"Sharpe {_num(m, 'sharpe'):.2f}"
    return f"profit factor {_num(m, 'profit_factor'):.2f}"


# --------------------------------------------------------------------------- findings


def _close_time(market: Any, bar: int) -> str:
    ns = int(market.ts[min(bar, market.n_bars - 1)]) + market.timeframe_ns
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _from_leak(leak: Leak, market: Any) -> Finding:
    return Finding(leak.kind, leak.component, leak.mode, leak.trade, leak.k, leak.bar, _close_time(market, leak.bar), leak.detail)


@attrs.frozen(eq=False)
class AuditReport:
    """The outcome of :func:`audit`. ``to_dict()`` is what the ``lookahead_audit`` evaluator returns."""

    verdict: str
    experiment: str
    split: str
    findings: tuple[Finding, ...]
    suspects: tuple[str, ...]
    suspect_note: str
    n_decisions: int
    n_entries: int
    n_fills: int
    modes: tuple[str, ...]
    policy: str
    seed: int
    #: the poisonings also applied before each feature's lookback (absent from audits before the check)
    lookback_modes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """The CLI's exit status for this verdict (:data:`EXIT_CODES`)."""
        return EXIT_CODES[self.verdict]

    def culprits(self) -> list[dict[str, Any]]:
        """One entry per (kind, component): its first offending decision, count and modes. The
        policy's findings that follow from a leaking input (:meth:`consequences`) are left out:
        the policy is a culprit only where its action changed with its inputs unchanged."""
        explained = _policy_causes(self.findings)
        groups: dict[tuple[str, str], list[Finding]] = {}
        for i, f in enumerate(self.findings):
            if i not in explained:
                groups.setdefault((f.kind, f.component), []).append(f)
        out = []
        for (kind, component), items in groups.items():
            first = min(items, key=lambda f: (f.time, f.trade, -1 if f.decision is None else f.decision))
            out.append(
                {
                    "kind": kind,
                    "component": component,
                    "first": first.to_dict(),
                    "count": len(items),
                    "modes": sorted({f.mode for f in items}, key=_mode_order),
                }
            )
        # a policy left here changed its action with its inputs unchanged: after the components
        return sorted(out, key=lambda c: (c["kind"] == "policy", c["first"]["time"]))

    def consequences(self) -> list[dict[str, Any]]:
        """The policy's action changes that its inputs explain, one entry per policy: where a
        feature column or a mask it reads differed at the same decision under the same poisoning,
        its action changing follows from that leak and is none of its own. ``because``: those
        inputs (``feature name.column``, ``mask 'name'``); ``count``: the findings; ``decisions``:
        the decisions they are at; ``modes``: the poisonings."""
        groups: dict[str, list[tuple[Finding, tuple[str, ...]]]] = {}
        for i, causes in _policy_causes(self.findings).items():
            groups.setdefault(self.findings[i].component, []).append((self.findings[i], causes))
        return [
            {
                "kind": "policy",
                "component": component,
                "because": sorted({cause for _, causes in items for cause in causes}),
                "count": len(items),
                "decisions": len({(f.trade, f.decision) for f, _ in items}),
                "modes": sorted({f.mode for f, _ in items}, key=_mode_order),
            }
            for component, items in groups.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data (findings beyond :data:`MAX_LISTED` are counted, not listed)."""
        return {
            "verdict": self.verdict,
            "experiment": self.experiment,
            "split": self.split,
            "label": split_label(self.split),
            "culprits": self.culprits(),
            "consequences": self.consequences(),
            "n_findings": len(self.findings),
            "findings": [f.to_dict() for f in self.findings[:MAX_LISTED]],
            "suspect": list(self.suspects),
            "suspect_note": self.suspect_note,
            "n_decisions": self.n_decisions,
            "n_entries": self.n_entries,
            "n_fills": self.n_fills,
            "modes": list(self.modes),
            "lookback_modes": list(self.lookback_modes),
            "policy": self.policy,
            "seed": self.seed,
            "exit_code": self.exit_code,
        }

    def format(self) -> str:
        """A human-readable report."""
        return format_audit(self.to_dict())


#: the finding kinds of what the policy's action is computed from (the observation's columns, the
#: mask): one differing at a decision and poisoning explains the action changing there
POLICY_INPUTS = ("feature", "mask")


def _policy_causes(findings: Sequence[Finding]) -> dict[int, tuple[str, ...]]:
    """Each policy finding (by its position in ``findings``) whose inputs differed at the same
    decision under the same poisoning, with those inputs in a few words (``feature a.b``, ``mask 'm'``)."""
    inputs: dict[tuple[int, int | None, str], set[str]] = {}
    for f in findings:
        if f.kind in POLICY_INPUTS:
            name = f.component.split(" [")[0] if f.kind == "feature" else f.component.split(" from ")[0]
            inputs.setdefault((f.trade, f.decision, f.mode), set()).add(f"{f.kind} {name}")
    return {i: tuple(sorted(inputs[(f.trade, f.decision, f.mode)])) for i, f in enumerate(findings)
            if f.kind == "policy" and (f.trade, f.decision, f.mode) in inputs}


def past_modes(modes: Sequence[str]) -> tuple[str, ...]:
    """The audit's poisonings that are also applied to the bars before each feature's lookback."""
    return tuple(m for m in modes if m in PAST_MODES)


# --------------------------------------------------------------------------- building blocks


def without_rewards(resolved: Any) -> Any:
    """``resolved`` with no reward terms: the audit never reads rewards (they may use hindsight)."""
    if attrs.has(type(resolved)):
        return attrs.evolve(resolved, rewards=())
    clone = type(resolved)(**vars(resolved))
    clone.rewards = ()
    return clone


def make_rebuild(assembled: Any) -> Callable[[Any], Any]:
    """``rebuild(bars)``: ``assembled``'s experiment on other bars, same trades and device, no rewards.

    A component that fails to build on truncated or poisoned bars depends on the future: the
    failure is raised as a ``RuntimeError`` naming it, which the probe records as a leak.
    """
    from exitcore.assembly import assemble

    resolved = without_rewards(assembled.resolved)

    def rebuild(bars: Any) -> Any:
        try:
            return assemble(resolved, bars, trades=assembled.trades, device=assembled.device, exact_write_check=False)
        except Exception as exc:  # noqa: BLE001 - failing without the future is itself the finding
            # the probe records RuntimeErrors as leaks; the message names the component (PluginError)
            raise RuntimeError(f"rebuilding on these bars failed: {exc}") from exc

    return rebuild


def random_policy(assembled: Any, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised policy of the experiment's kind (``ppo.policy``), seeded, on the data's device.

    Auditing an experiment without a trained policy still checks that the *action* ignores the
    future: any policy is a function of the observation and the mask alone.
    """
    cfg = assembled.resolved.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        from exitcore.ppo.policy import build_policy

        policy = build_policy(assembled.resolved.policy, cfg.ppo, assembled.components.obs_dim, N_ACTIONS,
                              assembled.resolved.policy_params)
    return policy.to(assembled.device)


def _stratified(n_items: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` positions out of ``range(n_items)``, one drawn uniformly from each of ``n`` equal strata."""
    if n_items <= n:
        return np.arange(n_items)
    edges = np.linspace(0, n_items, n + 1).astype(np.int64)
    return rng.integers(edges[:-1], edges[1:])


def sample_decisions(
    assembled: Any, pool: Any, act: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n: int, seed: int = 0
) -> list[EnvState]:
    """``n`` decision states of ``act`` (deterministic) on the trades ``pool``, spread over time.

    The policy plays every trade in a sweep; its decisions, ordered by decision bar, are cut
    into ``n`` equal strata and one is drawn from each (seeded), so the sample covers the
    split from start to end. A replay of the same actions picks the chosen states.
    """
    return [row for row, _ in sample_decision_paths(assembled, pool, act, n, seed)]


def sample_decision_paths(
    assembled: Any, pool: Any, act: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n: int, seed: int = 0
) -> list[tuple[EnvState, torch.Tensor]]:
    """:func:`sample_decisions` with each row's action history: the actions ``act`` sampled at
    the trade's decisions before the row's (int64, on the CPU), which replay the trade to it."""
    pool_t = trade_rows(pool, assembled.device)
    env = assembled.make_env(pool_t, auto_reset=False)
    # both sweeps from the same random state: a random component (a coin-flip guard) then draws
    # the same numbers in the replay, which reaches the very states the policy's sweep did
    with fixed_rng(seed):
        sampled, _ = play(env, act, int(assembled.resolved.config.env.max_bars))
    rows, steps = torch.nonzero(sampled.cpu() >= 0, as_tuple=True)
    if rows.numel() == 0:
        return []
    bars = assembled.table.entry_bar[pool_t].cpu()[rows] + steps
    order = np.lexsort((rows.numpy(), bars.numpy()))
    at_ends = _at_segment_ends(assembled.market, bars, n, seed)
    chosen = np.union1d(order[_stratified(len(order), n - len(at_ends), np.random.default_rng(seed))], at_ends)
    wanted: dict[int, list[int]] = {}
    for i in chosen:
        wanted.setdefault(int(steps[i]), []).append(int(rows[i]))
    picked: list[tuple[EnvState, torch.Tensor]] = []
    history = sampled.cpu().to(torch.int64)
    with fixed_rng(seed):
        env.reset()
        for step in range(max(wanted) + 1):
            picked.extend((state_row(env.state, i), history[i, :step].clone()) for i in wanted.get(step, ()))
            action = sampled[:, step].to(torch.int64).clamp(min=0)  # replay: same actions, same states
            env.step(action)
    return sorted(picked, key=lambda p: int(p[0].bar[0]))


def _at_segment_ends(market: Any, bars: torch.Tensor, n: int, seed: int) -> np.ndarray:
    """A few of the ``n`` decisions to audit (positions in ``bars``, their bars), taken on the
    last bar before a hole in the data or at its end, the rest being spread over time: the
    poisonings keep the bars' timestamps, so only truncation there shows a component reading
    the next bar's time ("a hole comes next", trial Y), and a sample spread over time rarely
    lands on such a bar. ``max(1, n // 16)`` of them where there are any (at most ``n``)."""
    edge = np.flatnonzero((market.segment_end.cpu()[bars] == bars).numpy())
    if n <= 0 or edge.size == 0:
        return np.array([], dtype=np.int64)
    return np.random.default_rng(seed + 1).choice(edge, min(edge.size, n, max(1, n // 16)), replace=False)


def _action(policy: torch.nn.Module, view: Any) -> int:
    """The deterministic action for one decision view (HOLD allowed, as the environment does)."""
    from exitcore.ppo.distribution import act

    mask = view.mask.clone()
    mask[HOLD] = True
    return int(act(policy, view.obs[None], mask[None])[0])


def _component_roots(components: Any) -> list[tuple[Any, ...]]:
    """What each feature, mask and guard holds, in :func:`check_held_state`'s label order."""
    roots: list[tuple[Any, ...]] = [(f.fn, spec) for f, spec in zip(components.features, components.feature_specs)]
    return roots + [(m.fn,) for m in components.masks] + [(g.fn,) for g in components.guards]


def check_held_state(assembled: Any, rebuild: Callable[[Any], Any]) -> list[Finding]:
    """Features, masks and guards that keep per-bar data between builds (``kind="held"``): rebuilt
    on bars NaN from the middle on, they still reach an array of one row per bar that the
    original build reached too, so what they read was computed before the bars changed and no
    poisoning reaches it (exitcore/env/held_state.py)."""
    from exitcore.env.held_state import held_arrays, tensor_storages

    market = assembled.market
    n, half = market.n_bars, market.n_bars // 2
    a = assembled.components
    labels = [f"feature {named.name} [{named.origin}]" for named in a.features]
    labels += [f"mask {m.label()}" for m in a.masks] + [f"guard {g.label()}" for g in a.guards]
    # a table of windows has n_bars - w + 1 rows: within the longest declared lookback (+ 2: np.diff and kin)
    slack = max((spec.lookback for spec in a.feature_specs), default=0) + 2
    skip = tensor_storages(market) | tensor_storages(assembled.table)
    # what each held before the rebuild (a global the rebuild overwrites is then not taken for
    # a table both hold), kept alive until compared
    kept: list[Any] = []
    before = [held_arrays(roots, n, skip, slack, keep=kept) for roots in _component_roots(a)]
    try:
        other = rebuild(poison_bars(assembled.bars, half, "nan"))
    except Exception:  # noqa: BLE001 - a component failing on these bars is the decision probe's finding
        return []
    skip |= tensor_storages(other.market) | tensor_storages(other.table)
    pairs = zip(labels, before, _component_roots(other.components))
    findings = []
    for label, held_before, after in pairs:
        shared = [held for address, held in held_arrays(after, n, skip, slack).items() if address in held_before]
        if shared:
            where, shape = shared[0]
            findings.append(Finding(
                "held", label, "nan", -1, None, half, _close_time(market, half),
                f"rebuilt on bars that are NaN after bar {half}, it still holds the [{', '.join(map(str, shape))}] "
                f"array it held before ({where}): it keeps per-bar data between builds (a module-level cache?), which no poisoning "
                "reaches, so the audit cannot check it; compute it from ctx.market in build each time (docs/plugins.md)"))
    return findings


#: an entry strategy's per-bar table of windows: up to this many bars shorter than the bars (a
#: constant lookup grid of 8,192 points at 8,821 bars is no such table)
ENTRY_WINDOW = 500
#: below this many trades, an array as long as the trade list is not taken for one
MIN_TRADES_HELD = 32


def check_entry_state(assembled: Any) -> list[Finding]:
    """The entry strategy built and run twice, on the bars and on bars NaN from the middle on
    (``kind="held"``): an array of one row per bar, or of one row per trade, that both built
    strategies reach was computed on the first run and served again on the second (a cache
    at module level), so :func:`check_entries`' reruns on poisoned bars get the clean result
    and cannot see a leak inside it."""
    from exitcore.assembly import build_entry
    from exitcore.env.held_state import held_arrays

    resolved, bars, market = assembled.resolved, assembled.bars, assembled.market
    n, half = market.n_bars, market.n_bars // 2
    poisoned = poison_bars(bars, half, "nan")
    # the bars' own columns and timestamps (the poisoned bars share them) are the caller's; a
    # window of up to ENTRY_WINDOW bars counts as per-bar; a trade count too small to tell a
    # trade table from a constant ([1, -1]) does not count
    skip = set(held_arrays([bars.frame, bars.frame.index, poisoned.frame], n, set(), n))
    slack, kept = min(n // 10, ENTRY_WINDOW) + 2, []
    try:
        first = build_entry(resolved)
        trades = first(bars)
    except Exception:  # noqa: BLE001 - failing on these bars is check_entries' finding
        return []
    lengths = tuple(k for k in {len(getattr(trades, "frame", ())), len(assembled.trades.frame)} if k >= MIN_TRADES_HELD)
    # what it holds after its first run, before the second (which may overwrite a global of its
    # own), kept alive until compared
    before = held_arrays([first], n, skip, slack, lengths, keep=kept)
    try:
        second = build_entry(resolved)
        second(poisoned)
    except Exception:  # noqa: BLE001 - failing on these bars is check_entries' finding
        return []
    shared = [held for address, held in held_arrays([second], n, skip, slack, lengths).items() if address in before]
    if not shared:
        return []
    where, shape = shared[0]
    return [Finding(
        "held", _entry_label(resolved), "nan", -1, None, half, _close_time(market, half),
        f"built again and run on bars that are NaN after bar {half}, it still holds the [{', '.join(map(str, shape))}] "
        f"array it held after its first run ({where}): it keeps per-bar or per-trade data between runs (a module-level "
        "cache?), which no poisoning reaches, so the audit cannot check its trades; compute them from the bars it is "
        "given each time (docs/plugins.md)")]


def check_fills(assembled: Any, pool: Any) -> list[Finding]:
    """Every trade of ``pool`` must be filled at the open of the bar after its signal, costs applied."""
    t, m, costs = assembled.table, assembled.market, assembled.costs
    rows = trade_rows(pool, assembled.device)
    s = t.signal_bar[rows]
    nxt = torch.clamp(s + 1, max=m.n_bars - 1)
    bad_bar = t.entry_bar[rows] != s + 1
    bad_open = t.entry_open[rows] != m.open[nxt]
    bad_fill = t.entry_price[rows] != costs.entry_fill(m.open[nxt], t.direction[rows])
    out = []
    for flag, what in ((bad_bar, "entry bar is not the bar after the signal"), (bad_open, "entry open is not open[s + 1]"),
                       (bad_fill, "entry price is not open[s + 1] plus costs")):
        for i in torch.nonzero(flag).flatten().tolist()[:MAX_LISTED]:
            bar = int(s[i])
            out.append(Finding("fill", "the engine's TradeTable", "fill", int(rows[i]), None, bar, _close_time(m, bar), what))
    return out


def _entry_label(resolved: Any) -> str:
    entry = resolved.entry
    origin = getattr(getattr(entry, "component", None), "origin", "")
    return f"entry strategy {entry.name!r}" + (f" [{origin}]" if origin else "")


_TRADE_KEY = ("signal_bar", "direction", "stop_dist", "target_dist")


def check_entries(assembled: Any, trade_rows: Sequence[int], modes: Sequence[str] = POISON_MODES, seed: int = 0) -> list[Finding]:
    """Re-run the entry strategy with the bars after each trade's signal bar poisoned by ``modes``.

    The trades with signal bars ``<= s`` must come out identical (the four defining columns and
    every extra column the strategy adds, bit for bit: an extra column reaches the ledgers, and
    a feature may read it); a trade that disappears, appears, changes direction, distance or an
    extra column's value is a leak of the entry strategy. An exception while running on
    truncated bars is one too.
    """
    from exitcore.assembly import run_entry

    resolved, bars, market = assembled.resolved, assembled.bars, assembled.market
    label = _entry_label(resolved)
    frame = assembled.trades.frame
    columns = [*_TRADE_KEY, *(c for c in frame.columns if c not in _TRADE_KEY)]
    original = frame[columns].reset_index(drop=True)
    out: list[Finding] = []
    tick = progress_counter("re-ran the entry strategy for {done} of {total} entries", len(trade_rows))
    for j, row in enumerate(trade_rows):
        s = int(frame["signal_bar"].iloc[int(row)])
        expected = original[original["signal_bar"] <= s].reset_index(drop=True)
        for mode in modes:
            poisoned = poison_bars(bars, s, mode, seed=seed + j)
            try:
                got = run_entry(resolved, poisoned).frame.reindex(columns=columns)
            except Exception as exc:  # noqa: BLE001 - failing without the future is the finding
                out.append(Finding("entry", label, mode, int(row), None, s, _close_time(market, s),
                                   f"fails when the bars after the signal are {mode}: {describe_exception(exc)}"))
                continue
            got = got[got["signal_bar"] <= s].reset_index(drop=True)
            detail = _first_trade_difference(expected, got, s)
            if detail:
                out.append(Finding("entry", label, mode, int(row), None, s, _close_time(market, s), detail))
        tick(j + 1)
    return out


def _same_trades(expected: pd.DataFrame, got: pd.DataFrame) -> bool:
    """Whether two trade lists are identical row by row in every column (NaN == NaN)."""
    if len(expected) != len(got):
        return False
    for col in expected.columns:
        a, b = expected[col].reset_index(drop=True), got[col].reset_index(drop=True)
        # missing values (NaN, None, NaT) agree with each other, in any column's dtype
        if not bool(((a == b) | (a.isna() & b.isna())).all()):
            return False
    return True


def _same_value(a: Any, b: Any) -> bool:
    """Two cells of a trade column are the same: equal, or both missing (NaN, None, NaT)."""
    missing_a, missing_b = pd.isna(a), pd.isna(b)
    if np.ndim(missing_a) == 0 and np.ndim(missing_b) == 0 and (missing_a or missing_b):
        return bool(missing_a and missing_b)
    return bool(np.all(a == b))


def _first_trade_difference(expected: pd.DataFrame, got: pd.DataFrame, s: int) -> str:
    """Describe the first difference between two trade lists (signal bars <= s), or ``""``."""
    if _same_trades(expected, got):  # the usual case, checked without a Python loop per trade
        return ""
    # rows as plain tuples: an extra column's name need not be an identifier (signal_bar is first)
    exp = {int(r[0]): r for r in expected.itertuples(index=False, name=None)}
    new = {int(r[0]): r for r in got.itertuples(index=False, name=None)}
    for bar in sorted(set(exp) | set(new)):
        a, b = exp.get(bar), new.get(bar)
        if a is None:
            return f"a trade at signal bar {bar} appears when the bars after {s} change"
        if b is None:
            return f"the trade at signal bar {bar} disappears when the bars after {s} change"
        for i, col in enumerate(expected.columns[1:], start=1):
            va, vb = a[i], b[i]
            if not _same_value(va, vb):
                return f"the trade at signal bar {bar} changes {col} from {va!r} to {vb!r}"
    if len(expected) != len(got):
        return f"{len(expected)} trades with signal bars <= {s} became {len(got)}"
    # same trades per signal bar, yet not row for row (order, or several trades on one bar)
    return f"the trades with signal bars <= {s} change order or repeat when the bars after {s} change"


# --------------------------------------------------------------------------- the audit


def audit(
    assembled: Any,
    pool: Any,
    *,
    rebuild: Callable[[Any], Any] | None = None,
    policy: torch.nn.Module | None = None,
    policy_label: str | None = None,
    n_decisions: int = 64,
    n_entries: int | None = None,
    modes: Sequence[str] = POISON_MODES,
    metrics: Mapping[str, Any] | None = None,
    split: str = "test",
    seed: int = 0,
) -> AuditReport:
    """Audit ``assembled`` on the trades ``pool`` of ``split`` (see the module docstring).

    ``policy`` is the trained policy (``None``: a random-init one, :func:`random_policy`);
    ``rebuild`` defaults to :func:`make_rebuild`. ``n_decisions`` decisions and ``n_entries``
    entries (default: as many as decisions) are sampled with ``seed``, spread over the split.
    ``metrics`` are the run's out-of-sample RL metrics for the plausibility rules (``None``:
    not checked).
    """
    unknown = [m for m in modes if m not in POISON_MODES]
    if unknown or not modes:
        raise ValueError(f"unknown poison modes {unknown}; use some of {', '.join(POISON_MODES)}")
    pool = trade_rows_numpy(pool)
    if pool.size == 0:
        raise ValueError(f"the {split} split has no trades to audit")
    rebuild = rebuild or make_rebuild(assembled)
    label = policy_label or ("trained" if policy is not None else "random-init")
    if policy is None:
        policy = random_policy(assembled, seed)
    market = assembled.market
    was_training = policy.training
    policy.eval()
    # one intra-op thread: thousands of tiny ops (7.6 s either way on a quiet 2-core machine,
    # 50 s against 7.4 s on a busy one)
    with one_torch_thread():
        try:
            paths = sample_decision_paths(assembled, pool, policy_actor(policy), n_decisions, seed)
            rows = [row for row, _ in paths]
            # the action on each row's unpoisoned view, per view: a row re-probed with the random
            # generators seeded (a random component) comes with a new unpoisoned view, and comparing
            # against the first one's action blamed the policy for the component's noise
            actions_seen: dict[int, tuple[Any, int]] = {}

            def same_action(mode: str, row: EnvState, original: Any, poisoned: Any) -> list[Leak]:
                seen = actions_seen.get(id(row))
                if seen is None or seen[0] is not original:
                    seen = actions_seen[id(row)] = (original, _action(policy, original))
                after = _action(policy, poisoned)
                if after == seen[1]:
                    return []
                return [Leak(mode, int(row.trade[0]), int(row.k[0]), int(row.bar[0]), "policy", f"the {label} policy",
                             f"action {ACTION_NAMES[seen[1]]} became {ACTION_NAMES[after]}")]

            leaks = probe_decisions(assembled, rows, rebuild, modes=modes, seed=seed, on_view=same_action,
                                    histories=[history for _, history in paths])
            leaks += probe_lookback(assembled, rows, past_modes(modes))
            findings = [_from_leak(leak, market) for leak in leaks]
            findings += check_held_state(assembled, rebuild)

            by_signal = pool[np.argsort(assembled.table.signal_bar[trade_rows(pool, assembled.device)].cpu().numpy(), kind="stable")]
            entry_rows = by_signal[_stratified(len(by_signal), n_entries or n_decisions, np.random.default_rng(seed + 1))]
            findings += check_entries(assembled, entry_rows.tolist(), modes, seed)
            findings += check_entry_state(assembled)
            findings += check_fills(assembled, pool)
        finally:
            policy.train(was_training)

    suspects, note = suspect_reasons(metrics)
    verdict = "FAIL" if findings else ("SUSPECT" if suspects else "PASS")
    findings.sort(key=lambda f: (f.time, f.trade, -1 if f.decision is None else f.decision, _mode_order(f.mode)))
    return AuditReport(
        verdict=verdict,
        experiment=assembled.resolved.config.name,
        split=split,
        findings=tuple(findings),
        suspects=tuple(suspects),
        suspect_note=note,
        n_decisions=len(rows),
        n_entries=len(entry_rows),
        n_fills=int(pool.size),
        modes=tuple(modes),
        policy=label,
        seed=seed,
        lookback_modes=past_modes(modes),
    )


# --------------------------------------------------------------------------- entry points (CLI)


#: ``stage("loading data")``: a context manager around each step of the audit entry points,
#: for the CLI to announce them (exitcore.runner.Stages.stage); the default says nothing
Stage = Callable[[str], Any]


def _silent(_what: str) -> Any:
    import contextlib

    return contextlib.nullcontext(lambda _note: None)


def _auditing(n: int, modes: Sequence[str]) -> str:
    return f"auditing {plural(n, 'decision')} ({', '.join(modes)})"


def prepare(resolved: Any, bars: Any, device: Any = "cpu") -> tuple[Any, dict[str, np.ndarray]]:
    """Assemble ``resolved`` on ``bars`` and assign its trades to the time splits, as a run does."""
    from exitcore.assembly import assemble
    from exitcore.data.splits import assign_trades, make_splits

    assembled = assemble(resolved, bars, device=device)
    cfg = resolved.config
    lookback = assembled.components.lookback
    splits = make_splits(bars.frame.index, cfg.split, cfg.env.max_bars + lookback, origins=resolved.split_origins)
    return assembled, assign_trades(splits, assembled.table, lookback)


def require_split(cfg: Any, split: str) -> None:
    """Refuse a ``split`` the experiment (its ``split`` config ``cfg``) does not make, before any
    data is loaded: it has no trades because it does not exist, not because data is missing."""
    from exitcore.data.splits import split_names
    from exitcore.errors import ConfigError

    names = split_names(cfg)
    if split in names:
        return
    why = "split.validation_end is not set" if cfg.train_end else f"split.validation = {cfg.validation:g}"
    raise ConfigError([(f"--split {split}", f"the {split} split is empty in this experiment ({why}); "
                                            f"its splits are {' and '.join(names)}")])


def _split_pool(pools: Mapping[str, np.ndarray], split: str) -> np.ndarray:
    from exitcore.errors import DataError

    pool = pools.get(split)
    if pool is None or pool.size == 0:
        have = ", ".join(f"{k}={len(v)}" for k, v in pools.items())
        raise DataError(f"split.{split}: no trades to audit (trades per split: {have}); use more data or another --split")
    return pool


def audit_experiment(
    resolved: Any,
    host: Any,
    *,
    data: Any = None,
    device: Any = "cpu",
    split: str = "test",
    n_decisions: int | None = None,
    modes: Sequence[str] = POISON_MODES,
    seed: int = 0,
    stage: Stage = _silent,
) -> AuditReport:
    """``exitcore audit NAME``: the experiment on its data (or ``data``, a DataConfig), random-init
    policy. ``stage`` announces its steps (:data:`Stage`)."""
    from exitcore.data.pipeline import load_bars

    require_split(resolved.config.split, split)
    with stage("loading data") as note:
        bars = load_bars(data or resolved.config.data, host, where="--data" if data else resolved.data_where,
                         spec_where="--data" if data else "", origins=None if data else resolved.data_origins)
        note(f"{bars.source}: {len(bars):,} bars")
    with stage(f"building episodes on {device}"):
        assembled, pools = prepare(resolved, bars, device)
        pool = _split_pool(pools, split)
    n = n_decisions or resolved.config.eval.audit_decisions
    with stage(_auditing(n, modes)):
        return audit(assembled, pool, n_decisions=n, modes=modes, split=split, seed=seed)


def audit_run(
    run_dir: Any,
    host: Any,
    *,
    device: Any = "cpu",
    split: str = "test",
    n_decisions: int | None = None,
    modes: Sequence[str] = POISON_MODES,
    seed: int = 0,
    stage: Stage = _silent,
    data_spec: str | None = None,
) -> AuditReport:
    """``exitcore audit RUN``: a finished run's experiment, data and trained policy; ``stage``
    announces its steps (:data:`Stage`). ``data_spec`` (``--data``) reads the run's bars from
    elsewhere (its data file moved): they must be the bars the run used (their hash is checked).

    The experiment is resolved from the run's frozen ``config.toml``, its data reloaded and
    checked against the hash in ``run.json``, the policy loaded from the run's checkpoint. The
    plausibility rules judge the RL policy's metrics on ``split``, recomputed from the run's
    ledger (or taken from ``results.json``).
    """
    from pathlib import Path

    from exitcore.data.bars import column_differences
    from exitcore.data.pipeline import load_bars
    from exitcore.errors import DataError
    from exitcore.evaluation import rundir
    from exitcore.words import command

    run_dir = Path(run_dir)
    resolved = rundir.resolve_run(run_dir, host)
    require_split(resolved.config.split, split)
    info = rundir.read_run_info(run_dir)
    if not info:  # it records the bars' hash and the plugins' code: without it the audit vouches for neither
        raise rundir.RunDirError(
            f"{run_dir / rundir.RUN_FILE}: no such file: the audit checks that the bars and the plugin code are "
            "the run's by what it records; restore it (from a backup), or audit the experiment on today's "
            f"data and code: `{command()} audit EXPERIMENT`")
    check_audited_code(run_dir, info, resolved, host)
    # before the data is loaded: a damaged results.json is an error, not a skipped plausibility check
    metrics = run_metrics(run_dir, split)
    from exitcore.data.pipeline import relocated_data

    data, where = resolved.config.data, f"{run_dir / rundir.CONFIG_FILE}: data"
    # a resume given --data (the file moved) keeps the frozen path in config.toml, and a relative
    # one is read from where exitcore runs: run.json's data.source ("csv: PATH") says where the run
    # read the bars last, which the audit takes where config.toml's path is not found (trials Z,
    # AB; their hash is checked below as ever)
    moved = rundir.last_read_path(info) if not data_spec and rundir.data_path_missing(data) else None
    if moved:
        data_spec = moved
        stage_note = " (where the run last read them; config.toml's path is not found from here)"
    else:
        stage_note = ""
    if data_spec:
        data, where = relocated_data(data, data_spec, host), "--data"
    with stage("loading data") as note:
        try:
            bars = load_bars(data, host, where=where)
        except DataError as exc:
            if data_spec or getattr(exc, "param", None) != "path":
                raise
            raise DataError(f"{exc}; if the file moved, give its new place: `{command()} audit {run_dir} --data NEW_PATH` "
                            "(the bars must be the run's: their hash is checked)") from None
        note(f"{bars.source}: {len(bars):,} bars{stage_note}")
    recorded = (info.get("data") or {}).get("hash") if isinstance(info.get("data"), Mapping) else None
    recorded = recorded or info.get("data_hash")
    if recorded and recorded != bars.content_hash():
        n_then = (info.get("data") or {}).get("n_bars")
        raise DataError(
            f"{run_dir / rundir.RUN_FILE}: the run used data with hash {recorded}, but "
            f"{repr(data_spec) if data_spec else resolved.config.data.source} now loads data with hash "
            f"{bars.content_hash()} ({len(bars):,} bars {str(bars.start)[:16]} -> {str(bars.end)[:16]}; run.json "
            f"records {f'{n_then:,}' if isinstance(n_then, int) else '?'} bars): the data changed since the run; give the "
            f"run's own file (`{command()} audit {run_dir} --data PATH`), or audit the experiment on these bars "
            f"(`{command()} audit EXPERIMENT`)"
        )
    data_info = info.get("data") if isinstance(info.get("data"), Mapping) else {}
    columns = column_differences(data_info.get("column_hashes"), bars.column_hashes())
    if columns:
        raise DataError(
            f"{run_dir / rundir.RUN_FILE}: {repr(data_spec) if data_spec else resolved.config.data.source} now loads "
            f"the run's timestamps and prices (hash {bars.content_hash()}) but other values in its other columns "
            f"({columns}): a feature reading them would be audited on other data than it trained and was evaluated "
            f"on; give the run's own file with `{command()} audit {run_dir} --data PATH`"
        )
    with stage(f"building episodes on {device} and loading the trained policy"):
        assembled, pools = prepare(resolved, bars, device)
        pool = _split_pool(pools, split)
        policy, path = rundir.load_policy(run_dir, resolved, assembled.components.obs_dim, device)
    n = n_decisions or resolved.config.eval.audit_decisions
    with stage(_auditing(n, modes)):
        return audit(
            assembled,
            pool,
            policy=policy,
            # walk-forward windows train their own policies on the same features, masks and
            # guards: those are what leak, and they are audited here; say which policy it was
            policy_label=f"trained ({path.relative_to(run_dir)}"
                         + ("; not the walk-forward windows' own policies" if resolved.config.eval.walk_forward else "") + ")",
            n_decisions=n,
            modes=modes,
            metrics=metrics,
            split=split,
            seed=seed,
        )


def audited_plugins(resolved: Any, host: Any) -> set[str]:
    """The plugins whose components the audit of a run rebuilds and judges: those of its entry
    strategy, features, guards, masks and policy, exitcore's own excepted (the audit's own code:
    a newer exitcore audits an old run anew; the data is checked by its hash)."""
    infos = {i.name: i for i in host.plugin_infos()}
    chosen = [resolved.entry, *resolved.features, *resolved.guards, *resolved.masks]
    names = {rc.component.plugin for rc in chosen} | {resolved.policy.plugin}
    return {n for n in names if getattr(infos.get(n), "distribution", None) != "exitcore"}


def check_audited_code(run_dir: Any, info: Mapping[str, Any], resolved: Any, host: Any) -> None:
    """Refuse to audit a run whose audited plugins' code (:func:`audited_plugins`) changed since
    it started (run.json's code hash and plugin source hashes): the audit would judge today's
    code with the run's trained policy and give that verdict as the run's (a leaky feature fixed
    after the run made its results PASS). A change elsewhere (a reward term, an evaluator,
    exitcore itself) leaves what the audit judges as the run ran it."""
    from exitcore.code_changes import code_changes
    from exitcore.errors import ExitcoreError
    from exitcore.words import command

    changes = code_changes(info.get("code_hash"), run_dir, resolved, host)
    audited = audited_plugins(resolved, host)
    if changes is None:
        return
    if changes.only_outside(audited):
        # said, not refused: the verdict is about what the audit checks, as the run ran it (trial AD:
        # a reward plugin edited since, and the PASS said nothing of it)
        import warnings

        from exitcore.errors import ExitcoreWarning

        warnings.warn(f"the code of {', '.join(changes.changed)} changed since run {info.get('run_id') or run_dir.name} "
                      "started; the audit does not check it (only the features, masks, guards, entry strategy and "
                      "policy, which are as the run ran them), so the verdict says nothing about that change",
                      ExitcoreWarning, stacklevel=2)
        return
    raise ExitcoreError(
        f"cannot audit run {info.get('run_id') or run_dir.name}: {changes.why(audited, 'plugins whose components the audit checks')}; "
        "the audit would judge today's code with the run's trained policy, and its verdict would not be the run's: "
        f"restore the code the run started with, or audit today's code with `{command()} audit {resolved.config.name}` "
        "(a random-init policy) or a new run")


def run_metrics(run_dir: Any, split: str = "test") -> dict[str, Any] | None:
    """The RL policy's metrics on ``split`` of a run: recomputed from its ledger file, else from
    ``results.json`` (the ``trade_metrics`` evaluator, then the headline); ``None`` if neither.
    A missing or damaged ``results.json`` is a :class:`~exitcore.evaluation.rundir.RunDirError`
    naming it (the run is not finished, or its results cannot be trusted)."""
    from pathlib import Path

    from exitcore.evaluation import rundir
    from exitcore.evaluation.ledger_schema import read_ledger
    from exitcore.evaluation.metrics import compute_metrics

    run_dir = Path(run_dir)
    results = rundir.read_results(run_dir)
    span = (results.get("spans") or {}).get(split)
    name = (results.get("ledgers") or {}).get(split)
    if name and span and (run_dir / name).is_file():
        ledger = read_ledger(run_dir / name)
        rl = ledger[ledger["policy"] == "rl"]
        if len(rl):
            return compute_metrics(rl, start=span[0], end=span[1], split=split, policy="rl")
    if results.get("split") != split:
        return None
    tm = ((results.get("evaluators") or {}).get("trade_metrics") or {}).get("policies") or {}
    return tm.get("rl") or results.get("headline") or None
