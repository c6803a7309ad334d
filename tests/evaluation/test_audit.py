"""The look-ahead audit: the causal v1/v2/v4 sets pass, v3 and every planted leak of the zoo fail, named."""

from __future__ import annotations

import json
import re

import attrs
import pytest
import torch
from click.testing import CliRunner
from evalkit import _V4_FEATURES, one_torch_thread, prepared  # noqa: F401 - autouse fixture

import exitcore_evaluators
from exitcore.cli import cli
from exitcore.evaluation.report import summary_text
from exitcore.evaluation.verdicts import audit_why, describe_verdict
from exitcore.cli.audit import AUDIT_MODES
from exitcore.env.causality import POISON_MODES
from exitcore.evaluation.audit import (
    EXIT_CODES,
    audit,
    check_fills,
    format_audit,
    random_policy,
    sample_decisions,
    suspect_reasons,
)
from exitcore.evaluation.ledger import policy_actor
from exitcore.words import plural

N = 6  # decisions (and entries) per audit: enough to hit an always-on leak, cheap


def test_the_mode_lists_agree():
    assert AUDIT_MODES == POISON_MODES == exitcore_evaluators.POISON_MODES


@pytest.mark.parametrize("name", ["v1", "v2_exit_guards", "v4_no_lookahead"])
def test_the_causal_experiments_pass(name):
    _, asm, pools, _ = prepared(name)
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    assert report.verdict == "PASS", report.format()
    assert report.findings == () and report.exit_code == 0
    assert (report.n_decisions, report.n_entries, report.n_fills) == (N, N, len(pools["test"]))
    assert report.modes == POISON_MODES and report.policy == "random-init"


def test_v3_fails_naming_its_leaky_feature_and_the_first_offending_decision():
    _, asm, pools, _ = prepared("v3")
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    assert report.verdict == "FAIL" and report.exit_code == EXIT_CODES["FAIL"] == 1
    causes = [c for c in report.culprits() if c["kind"] != "policy"]
    assert [c["component"].split(" ")[0] for c in causes] == ["leaky_next_move.next_move_atr"]
    assert "exitcore-features" in causes[0]["component"]  # the distribution responsible is named
    first = causes[0]["first"]
    # the leak is in every decision, so the first offending one is the earliest sampled
    earliest = min(report.findings, key=lambda f: f.time)
    assert (first["trade"], first["decision"], first["time"]) == (earliest.trade, earliest.decision, earliest.time)
    assert first["decision"] is not None and first["time"].startswith(str(asm.bars.start.year)[:3])
    assert set(causes[0]["modes"]) == set(POISON_MODES)
    text = report.format()
    assert "FAIL" in text and "LEAK feature leaky_next_move.next_move_atr" in text and f"trade {first['trade']}, decision" in text


def _engine_reading_the_bar_after_next(monkeypatch):
    """Plant a leak in the engine itself, no plugin involved: the position's ``upnl`` at each new
    decision is taken at the close of the bar *after* the decision bar."""
    from exitcore.env import vec_env

    step = vec_env.VecExitEnv._transition

    def leaky(self, s, action):
        after, blocked_by = step(self, s, action)
        ahead = torch.clamp(after.bar + 1, max=self.market.n_bars - 1)
        peeked = self.costs.net_per_unit(self.market.close[ahead], after.entry_price, after.direction)
        after.upnl = torch.where(after.done, after.upnl, peeked)
        return after, blocked_by

    monkeypatch.setattr(vec_env.VecExitEnv, "_transition", leaky)


def test_a_leak_in_the_engine_is_caught_by_replaying_the_trade(monkeypatch):
    """The plugins are rebuilt on the poisoned bars, but the position state they read comes
    from the engine: the audit replays each sampled trade on the poisoned bars with the same
    actions and compares the engine's state at every decision up to the sampled one."""
    from exitcore.env.causality import probe_decisions
    from exitcore.evaluation.audit import make_rebuild, sample_decision_paths

    _, asm, pools, _ = prepared("v4_no_lookahead")
    assert audit(asm, pools["test"], n_decisions=N, seed=3).verdict == "PASS"
    _engine_reading_the_bar_after_next(monkeypatch)
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    assert report.verdict == "FAIL", report.format()
    causes = {(c["kind"], c["component"]) for c in report.culprits()}
    assert ("state", "exitcore's environment (the position state it computes): upnl") in causes
    assert "LEAK state exitcore's environment (the position state it computes): upnl" in report.format()
    # without the replay, every plugin view is still identical: the rows' own states carry the leak
    paths = [p for p in sample_decision_paths(asm, pools["test"], policy_actor(random_policy(asm, 3)), 2 * N, 3)
             if int(p[0].k[0]) > 0]  # an engine state after at least one step
    rows, histories = [r for r, _ in paths], [h for _, h in paths]
    assert rows
    assert probe_decisions(asm, rows, make_rebuild(asm)) == []
    found = probe_decisions(asm, rows, make_rebuild(asm), histories=histories)
    assert {leak.kind for leak in found} == {"state"} and any(leak.component.endswith(": upnl") for leak in found)


def test_the_replay_compares_every_decision_up_to_the_poisoned_one(monkeypatch):
    """An engine that reads several bars ahead changes the state at decisions *before* the
    sampled one when the bars after it are poisoned; the finding names the earliest."""
    from exitcore.env import vec_env
    from exitcore.env.causality import probe_decisions
    from exitcore.evaluation.audit import make_rebuild, sample_decision_paths

    _, asm, pools, _ = prepared("v4_no_lookahead")
    paths = [p for p in sample_decision_paths(asm, pools["test"], policy_actor(random_policy(asm, 3)), 4 * N, 3)
             if int(p[0].k[0]) >= 3]
    paths = list({int(row.trade[0]): (row, h) for row, h in paths}.values())  # one row per trade
    assert paths
    step = vec_env.VecExitEnv._transition

    def five_ahead(self, s, action):  # the price seen at each decision: the close 5 bars later
        after, blocked_by = step(self, s, action)
        after.price = self.market.close[torch.clamp(after.bar + 5, max=self.market.n_bars - 1)]
        return after, blocked_by

    monkeypatch.setattr(vec_env.VecExitEnv, "_transition", five_ahead)
    found = probe_decisions(asm, [r for r, _ in paths], make_rebuild(asm), modes=("truncate",),
                            histories=[h for _, h in paths])
    price = [leak for leak in found if leak.component.endswith(": price")]
    assert price
    for row, _ in paths:  # poisoned after decision k, the price went wrong from decision k - 4 on
        k = int(row.k[0])
        first = min((leak.k for leak in price if leak.trade == int(row.trade[0])), default=None)
        assert first == max(1, k - 4), (k, first)
        assert any("the future poisoned from decision" in leak.detail for leak in price if leak.k < k)


