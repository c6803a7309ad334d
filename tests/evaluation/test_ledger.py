"""The RL ledger: hand-computed trades, every column, sampling, files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from evalkit import one_torch_thread, prepared, resolved  # noqa: F401 - autouse fixture

from exitcore.actions import Action
from exitcore.assembly import assemble
from exitcore.data.bars import Bars, Trades
from exitcore.evaluation.audit import random_policy
from exitcore.evaluation.ledger import (
    action_strings,
    make_ledger,
    policy_actor,
    sampled_ledgers,
    write_atomic_ledger,
    write_ledgers,
)
from exitcore.evaluation.ledger_schema import LedgerError, read_ledger, validate_ledger

START = pd.Timestamp("2024-01-08 00:00", tz="UTC")
BAR = pd.Timedelta("15min")
H, E, T, B, P = (int(a) for a in Action)

# (open, high, low, close); three trades (signal bars 2, 10, 15) on a quiet series around 1.1000
_QUIET = (1.0995, 1.0998, 1.0992, 1.0995)
OHLC = [
    (1.0990, 1.0995, 1.0985, 1.0990), (1.0990, 1.0998, 1.0988, 1.0995), (1.0995, 1.1000, 1.0990, 1.0998),
    (1.1000, 1.1010, 1.0995, 1.1008),  # 3: entry of trade A, decision 0 at 1.1008
    (1.1008, 1.1020, 1.1005, 1.1018),  # 4: decision 1 at 1.1018
    (1.1018, 1.1030, 1.1012, 1.1020),  # 5: decision 2 at 1.1020
    (1.1020, 1.1028, 1.1000, 1.1002),  # 6: low 1.1000 touches A's breakeven stop 1.1001
    _QUIET, _QUIET, _QUIET, _QUIET,    # 7-10 (10: signal of trade B)
    (1.1000, 1.1032, 1.0998, 1.1030),  # 11: entry of trade B, decision 0 at 1.1030
    (1.1030, 1.1042, 1.1025, 1.1040),  # 12: decision 1 at 1.1040
    (1.1040, 1.1048, 1.1035, 1.1045),  # 13: decision 2 at 1.1045
    _QUIET,                            # 14
    _QUIET,                            # 15: signal of trade C
    (1.1000, 1.1003, 1.0990, 1.0995),  # 16: entry of trade C; its low takes the stop at once
    _QUIET, _QUIET,
]
TRADES = [(2, 1, 0.0020, 0.0040), (10, 1, 0.0030, 0.0050), (15, 1, 0.0005, 0.0040)]
C = 0.00005  # half the 1-pip spread


def hand_bars() -> Bars:
    idx = pd.date_range(START, periods=len(OHLC), freq="15min", tz="UTC", name="ts")
    return Bars(pd.DataFrame(OHLC, columns=["open", "high", "low", "close"], index=idx), "15min", 0.0001, source="hand")


def scripted(per_step: list[list[int]]):
    """An actor playing ``per_step[k]`` for the trades still open at step ``k`` (in pool order)."""
    calls = []

    def act(obs, mask):
        calls.append(obs.shape[0])
        return torch.tensor(per_step[len(calls) - 1], dtype=torch.int64)

    act.calls = calls
    return act


def test_hand_computed_ledger_every_column():
    # v2's guards: EXIT needs +10 pips and decision >= 2, PARTIAL needs +20 pips
    res = resolved("v2_exit_guards")
    asm = assemble(res, hand_bars(), trades=Trades(pd.DataFrame(TRADES, columns=["signal_bar", "direction", "stop_dist", "target_dist"])))
    act = scripted([[E, P], [B, E], [P, E]])
    led = make_ledger(asm, [0, 1, 2], "test", act, "rl")
    validate_ledger(led)
    assert act.calls == [2, 2, 2]  # trade C never reaches the agent; one call per step, not per trade
    a, b, c = (led.iloc[i] for i in range(3))
    ea, eb, ec = 1.1000 + C, 1.1000 + C, 1.1000 + C

    # A: EXIT blocked (decision 0 < 2), stop to breakeven 1.1001, PARTIAL blocked (+17 pips < 20),
    # then bar 6 touches the breakeven stop: a zero trade after costs
    assert a.actions == "EBP" and a.executed == "HBH" and a.blocked == 2 and a.n_decisions == 3
    assert (a.exit_reason, a.bars_held, a.stop_moves, a.partials, a.at_breakeven) == ("stop", 4, 1, 0, True)
    assert a.entry_price == pytest.approx(ea, abs=1e-12) and a.exit_price == pytest.approx(1.1001 - C, abs=1e-12)
    assert a.pnl_gross == pytest.approx(0.0001 / ea, abs=1e-12) and a.cost == pytest.approx(2 * C / ea, abs=1e-12)
    assert a.pnl == pytest.approx(0.0, abs=1e-12) and a.pnl_pips == pytest.approx(0.0, abs=1e-8)
    assert (a.signal_time, a.entry_time, a.exit_time) == (START + 2 * BAR, START + 3 * BAR, START + 7 * BAR)

    # B: PARTIAL at +29 pips closes half at 1.1030, EXIT blocked at decision 1, EXIT at 1.1045
    assert b.actions == "PEE" and b.executed == "PHE" and (b.blocked, b.partials, b.stop_moves) == (1, 1, 0)
    assert (b.exit_reason, b.bars_held, b.at_breakeven) == ("agent", 3, False)
    gross = (0.5 * 0.0030 + 0.5 * 0.0045) / eb
    assert b.pnl_gross == pytest.approx(gross, abs=1e-12) and b.cost == pytest.approx(2 * C / eb, abs=1e-12)
    assert b.pnl == pytest.approx(gross - 2 * C / eb, abs=1e-12)
    assert b.pnl_pips == pytest.approx(b.pnl * eb / 0.0001) and b.pnl_ccy == pytest.approx(b.pnl * 100_000)
    assert b.exit_price == pytest.approx(1.1045 - C, abs=1e-12) and b.exit_time == START + 14 * BAR

    # C: the entry bar takes the stop before any decision; it is in the ledger all the same
    assert (c.n_decisions, c.actions, c.executed, c.exit_reason, c.bars_held) == (0, "", "", "stop", 1)
    stop = ec - 0.0005
    assert c.exit_price == pytest.approx(stop - C, abs=1e-12) and c.exit_time == START + 17 * BAR
    assert c.pnl == pytest.approx((stop - 1.1000) / ec - 2 * C / ec, abs=1e-12)
    # the initial stop and target, so a reader can replay an exit from the ledger (trial S):
    # C's stop, 5 pips from its fill, is where it closed
    assert list(led.stop_dist) == [t[2] for t in TRADES] and list(led.target_dist) == [t[3] for t in TRADES]
    assert c.stop_dist == pytest.approx(0.0005) and c.exit_price == pytest.approx(c.entry_price - c.stop_dist - C, abs=1e-12)


def test_action_strings_are_built_in_one_pass():
    codes = torch.tensor([[0, 1, 2, 3, 4], [3, -1, -1, -1, -1], [-1, -1, -1, -1, -1]], dtype=torch.int8)
    assert list(action_strings(codes)) == ["HETBP", "B", ""]
    assert list(action_strings(torch.zeros(2, 0, dtype=torch.int8))) == ["", ""]


def test_policy_ledger_covers_every_trade_once_and_is_deterministic():
    res, asm, pools, _ = prepared("v4_no_lookahead")
    pool = pools["test"]
    policy = random_policy(asm, seed=1)
    first = make_ledger(asm, pool, "test", policy_actor(policy))
    second = make_ledger(asm, pool, "test", policy_actor(policy))
    validate_ledger(first)
    pd.testing.assert_frame_equal(first, second)
    assert sorted(first["trade"]) == sorted(pool.tolist())
    assert (first["split"] == "test").all() and (first["policy"] == "rl").all()
    # v4 masks EXIT and PARTIAL before decision 3: the deterministic policy never samples them there
    early = first["actions"].str[:3]
    assert not early.str.contains("[EP]").any()
    assert (first["n_decisions"] == first["actions"].str.len()).all()
    assert (first.loc[first["n_decisions"] == 0, "bars_held"] == 1).all()
    assert (first["exit_time"] > first["entry_time"]).all()


def test_sampled_ledgers_are_named_reproducible_and_differ():
    res, asm, pools, _ = prepared("v4_no_lookahead")
    policy = random_policy(asm, seed=1)
    one = sampled_ledgers(asm, pools["test"], "test", policy, 2, seed=7)
    again = sampled_ledgers(asm, pools["test"], "test", policy, 2, seed=7)
    assert list(one) == ["rl_sample_1", "rl_sample_2"]
    pd.testing.assert_frame_equal(one["rl_sample_1"], again["rl_sample_1"])
    assert (one["rl_sample_2"]["policy"] == "rl_sample_2").all()
    assert not one["rl_sample_1"]["actions"].equals(one["rl_sample_2"]["actions"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ledgers_written_per_split_and_read_back(tmp_path, fmt):
    res, asm, pools, _ = prepared("v4_no_lookahead")
    policy = random_policy(asm, seed=1)
    test = make_ledger(asm, pools["test"], "test", policy_actor(policy))
    train = make_ledger(asm, pools["train"], "train", policy_actor(policy))
    paths = write_ledgers({"test": {"rl": test, "rl_copy": test.assign(policy="rl_copy")}, "train": {"rl": train}}, tmp_path, fmt)
    assert [p.name for p in paths] == [f"ledger_test.{fmt}", f"ledger_train.{fmt}"]
    back = read_ledger(tmp_path / f"ledger_test.{fmt}")
    assert len(back) == 2 * len(test) and list(back["policy"].unique()) == ["rl", "rl_copy"]
    pd.testing.assert_frame_equal(back[back["policy"] == "rl"].reset_index(drop=True), test, check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary files left


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    res, asm, pools, _ = prepared("v4_no_lookahead")
    led = make_ledger(asm, pools["test"][:5], "test", policy_actor(random_policy(asm)))
    path = write_atomic_ledger(led, tmp_path / "ledger_test.csv")
    before = path.read_bytes()
    broken = led.assign(pnl=np.nan)
    with pytest.raises(LedgerError, match="pnl must be finite"):
        write_atomic_ledger(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ledger_test.csv"]


def test_empty_pool_gives_an_empty_valid_ledger():
    res, asm, pools, _ = prepared("v4_no_lookahead")
    led = make_ledger(asm, [], "test", policy_actor(random_policy(asm)))
    assert len(led) == 0
    validate_ledger(led)


def test_a_breakeven_stop_nets_exactly_zero():
    # TRAIL_BE at every decision: many trades end on the breakeven stop, whose net PnL float64
    # rounding leaves at about +-1e-16 - which used to count as a win (or a loss) in every metric.
    res, asm, pools, _ = prepared("v4_no_lookahead")
    ledger = make_ledger(asm, pools["test"], "test", lambda obs, mask: torch.full((obs.shape[0],), B, dtype=torch.int64))
    at_breakeven = ledger[(ledger["exit_reason"] == "stop") & ledger["at_breakeven"] & (ledger["partials"] == 0)]
    assert len(at_breakeven) > 50
    zero = ledger["pnl"] == 0.0
    assert zero.sum() >= 0.9 * len(at_breakeven)
    assert (ledger.loc[zero, "pnl_pips"] == 0.0).all() and (ledger.loc[zero, "pnl_ccy"] == 0.0).all()
    assert not ((ledger["pnl"].abs() > 0) & (ledger["pnl"].abs() < 1e-9)).any()
    validate_ledger(ledger)  # still pnl = pnl_gross - cost


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_entry_strategy_s_extra_columns_are_copied_to_every_ledger(tmp_path, fmt):
    """Trades documented that extra columns are copied to the ledger, and a string `tag` was
    not: every ledger (RL and baselines) carries them, row for row, through its file."""
    from exitcore.evaluation.baselines import baseline_ledgers

    frame = pd.DataFrame(TRADES, columns=["signal_bar", "direction", "stop_dist", "target_dist"])
    frame["tag"] = ["a", "b", "c"]
    frame["score"] = [0.5, 1.5, 2.5]
    asm = assemble(resolved("v2_exit_guards"), hand_bars(), trades=Trades(frame))
    rl = make_ledger(asm, [2, 0], "test", scripted([[H], [H], [H], [H], [H], [H], [H], [H], [H], [H], [H], [H]]), "rl")
    assert list(rl.columns[-2:]) == ["tag", "score"] and list(rl["tag"]) == ["c", "a"] and list(rl["score"]) == [2.5, 0.5]
    baselines = baseline_ledgers(asm, [1, 2], "test")
    assert all(list(b["tag"]) == ["b", "c"] for b in baselines.values())
    write_ledgers({"test": {"rl": rl, **baselines}}, tmp_path, fmt)
    back = read_ledger(tmp_path / f"ledger_test.{fmt}")
    assert list(back.columns[-2:]) == ["tag", "score"] and list(back.loc[back["policy"] == "rl", "tag"]) == ["c", "a"]


@pytest.mark.parametrize("name", ["pnl", "policy", "executed", "window"])  # window: walk-forward's own
def test_an_extra_trades_column_named_like_a_ledger_column_is_refused(name):
    frame = pd.DataFrame(TRADES, columns=["signal_bar", "direction", "stop_dist", "target_dist"]).assign(**{name: 1})
    with pytest.raises(ValueError, match=f"extra columns named like ledger columns \\['{name}'\\].*rename them .*'strategy_{name}'"):
        Trades(frame)


def test_a_trades_column_name_that_is_not_text_is_refused():
    frame = pd.DataFrame(TRADES, columns=["signal_bar", "direction", "stop_dist", "target_dist"]).assign(**{"x": 1})
    frame[7] = 1.0  # parquet ledgers take text names only: it failed after training
    with pytest.raises(ValueError, match=r"column names that are not text \[7\]"):
        Trades(frame)