@pytest.mark.parametrize(
    ("name", "kind", "culprit"),
    [
        ("zoo_next_close", "feature", "zoo_next_close.next_close_ret"),
        ("zoo_centred_ma", "feature", "zoo_centred_ma.close_minus_cma_atr"),
        ("zoo_peek_entry", "entry", "entry strategy 'zoo_peek_entry'"),
        ("zoo_peek_guard", "guard", "'zoo_peek_guard' from zoo (no distribution)"),
        # named alone, not with v4's min_exit_bar it is combined with
        ("zoo_peek_mask", "mask", "'zoo_peek_mask' from zoo (no distribution)"),
        ("zoo_long_memory", "lookback", "zoo_long_memory.momentum_20_atr"),
    ],
)
def test_every_planted_leak_is_caught_and_named(name, kind, culprit):
    _, asm, pools, _ = prepared(name)
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    assert report.verdict == "FAIL"
    causes = {(c["kind"], c["component"].split(" [")[0]) for c in report.culprits() if c["kind"] != "policy"}
    assert causes == {(kind, culprit)}, report.format()
    # one culprit per cause: the trade replay's findings name a feature as the decision's do
    assert len([c for c in report.culprits() if c["kind"] != "policy"]) == 1, report.format()


def test_a_feature_reading_the_next_bar_s_time_is_caught_at_a_segment_end():
    """Trial Y: the poisonings keep timestamps, so only truncation on the last bar before a hole
    shows a feature flagging "a hole comes next"; a sample spread over time missed it at 64
    decisions. A few decisions are taken on such bars."""
    from exitcore.evaluation.audit import _at_segment_ends

    _, asm, pools, _ = prepared("zoo_next_gap")
    report = audit(asm, pools["test"], n_decisions=16, seed=3)
    assert report.verdict == "FAIL", report.format()
    assert {(c["kind"], c["component"].split(" [")[0]) for c in report.culprits()
            if c["kind"] != "policy"} == {("feature", "zoo_next_gap.hole_next")}
    bars = torch.arange(asm.market.n_bars)
    edges = _at_segment_ends(asm.market, bars, 64, 0)
    assert len(edges) == 4 and bool((asm.market.segment_end[torch.as_tensor(edges)] == torch.as_tensor(edges)).all())


def test_an_entry_strategys_extra_column_from_the_future_is_a_leak():
    """The entry re-check compared only the four defining columns: a column grading each trade by
    the next 8 bars passed, and a feature reading it took v4 from Sharpe -10.8 to -0.1 (trial T)."""
    from exitcore.evaluation.audit import check_entries

    _, asm, pools, _ = prepared("zoo_graded_entry")
    rows = list(range(0, len(asm.trades.frame), max(1, len(asm.trades.frame) // 6)))[:6]
    findings = check_entries(asm, rows)
    assert findings and all(f.kind == "entry" for f in findings)
    assert any(re.search(r"the trade at signal bar \d+ changes grade from ", f.detail) for f in findings), findings
    _, honest, _, _ = prepared("zoo_graded_entry_past")  # graded by the past only: no finding
    assert check_entries(honest, rows) == []


def test_an_entry_strategy_serving_trades_it_kept_from_its_first_run_is_found():
    """An entry strategy that keeps its first run's trades at module level serves the same trades
    on every truncated or poisoned rerun: the reruns agreed and the audit passed a strategy that
    enters on the entry bar's own move."""
    from exitcore.evaluation.audit import check_entries, check_entry_state

    import zoo

    _, asm, pools, _ = prepared("zoo_cached_peek_entry")  # cached per process: its first run may be long gone
    zoo._CACHE["peek_trades"] = asm.trades.frame  # what that first run on all the bars kept
    rows = list(range(0, len(asm.trades.frame), max(1, len(asm.trades.frame) // 6)))[:6]
    assert check_entries(asm, rows) == []  # the reruns cannot see it
    (finding,) = check_entry_state(asm)
    assert finding.kind == "held" and finding.component.startswith("entry strategy 'zoo_cached_peek_entry' [zoo")
    n = len(asm.trades.frame)
    assert f"it still holds the [{n}] array it held after its first run (_CACHE['peek_trades']['signal_bar'])" in finding.detail
    report = audit(asm, pools["test"], n_decisions=4, seed=3)
    assert report.verdict == "FAIL" and "KEEPS STATE BETWEEN BUILDS entry strategy 'zoo_cached_peek_entry'" in report.format()
    # strategies keeping nothing, or only the bars (and timestamps) they were given, pass
    for name in ("zoo_peek_entry", "v4_no_lookahead", "zoo_graded_entry", "zoo_keeps_bars_entry"):
        assert check_entry_state(prepared(name)[1]) == [], name


def test_missing_values_in_extra_trade_columns_agree_with_themselves():
    """Text with NaN, or dates with NaT, in an entry strategy's extra column were reported as a
    change ('NaT to NaT', 'change order') on identical trades (review AC)."""
    import numpy as np
    import pandas as pd

    from exitcore.evaluation.audit import _first_trade_difference

    trades = pd.DataFrame({"signal_bar": [1, 2], "direction": [1, -1], "stop_dist": [0.1, np.nan],
                           "target_dist": [0.2, 0.4], "tag": ["a", np.nan], "seen": [pd.Timestamp("2020-01-01"), pd.NaT],
                           "my note": [None, "b"]})  # a name that is no identifier: rows are read as tuples
    assert _first_trade_difference(trades, trades.copy(), 5) == ""
    changed = trades.copy()
    changed.loc[1, "tag"] = "z"
    assert _first_trade_difference(trades, changed, 5) == "the trade at signal bar 2 changes tag from nan to 'z'"
    changed = trades.copy()
    changed.loc[0, "my note"] = "c"
    assert _first_trade_difference(trades, changed, 5) == "the trade at signal bar 1 changes my note from nan to 'c'"


@pytest.mark.parametrize("window", [5, 16, 500])
def test_a_causal_rolling_statistic_with_its_lookback_declared_passes(window):
    """pandas' rolling std keeps a trace of the prices that passed through its window: huge
    prices (1e6) before the lookback turned a z-score of -1.43 into -0.22 (a false FAIL advising
    a lookback longer than the test split); ten, even two times the prices still moved a short
    window's z-score by up to 1e-5 of its value."""
    import dataclasses

    from exitcore.env.causality import sample_decision_rows
    from exitcore.env.lookback import probe_lookback

    features = (f'features=[{_V4_FEATURES}, {{ name = "zoo_rolling_z", params = {{ window = {window} }} }}]')
    _, asm, pools, _ = prepared("zoo_rolling_z", features)
    env = asm.make_env(torch.as_tensor(pools["test"])[:8], auto_reset=False)
    row = sample_decision_rows(env, 1, lambda m: torch.zeros(m.shape[0], dtype=torch.int64))[0]
    rows = [dataclasses.replace(row, bar=torch.tensor([bar])) for bar in range(600, asm.market.n_bars, 37)]
    assert [leak.detail for leak in probe_lookback(asm, rows) if "close_z" in leak.component] == []
    # the same window declared one bar short is still caught
    specs = list(asm.components.feature_specs)
    i = [n.name for n in asm.components.features].index("zoo_rolling_z")
    specs[i] = attrs.evolve(specs[i], lookback=window - 2)
    short = attrs.evolve(asm, components=attrs.evolve(asm.components, feature_specs=tuple(specs)))
    for mode in ("nan", "huge"):
        assert {leak.kind for leak in probe_lookback(short, rows[:4], modes=(mode,))} == {"lookback"}, mode


def test_a_leak_kept_in_a_module_level_cache_is_found_by_the_table_it_keeps():
    """Every rebuild served the clean table from the cache: the audit passed a feature that is
    the next bar's move, and the run scored a Sharpe of 3.4 after one update."""
    _, asm, pools, _ = prepared("zoo_cached_next")
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    assert report.verdict == "FAIL"
    (culprit,) = [c for c in report.culprits() if c["kind"] != "policy"]
    assert culprit["kind"] == "held" and culprit["component"].startswith("feature zoo_cached_next [zoo")
    assert f"it still holds the [{asm.market.n_bars}] array it held before (table)" in culprit["first"]["detail"]
    assert "KEEPS STATE BETWEEN BUILDS feature zoo_cached_next" in report.format()


def test_a_cached_table_of_one_row_less_than_the_bars_is_found_too():
    """An np.diff table (n_bars - 1 rows) kept at module level passed: only arrays of exactly
    n_bars rows were looked for (trial T: it took v4 from Sharpe -8.9 to -4.6, audit PASS)."""
    _, asm, _, _ = prepared("zoo_cached_diff")
    from exitcore.evaluation.audit import check_held_state, make_rebuild

    (finding,) = check_held_state(asm, make_rebuild(asm))
    assert finding.kind == "held" and finding.component.startswith("feature zoo_cached_diff [zoo")
    assert f"it still holds the [{asm.market.n_bars - 1}] array it held before (moves)" in finding.detail


def test_per_bar_arrays_are_those_near_the_bar_count_not_any_constant_table():
    """A lookup grid of 8,193 entries kept at module level was taken for per-bar data at 8,821
    bars (review AC): per-bar means n_bars, a few less (np.diff) or the windows' n_bars - w + 1."""
    import numpy as np

    from exitcore.env.held_state import held_arrays

    arrays = {n: np.zeros(n) for n in (1000, 999, 1002, 983, 982, 900, 8193)}
    arrays["wide"] = np.zeros((3, 1000))

    def fn():
        return arrays

    found = {shape for _, shape in held_arrays([fn], 1000, set(), slack=17).values()}
    assert found == {(1000,), (999,), (1002,), (983,), (3, 1000)}


def test_pandas_values_are_found_where_they_are_stored_not_in_a_converted_copy():
    """A categorical (or masked) Series' to_numpy() is a temporary whose address the next one of
    the same size reuses: two unrelated Series computed anew looked like one array held twice
    (review AE). The stored values are walked instead; a Series kept between calls is found."""
    import numpy as np
    import pandas as pd

    from exitcore.env.held_state import held_arrays

    def series(kind):
        values = np.arange(1000) % 7
        return {"category": pd.Series(values).astype("category"), "Int64": pd.Series(values, dtype="Int64"),
                "float": pd.Series(values * 1.0)}[kind]

    from exitcore.env.held_state import storage_of

    stored = {"category": lambda s: s.array.codes, "Int64": lambda s: s.array._data, "float": lambda s: s.to_numpy()}
    for kind in ("category", "Int64", "float"):
        first, second = series(kind), series(kind)
        a = held_arrays([lambda first=first: first], 1000, set())
        b = held_arrays([lambda second=second: second], 1000, set())
        assert set(a) == {storage_of(stored[kind](first))} and set(b) == {storage_of(stored[kind](second))}, kind
        assert not set(a) & set(b), kind
        kept = held_arrays([lambda: {"x": first}], 1000, set())
        assert set(kept) == set(a), kind
    frame = pd.DataFrame({"c": series("category"), "f": series("float")})
    assert len(held_arrays([lambda: frame], 1000, set())) == 2  # the categorical's codes and the floats
    # by position, each column: a repeated name gave a frame, walked to nothing
    twice = pd.concat([pd.DataFrame({"a": series("float")}), pd.DataFrame({"a": series("float") + 1})], axis=1)
    assert len(held_arrays([lambda: twice], 1000, set())) == 2
    arrow = pd.Series([str(i) for i in range(1000)], dtype="string[pyarrow]")  # pandas 3's strings: its buffers
    assert set(held_arrays([lambda: arrow], 1000, set())) == set(held_arrays([lambda: {"kept": arrow}], 1000, set())) != set()
    levels = pd.MultiIndex.from_arrays([np.arange(1000), np.arange(1000) % 3])
    assert held_arrays([lambda: levels], 1000, set())  # walked, not an error


def test_no_shipped_or_causal_component_is_said_to_keep_state():
    for name in ("v4_no_lookahead", "zoo_rolling_z", "zoo_random", "zoo_counter", "zoo_long_memory"):
        _, asm, _, _ = prepared(name)
        from exitcore.evaluation.audit import check_held_state, make_rebuild

        assert check_held_state(asm, make_rebuild(asm)) == [], name


def test_a_normalisation_fitted_on_all_data_reads_the_future_and_the_whole_past():
    _, asm, pools, _ = prepared("zoo_global_norm")
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    causes = {(c["kind"], c["component"].split(" [")[0]) for c in report.culprits() if c["kind"] != "policy"}
    assert causes == {("feature", "zoo_global_norm.close_z"), ("lookback", "zoo_global_norm.close_z")}
    assert len([c for c in report.culprits() if c["kind"] != "policy"]) == 2, report.format()
    assert "it reads back to the first bar of the data" in report.format()
    # the distance given is the cited decision's own (it was the farthest decision's, 8638 bars,
    # beside a first offending decision at bar 5668)
    findings = [f for f in report.findings if f.kind == "lookback"]
    assert len({f.bar for f in findings}) > 1
    for f in findings:
        assert f"it reads back to the first bar of the data ({f.bar:,} bars before this decision)" in f.detail
    (past,) = [c for c in report.culprits() if c["kind"] == "lookback"]
    assert f"({past['first']['bar']:,} bars before this decision)" in report.format()


def test_a_feature_reading_past_its_declared_lookback_fails_saying_how_far_it_reads():
    _, asm, pools, _ = prepared("zoo_long_memory")
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    (culprit,) = [c for c in report.culprits() if c["kind"] != "policy"]
    assert culprit["modes"] == ["nan", "huge"] and culprit["count"] == 2 * N
    assert f"(declares lookback 5); it reads at least 20 bars back (the farthest of the {N} decision(s) checked that read " \
           "past its lookback): declare lookback >= 20" in culprit["first"]["detail"]
    text = report.format()
    assert "READS BEYOND ITS LOOKBACK feature zoo_long_memory.momentum_20_atr" in text
    assert "when the bars before its lookback are NaN" in text and "purge gap between the splits too short" in text
    assert format_audit(json.loads(json.dumps(report.to_dict()))) == text  # renders from results.json
    # only the past poisonings the audit was asked for are applied to the past
    future_only = audit(asm, pools["test"], n_decisions=N, modes=("truncate", "random_walk"), seed=3)
    assert future_only.verdict == "PASS" and "lookback" not in future_only.format()


def test_random_components_pass_and_a_random_leak_is_still_a_leak():
    """Random components differ on every rebuild. Rebuilt with the global generators seeded
    alike they draw the same numbers, so only the bars can make them differ: random but causal
    components pass, and a leak with noise on top is still named a leak (an earlier version
    reported it only as "not reproducible")."""
    _, asm, pools, _ = prepared("zoo_random")
    # whatever the global generator's state when the audit starts (a re-probed row's policy
    # action was compared with its first, unseeded probe's: a false policy leak, 1 run in 2)
    for global_seed in range(6):
        torch.manual_seed(global_seed)
        report = audit(asm, pools["test"], n_decisions=N, seed=3)
        assert report.verdict == "PASS", (global_seed, report.format())
    _, asm, pools, _ = prepared("zoo_noisy_leak")
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    causes = {(c["kind"], c["component"].split(" [")[0]) for c in report.culprits() if c["kind"] != "policy"}
    assert causes == {("feature", "zoo_noisy_leak.noisy_next_move")}, report.format()


def test_a_component_keeping_state_between_calls_is_reported_as_untestable():
    _, asm, pools, _ = prepared("zoo_counter")
    report = audit(asm, pools["test"], n_decisions=N, seed=3)
    assert report.verdict == "FAIL"  # untestable is not a pass
    assert {(c["kind"], c["component"].split(" [")[0]) for c in report.culprits()} == {("unstable", "feature zoo_counter.calls_mod_7")}
    text = report.format()
    assert "NOT REPRODUCIBLE feature zoo_counter.calls_mod_7" in text and "LEAK" not in text
    assert "when rebuilt on the same, unpoisoned bars" in text and "state kept between calls" in text
    results = {"audit_verdict": "FAIL", "audit_verdict_from": ["lookahead_audit"], "evaluators": {"lookahead_audit": report.to_dict()}}
    assert "look-ahead audit: FAIL (not reproducible, so untested: feature zoo_counter.calls_mod_7" in summary_text(results)
    assert describe_verdict("FAIL", ["lookahead_audit"], audit_why(results["evaluators"])) == \
        "look-ahead audit FAIL (a component is not reproducible, so it could not be tested)"


def test_the_audit_text_writes_its_counts_with_thousands_separators():
    """`2366 fills` and `applied to 2366 trades` beside `2,366 trades evaluated` (review AG)."""
    from exitcore.evaluation.audit import suspect_reasons

    _, asm, pools, _ = prepared("v4_no_lookahead")
    stored = audit(asm, pools["test"], n_decisions=2, modes=("nan",), seed=3).to_dict()
    text = format_audit({**stored, "n_fills": 2366, "n_entries": 1200})
    assert "1,200 entries re-run on truncated/poisoned bars; 2,366 fills" in text
    assert suspect_reasons({"n_trades": 2366, "label": "TEST"})[1] == "plausibility rules applied to 2,366 trades on TEST"


def test_an_audit_stored_before_the_lookback_check_does_not_claim_it():
    _, asm, pools, _ = prepared("v4_no_lookahead")
    stored = audit(asm, pools["test"], n_decisions=2, modes=("nan",), seed=3).to_dict()
    assert "each feature's lookback (nan before it)" in format_audit(stored)
    assert "features read no further back than they declare" in format_audit(stored)
    del stored["lookback_modes"]  # what results.json of an older run holds
    old = format_audit(stored)
    assert "lookback" not in old and "PASS" in old


def test_the_lookback_to_declare_is_the_farthest_any_checked_decision_reads():
    """A feature reading back to its trade's signal bar reads further the longer the trade is
    held: the advice is the farthest reach among the decisions that read past the lookback,
    not the first one's (which understated it, and then passed)."""
    from exitcore.assembly import assemble
    from exitcore.components import FeatureSpec

    def since_signal(_params, ctx):
        signal = ctx.trades.signal_bar

        def compute(market, state):
            return (market.close[state.bar] - market.close[signal[state.trade]])[:, None].to(torch.float32)

        return FeatureSpec(("since_signal",), 1, compute)

    _, asm, pools, _ = prepared("v4_no_lookahead")
    res = asm.resolved
    i = [rc.name for rc in res.features].index("time_of_day")
    features = list(res.features)
    features[i] = attrs.evolve(features[i], component=attrs.evolve(features[i].component, build=since_signal))
    probe = assemble(attrs.evolve(res, features=tuple(features)), asm.bars, trades=asm.trades)
    report = audit(probe, pools["test"], n_decisions=16, modes=("huge",), seed=3)
    (culprit,) = [c for c in report.culprits() if c["kind"] == "lookback"]
    found = [f for f in report.findings if f.kind == "lookback"]
    reads = [f.bar - int(probe.table.signal_bar[f.trade]) for f in found]
    assert f"declare lookback >= {max(reads)}" in culprit["first"]["detail"]
    assert max(reads) > reads[0]  # the first offending decision alone understates it


def test_a_shipped_feature_declaring_one_bar_less_than_it_reads_is_caught():
    """price_window(16) reads C[b-16]: declared 16 it passes (the causal sets above); declared 15 it fails."""
    _, asm, pools, _ = prepared("v4_no_lookahead")
    specs = asm.components.feature_specs
    i = [n.name for n in asm.components.features].index("price_window")
    assert specs[i].lookback == 16
    short = list(specs)
    short[i] = attrs.evolve(specs[i], lookback=15)
    lying = attrs.evolve(asm, components=attrs.evolve(asm.components, feature_specs=tuple(short)))
    report = audit(lying, pools["test"], n_decisions=2, modes=("huge",), seed=3)
    assert report.verdict == "FAIL"
    (culprit,) = [c for c in report.culprits() if c["kind"] != "policy"]
    assert culprit["kind"] == "lookback" and culprit["component"].startswith("price_window.move_15 ")
    assert "declare lookback >= 16" in culprit["first"]["detail"]


class _ReadsColumn(torch.nn.Module):
    """A policy that exits when the given observation column is positive, else holds."""

    def __init__(self, column: int):
        super().__init__()
        self.column = column

    def forward(self, obs):
        x = obs[:, self.column]
        logits = torch.stack([-x, x, -1e3 * torch.ones_like(x), -1e3 * torch.ones_like(x), -1e3 * torch.ones_like(x)], dim=1)
        return logits, torch.zeros_like(x)


def test_a_component_failing_on_poisoned_bars_is_a_leak_naming_it():
    _, asm, pools, _ = prepared("zoo_needs_clean_data")
    report = audit(asm, pools["test"], n_decisions=2, modes=("truncate", "nan"), seed=3)
    assert report.verdict == "FAIL"
    error, past = report.culprits()
    assert error["kind"] == "error" and error["modes"] == ["nan"]
    assert "'zoo_needs_clean_data'" in error["first"]["detail"] and "prices contain NaN" in error["first"]["detail"]
    # it refuses NaN anywhere, so NaN before its lookback (0) fails it too
    assert past["kind"] == "lookback" and past["modes"] == ["nan"]
    assert "prices contain NaN" in past["first"]["detail"] and "it reads back to the first bar" in past["first"]["detail"]


def test_a_policy_acting_on_the_leak_is_a_consequence_of_the_feature_not_a_leak():
    """Its action changed because its observation did: the policy was listed as a second LEAK
    beside the feature (and named in the run's summary as a `leak in policy`)."""
    _, asm, pools, _ = prepared("v3")
    column = asm.components.feature_names.index("leaky_next_move.next_move_atr")
    report = audit(asm, pools["test"], policy=_ReadsColumn(column), policy_label="probe", n_decisions=N, seed=3)
    assert [c["kind"] for c in report.culprits()] == ["feature"]
    assert any(f.kind == "policy" and "became" in f.detail for f in report.findings)  # still recorded
    (policy,) = report.consequences()
    assert policy["component"] == "the probe policy" and policy["because"] == ["feature leaky_next_move.next_move_atr"]
    assert policy["count"] == sum(f.kind == "policy" for f in report.findings)
    assert 0 < policy["decisions"] <= N
    text = report.format()
    assert "LEAK policy" not in text
    assert (f"  CONSEQUENCE policy the probe policy: its action changed at {plural(policy['decisions'], 'decision')} "
            "because its inputs did there (feature leaky_next_move.next_move_atr), not a leak of its own") in text
    assert format_audit(json.loads(json.dumps(report.to_dict()))) == text  # renders from results.json
    results = {"audit_verdict": "FAIL", "audit_verdict_from": ["lookahead_audit"], "evaluators": {"lookahead_audit": report.to_dict()}}
    summary = summary_text(results)
    assert "look-ahead audit: FAIL (leak in feature leaky_next_move.next_move_atr" in summary
    assert "leak in policy" not in summary


class _Flips(torch.nn.Module):
    """A policy that reads something besides its inputs: its own call count (EXIT, HOLD, EXIT, ...)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, obs):
        self.calls += 1
        x = torch.full((obs.shape[0],), 1e3 if self.calls % 2 else -1e3)
        logits = torch.stack([-x, x, -1e3 * torch.ones_like(x), -1e3 * torch.ones_like(x), -1e3 * torch.ones_like(x)], dim=1)
        return logits, torch.zeros_like(x)


def test_a_policy_whose_action_changes_with_its_inputs_unchanged_is_a_leak():
    _, asm, pools, _ = prepared("v4_no_lookahead")
    report = audit(asm, pools["test"], policy=_Flips(), policy_label="flipping", n_decisions=2, modes=("nan",), seed=3)
    assert report.verdict == "FAIL" and report.consequences() == []
    (culprit,) = report.culprits()
    assert (culprit["kind"], culprit["component"]) == ("policy", "the flipping policy")
    assert "LEAK policy the flipping policy" in report.format() and "CONSEQUENCE" not in report.format()


def test_fills_at_the_next_open_are_checked():
    _, asm, pools, _ = prepared("v4_no_lookahead")
    assert check_fills(asm, pools["test"]) == []
    shifted = attrs.evolve(asm, table=attrs.evolve(asm.table, entry_open=asm.table.entry_open + 1e-5))
    found = check_fills(shifted, pools["test"])
    assert found and {f.kind for f in found} == {"fill"} and "open[s + 1]" in found[0].detail


def test_decisions_are_sampled_across_the_split_reproducibly():
    _, asm, pools, splits = prepared("v4_no_lookahead")
    act = policy_actor(random_policy(asm, seed=0))
    rows = sample_decisions(asm, pools["test"], act, 10, seed=1)
    again = sample_decisions(asm, pools["test"], act, 10, seed=1)
    other = sample_decisions(asm, pools["test"], act, 10, seed=2)
    bars = [int(r.bar[0]) for r in rows]
    assert len(rows) == 10 and bars == sorted(bars) and bars == [int(r.bar[0]) for r in again]
    assert bars != [int(r.bar[0]) for r in other]
    test = next(s for s in splits if s.name == "test")
    assert bars[0] < test.start_bar + 0.2 * test.n_bars and bars[-1] > test.end_bar - 0.2 * test.n_bars
    assert all(not bool(r.done[0]) for r in rows)


def _metrics(**kw):
    base = dict(split="test", label="TEST (out-of-sample)", in_sample=False, n_trades=200, win_rate=0.45,
                avg_bars=12.0, sharpe=0.8, profit_factor=1.2)
    return {**base, **kw}


def test_plausibility_rules():
    assert suspect_reasons(_metrics())[0] == []
    reasons, note = suspect_reasons(_metrics(win_rate=0.97, avg_bars=1.3))
    assert len(reasons) == 1 and "win rate > 80 %" in reasons[0] and "97.0 %" in reasons[0] and "200 trades" in note
    assert suspect_reasons(_metrics(win_rate=0.97, avg_bars=20.0))[0] == []  # long winners are not the v3 signature
    assert "Sharpe > 4" in suspect_reasons(_metrics(sharpe=11.0))[0][0]
    assert "profit factor > 5" in suspect_reasons(_metrics(profit_factor=float("inf")))[0][0]
    assert len(suspect_reasons(_metrics(win_rate=0.97, avg_bars=1.3, sharpe=11.0, profit_factor=7.3))[0]) == 3
    assert suspect_reasons(_metrics(sharpe=11.0, in_sample=True))[0] == []
    reasons, note = suspect_reasons(_metrics(sharpe=11.0, n_trades=12))
    assert reasons == [] and "only 12" in note
    assert suspect_reasons(None) == ([], suspect_reasons(None)[1]) and "finished run" in suspect_reasons(None)[1]


def test_suspect_verdict_when_no_leak_is_found_but_results_are_implausible():
    _, asm, pools, _ = prepared("v4_no_lookahead")
    report = audit(asm, pools["test"], n_decisions=2, modes=("truncate",), metrics=_metrics(sharpe=11.0), seed=0)
    assert report.verdict == "SUSPECT" and report.exit_code == 3
    assert "SUSPECT annualised daily Sharpe > 4" in report.format()
    assert format_audit(json.loads(json.dumps(report.to_dict()))) == report.format()  # renders from results.json


def test_bad_modes_and_empty_pools_are_refused():
    _, asm, pools, _ = prepared("v4_no_lookahead")
    with pytest.raises(ValueError, match="unknown poison modes"):
        audit(asm, pools["test"], modes=("future",))
    with pytest.raises(ValueError, match="no trades"):
        audit(asm, [], n_decisions=2)


# --------------------------------------------------------------------------- the command

SMALL = ["--set", "data.params.years=0.35", "--set", "ppo.hidden=[32, 32]", "--decisions", str(N)]


def test_cli_audit_v4_passes_and_v3_fails_naming_the_feature():
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "v4", *SMALL])
    assert ok.exit_code == 0, ok.output
    assert "look-ahead audit of v4_no_lookahead on TEST (out-of-sample): PASS" in ok.output
    bad = runner.invoke(cli, ["audit", "v3", *SMALL, "--json"])
    assert bad.exit_code == 1, bad.output
    report = json.loads(bad.stdout)  # the stages go to stderr
    assert report["verdict"] == "FAIL" and report["exit_code"] == 1
    assert report["culprits"][0]["component"].startswith("leaky_next_move.next_move_atr")


def test_cli_audit_bad_input_exits_2(tmp_path):
    runner = CliRunner(env={"EXITCORE_RUNS_DIR": str(tmp_path / "runs")})
    unknown = runner.invoke(cli, ["audit", "v9_nonexistent"])
    assert unknown.exit_code == 2 and "not an experiment" in unknown.output and "not a run" in unknown.output
    bad_mode = runner.invoke(cli, ["audit", "v4", "--mode", "future"])
    assert bad_mode.exit_code == 2
    # exit status 1 means "leak found": a bad device or seed must not read as a FAIL verdict
    for args, message in ((["--device", "tpu"], "Invalid value for '--device': expected auto, cpu, cuda or cuda:N, got 'tpu'"), (["--seed", "-3"], "-3 is not in the range 0<=x<=9223372036854775807")):
        result = runner.invoke(cli, ["audit", "v4", *args])
        assert result.exit_code == 2 and message in result.output, result.output
    if not torch.cuda.is_available():
        no_gpu = runner.invoke(cli, ["audit", "v4", "--device", "cuda"])
        assert no_gpu.exit_code == 2 and "CUDA is not available" in no_gpu.output


def test_cli_audit_of_a_finished_run_uses_its_trained_policy(finished_run, tmp_path):
    run_dir = finished_run["results"].paths[0].parent
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", str(run_dir), "--decisions", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "PASS" and report["policy"] == "trained (checkpoint.pt)"
    assert "plausibility rules applied" in report["suspect_note"]
    refused = runner.invoke(cli, ["audit", str(run_dir), "--set", "ppo.seed=1"])
    assert refused.exit_code == 2 and "not to a finished run" in refused.output
    # --data says where a run's bars are now (its file moved): other bars are refused by their hash
    other = runner.invoke(cli, ["audit", str(run_dir), "--data", "synthetic?seed=7", "--decisions", "4"])
    assert other.exit_code == 2 and "'synthetic?seed=7' now loads data with hash" in other.output, other.output
    assert "the data changed since the run" in other.output


def test_cli_audit_of_a_run_notes_a_verdict_another_evaluator_recorded(finished_run, tmp_path):
    """`audit RUN` re-checks look-ahead only: when a plugin evaluator failed the run, its PASS
    must not read as a clean bill, so it says on stderr what the run recorded (and its status
    stays the look-ahead audit's)."""
    import shutil

    run_dir = tmp_path / "plugin_fail"
    shutil.copytree(finished_run["results"].paths[0].parent, run_dir)
    runner = CliRunner()
    quiet = runner.invoke(cli, ["audit", str(run_dir), "--decisions", "2", "-q"])
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr
    results = json.loads((run_dir / "results.json").read_text())
    results["evaluators"]["exit_stats"] = {"verdict": "FAIL"}
    results["audit_verdict"], results["audit_verdict_from"] = "FAIL", ["exit_stats"]
    (run_dir / "results.json").write_text(json.dumps(results))
    result = runner.invoke(cli, ["audit", str(run_dir), "--decisions", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout
    assert ("note: the run's recorded audit verdict FAIL from evaluator 'exit_stats'; this command re-checks "
            "look-ahead only") in result.stderr


def test_audit_of_a_run_refuses_changed_data(finished_run, tmp_path):
    import shutil

    from exitcore.errors import DataError
    from exitcore.evaluation.audit import audit_run

    from evalkit import host

    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run["results"].paths[0].parent, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info["data"]["hash"] = "0" * 16
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="the data changed since the run"):
        audit_run(run_dir, host(), n_decisions=2)


def test_audit_of_a_run_refuses_data_whose_volume_changed(finished_run, tmp_path):
    """Same timestamps and prices, another volume column: a feature reading volume would be
    audited on other data than it trained on, which the content hash alone did not see."""
    import shutil

    from exitcore.errors import DataError
    from exitcore.evaluation.audit import audit_run

    from evalkit import host

    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run["results"].paths[0].parent, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    assert set(info["data"]["column_hashes"]) == {"volume"}
    info["data"]["column_hashes"]["volume"] = "0" * 16
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"but other values in its other columns \('volume' differs\).*give the run's "
                                        r"own file with `exitcore audit .*copy --data PATH`"):
        audit_run(run_dir, host(), n_decisions=2)
    del info["data"]["column_hashes"]  # a run recorded before the column hashes: audited as before
    (run_dir / "run.json").write_text(json.dumps(info))
    assert audit_run(run_dir, host(), n_decisions=2).verdict == "PASS"


def _run_recorded_with_code(finished_run, tmp_path, **sources):
    """A copy of the finished run whose run.json records the code it started with: today's
    plugins' source hashes, but ``sources`` (plugin name -> source hash) where given."""
    import shutil

    from exitcore.plugins import code_hash

    from evalkit import host

    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run["results"].paths[0].parent, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    infos = [attrs.evolve(i, source=sources.get(i.name, i.source)) for i in host().plugin_infos()]
    info["plugins"] = [{"name": i.name, "distribution": i.distribution, "version": i.version, "source_hash": i.source}
                       for i in infos]
    info["code_hash"] = code_hash(infos, finished_run["resolved"].plugins_used())
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def test_audit_of_a_run_refuses_when_a_component_it_checks_changed_code(finished_run, tmp_path):
    """A leaky feature fixed after the run: the audit of the run judged today's feature with the
    run's policy and gave PASS as the run's verdict, whose results came from the leak (trial W)."""
    from exitcore.errors import ExitcoreError
    from exitcore.evaluation.audit import audit_run

    from evalkit import host

    from exitcore.plugins import plugin_label

    feature = next(i for i in host().plugin_infos() if i.name == "exitcore_features")
    run_dir = _run_recorded_with_code(finished_run, tmp_path, exitcore_features="1" * 16)
    with pytest.raises(ExitcoreError) as caught:
        audit_run(run_dir, host(), n_decisions=2)
    assert str(caught.value) == (
        f"cannot audit run {finished_run['info']['run_id']}: the code of plugins whose components the audit checks "
        "changed since it started: "
        f"{plugin_label(feature.name, feature.distribution, feature.version)} (source {'1' * 16} -> {feature.source}); "
        "the audit "
        "would judge today's code with the run's trained policy, and its verdict would not be the run's: restore the "
        "code the run started with, or audit today's code with `exitcore audit v4_no_lookahead` (a random-init "
        "policy) or a new run")


def test_audit_of_a_run_goes_on_when_only_code_it_does_not_check_changed(finished_run, tmp_path):
    """A reward term or an evaluator edited since, or exitcore itself (a newer audit), leave the
    components the audit judges as the run ran them; a run recorded without a code hash is
    audited as before."""
    from exitcore.errors import ExitcoreError
    from exitcore.evaluation.audit import audit_run

    from evalkit import host

    from exitcore.errors import ExitcoreWarning

    run_dir = _run_recorded_with_code(finished_run, tmp_path, exitcore_rewards="1" * 16,
                                      exitcore_evaluators="2" * 16, **{"exitcore.builtin.policies": "3" * 16})
    # said, not refused (trial AD: the PASS said nothing of the reward plugin edited since)
    with pytest.warns(ExitcoreWarning, match=r"the code of .*exitcore_rewards.* changed since run .* started; the audit "
                                              r"does not check it"):
        assert audit_run(run_dir, host(), n_decisions=2).verdict == "PASS"
    info = json.loads((run_dir / "run.json").read_text())
    info["plugins"] = []  # the code changed, and run.json cannot say which: refused
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(ExitcoreError, match=r"cannot audit run 20260101-000000-v4_no_lookahead-abcd: the code of "
                                            r"plugins whose components the audit checks may have changed since it "
                                            r"started \(code hash "):
        audit_run(run_dir, host(), n_decisions=2)
    del info["code_hash"]
    (run_dir / "run.json").write_text(json.dumps(info))
    assert audit_run(run_dir, host(), n_decisions=2).verdict == "PASS"


def test_entry_comparison_is_exact_per_row_and_describes_the_first_difference():
    import numpy as np
    import pandas as pd

    from exitcore.evaluation.audit import _first_trade_difference

    base = pd.DataFrame({"signal_bar": [3, 7, 7, 12], "direction": [1, -1, 1, 1],
                         "stop_dist": [0.001, np.nan, 0.002, 0.003], "target_dist": [0.002, 0.004, 0.004, 0.006]})
    assert _first_trade_difference(base, base.copy(), 12) == ""  # NaN equals NaN
    moved = base.copy()
    moved.loc[3, "target_dist"] = 0.0061
    assert _first_trade_difference(base, moved, 12) == "the trade at signal bar 12 changes target_dist from 0.006 to 0.0061"
    assert _first_trade_difference(base, base.iloc[:3], 12) == "the trade at signal bar 12 disappears when the bars after 12 change"
    # the first of two trades on bar 7 becomes a copy of the second: the per-bar walk sees the
    # same last trade on every bar; the row-by-row comparison still sees the change
    doubled = base.iloc[[0, 2, 2, 3]].reset_index(drop=True)
    assert _first_trade_difference(base, doubled, 12) == (
        "the trades with signal bars <= 12 change order or repeat when the bars after 12 change")


def test_a_rolling_window_checked_near_the_start_of_the_data_is_not_called_unbounded():
    """At a decision within its window of bar 0 a 20-bar momentum reads the first bar too: the
    advice stays 'declare >= 20' (it said 'reads back to the first bar ... use a rolling window')."""
    import dataclasses

    from exitcore.env.causality import sample_decision_rows
    from exitcore.env.lookback import probe_lookback

    _, asm, pools, _ = prepared("zoo_long_memory")
    env = asm.make_env(torch.as_tensor(pools["test"])[:8], auto_reset=False)
    row = sample_decision_rows(env, 2, lambda m: torch.zeros(m.shape[0], dtype=torch.int64))[0]
    early = dataclasses.replace(row, bar=torch.tensor([20]), k=torch.tensor([0]))
    for rows in ([row], [row, early], [early, row]):
        details = {leak.detail.split("; ", 1)[1] for leak in probe_lookback(asm, rows, modes=("nan",))}
        assert len(details) == 1 and "declare lookback >= 20" in details.pop(), rows
    (alone,) = {leak.detail.split("; ", 1)[1] for leak in probe_lookback(asm, [early], modes=("nan",))}
    assert alone.startswith("it reads back to the first bar of the data (20 bars before this decision)")


def test_a_seed_beyond_32_bits_is_audited():
    """numpy takes 32-bit seeds; ppo.seed and `audit --seed` are unbounded (a run with seed 2**32
    trained, then failed in the lookahead_audit evaluator)."""
    _, asm, pools, _ = prepared("v4_no_lookahead")
    assert audit(asm, pools["test"], n_decisions=2, seed=2**32 + 3).verdict == "PASS"


def test_a_long_probe_reports_its_progress(monkeypatch):
    """`audit --decisions 20000` sat silent for minutes: the probe now sends
    `probed i of n decisions` to the progress sink (shown by the CLI on a terminal)."""
    from exitcore.data import progress
    from exitcore.env import causality

    from exitcore.evaluation.audit import make_rebuild

    _, asm, pools, _ = prepared("v4_no_lookahead")
    rows = sample_decisions(asm, pools["test"], policy_actor(random_policy(asm, seed=0)), 3, seed=1)
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    said: list[str] = []
    with progress.progress_to(said.append):
        causality.probe_decisions(asm, rows, make_rebuild(asm), modes=("nan",))
    # each line counts the decisions done, up to the last: `probed 28 of 32` just before the
    # verdict read as if 4 decisions had been skipped
    assert said == [f"probed {i} of {len(rows)} decisions" for i in range(1, len(rows) + 1)]
    # the audit's other long loops too (on M1 data each took tens of seconds without a word)
    said.clear()
    with progress.progress_to(said.append):
        audit(asm, pools["test"], n_decisions=2, modes=("nan",), seed=1)
    assert "checked the lookbacks at 1 of 2 decisions" in said
    assert "re-ran the entry strategy for 1 of 2 entries" in said
    for template in ("probed {} of 2 decisions", "checked the lookbacks at {} of 2 decisions",
                     "re-ran the entry strategy for {} of 2 entries"):
        assert [line for line in said if line.startswith(template.split("{}")[0])][-1] == template.format(2)


def test_the_lookback_comparison_tolerates_rounding_only():
    from exitcore.env.lookback import _moved

    inf, nan = float("inf"), float("nan")
    pairs = [(nan, nan, False), (nan, 1.0, True), (1.0, nan, True), (inf, inf, False), (inf, -inf, True),
             (inf, 3e38, True), (0.0, -0.0, False), (1.0, 1.0 + 1e-7, False), (-0.19046451, -0.19046436, False),
             (1.0, 1.001, True), (1e-9, 2e-7, True), (0.0, 5e-8, False)]
    a = torch.tensor([p[0] for p in pairs], dtype=torch.float32)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.float32)
    assert _moved(a, b).tolist() == [p[2] for p in pairs]


def test_a_mask_difference_no_mask_plugin_made_names_the_engine():
    from exitcore.env.causality import ENGINE, compare_paths, replay_path, state_row
    from exitcore.env.state import EnvState

    _, asm, pools, _ = prepared("v4_no_lookahead")
    trade = int(pools["test"][0])
    actions = torch.zeros(3, dtype=torch.int64)
    clean = replay_path(asm, trade, actions)
    mask = clean.mask.clone()
    mask[1, 2] = ~mask[1, 2]  # the environment's own mask differs; every plugin's is as it was
    poisoned = attrs.evolve(clean, mask=mask)
    last = EnvState.from_tensors({k: v[3:4] for k, v in clean.states.items()})  # decision k = 3
    found = compare_paths(clean, poisoned, asm, "nan", state_row(last, 0))
    assert [(leak.kind, leak.component, leak.k) for leak in found] == [("mask", f"{ENGINE}: action mask", 1)]
    masks = clean.masks.clone()
    masks[1, 0, 2] = ~masks[1, 0, 2]  # min_exit_bar's own mask differs too: it is named, not the engine
    found = compare_paths(clean, attrs.evolve(poisoned, masks=masks), asm, "nan", state_row(last, 0))
    assert [(leak.kind, leak.component.split(" from ")[0]) for leak in found] == [("mask", "'min_exit_bar'")]
