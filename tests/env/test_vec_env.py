"""VecExitEnv: hand-computed episodes for every action and exit, guards and masks, plugin
checks, determinism and exact resume. (The differential test against an independent scalar
implementation lives in test_differential.py.)"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from .envkit import V4_SET, bars_from, random_bars, resolved, sweep, trades_from
from exitcore.actions import Action
from exitcore.assembly import assemble
from exitcore.config import EnvConfig
from exitcore.errors import PluginError
from exitcore.hookspecs import hookimpl
from exitcore.timeline import ExitReason

H, X, T, B, P = (int(a) for a in Action)  # HOLD, EXIT, TIGHTEN_SL, TRAIL_BE, PARTIAL_EXIT
PIP = 0.0001
C = 0.5 * PIP  # half of the default 1-pip spread


def quiet(price: float) -> tuple[float, float, float, float]:
    """A bar that touches nothing: +-0.5 pip around ``price``."""
    return (price, price + 0.00005, price - 0.00005, price)


def play(res, bars, trades, actions):
    """Run one trade in a sweep env with a fixed action list; return per-step records."""
    asm, env = sweep(res, bars, trades)
    env.reset()
    steps = []
    for a in actions:
        if bool(env.state.done.all()):
            break
        before = env.state
        _, _, reward, done = env.step(torch.tensor([a]))
        steps.append(dict(before=before, after=env.after, reward=float(reward[0]), done=bool(done[0])))
    return asm, env, steps


# Entry: signal at bar 0, fill at the open of bar 1 = 1.1000 -> E = 1.10005.
E = 1.1000 + C


def long_trade(stop=0.0010, target=0.0020):
    return trades_from([(0, +1, stop, target)])


def test_stop_hit_intrabar_after_hold():
    bars = bars_from([quiet(1.1), quiet(1.1000), (1.1002, 1.1004, 1.0980, 1.0990), quiet(1.0990)])
    _, env, steps = play(resolved(), bars, long_trade(), [H, H])
    s = env.state
    stop = E - 0.0010
    assert bool(s.done[0]) and int(s.exit_reason[0]) == ExitReason.STOP
    assert float(s.exit_level[0]) == pytest.approx(stop, abs=1e-15)
    assert int(s.bars_held[0]) == 2 and len(steps) == 1
    net = (stop - C - E) / E
    assert float(s.realized[0]) == pytest.approx(net, rel=1e-12)
    # reward = pnl (gross) + cost terms = net PnL x 100
    assert steps[0]["reward"] == pytest.approx(100 * net, rel=1e-6)


def test_gap_through_stop_fills_at_open_and_short_direction():
    # short: stop above; bar 2 opens above the stop -> filled at the open, not the stop level
    bars = bars_from([quiet(1.1), quiet(1.1000), (1.1030, 1.1035, 1.1025, 1.1030), quiet(1.1)])
    trades = trades_from([(0, -1, 0.0010, 0.0020)])
    _, env, _ = play(resolved(), bars, trades, [H])
    s = env.state
    entry = 1.1000 - C
    assert int(s.exit_reason[0]) == ExitReason.STOP
    assert float(s.exit_level[0]) == 1.1030
    assert float(s.realized[0]) == pytest.approx((-(1.1030 + C - entry)) / entry, rel=1e-12)


def test_ambiguous_bar_takes_the_stop_and_is_counted():
    bars = bars_from([quiet(1.1), quiet(1.1000), (1.1000, 1.1030, 1.0980, 1.1000), quiet(1.1)])
    _, env, _ = play(resolved(), bars, long_trade(), [H])
    s = env.state
    assert int(s.exit_reason[0]) == ExitReason.STOP and bool(s.ambiguous[0])
    assert env.episode_stats()["ambiguous_exits"] == 1


def test_target_hit_and_gap_through_target_fills_at_open():
    bars = bars_from([quiet(1.1), quiet(1.1000), (1.1001, 1.1030, 1.0999, 1.1025), quiet(1.1)])
    _, env, _ = play(resolved(), bars, long_trade(), [H])
    assert int(env.state.exit_reason[0]) == ExitReason.TARGET
    assert float(env.state.exit_level[0]) == pytest.approx(E + 0.0020, abs=1e-15)
    bars = bars_from([quiet(1.1), quiet(1.1000), (1.1040, 1.1045, 1.1038, 1.1040), quiet(1.1)])
    _, env, _ = play(resolved(), bars, long_trade(), [H])
    assert int(env.state.exit_reason[0]) == ExitReason.TARGET and float(env.state.exit_level[0]) == 1.1040


def test_entry_bar_stop_ends_the_trade_before_any_decision():
    bars = bars_from([quiet(1.1), (1.1000, 1.1002, 1.0980, 1.0985), quiet(1.0985)])
    asm, env = sweep(resolved(), bars, long_trade())
    assert not bool(asm.table.decidable[0]) and bool(asm.table.valid[0])
    env.reset()
    s = env.state
    assert bool(s.done[0]) and int(s.exit_reason[0]) == ExitReason.STOP and int(s.bars_held[0]) == 1
    assert float(s.realized[0]) == pytest.approx((E - 0.0010 - C - E) / E, rel=1e-12)


def test_a_stop_closer_than_the_entry_costs_fills_at_the_entry_bar_open():
    """A stop distance below the half spread (plus slippage) puts the initial stop beyond the
    open the entry filled at. The entry bar was checked intrabar only, so the stop filled at its
    own level, better than the open and outside the bar's range (a price that never traded;
    found by a trial recomputing ledgers from the bars). It is through at the open: it fills
    there, as any gap through a stop does."""
    bars = bars_from([quiet(1.1), (1.1000, 1.1005, 1.1000, 1.1003), quiet(1.1003)])
    trades = trades_from([(0, 1, 0.2 * C, 0.0020)])  # stop = 1.1000 + 0.8 C: above the open and the low
    asm, env = sweep(resolved(), bars, trades)
    env.reset()
    s = env.state
    assert bool(s.done[0]) and int(s.exit_reason[0]) == ExitReason.STOP and int(s.bars_held[0]) == 1
    assert float(s.exit_level[0]) == 1.1000
    entry = 1.1000 + C
    assert float(s.realized[0]) == pytest.approx((1.1000 - C - entry) / entry, rel=1e-12)  # both half spreads
    short = trades_from([(0, -1, 0.2 * C, 0.0020)])
    asm, env = sweep(resolved(), bars_from([quiet(1.1), (1.1000, 1.1000, 1.0995, 1.0997), quiet(1.0997)]), short)
    env.reset()
    assert int(env.state.exit_reason[0]) == ExitReason.STOP and float(env.state.exit_level[0]) == 1.1000


def test_exit_at_decision_close_with_costs():
    bars = bars_from([quiet(1.1), quiet(1.1000), quiet(1.1005), quiet(1.1008), quiet(1.1)])
    _, env, steps = play(resolved(), bars, long_trade(), [H, X])
    s = env.state
    assert int(s.exit_reason[0]) == ExitReason.AGENT and int(s.bars_held[0]) == 2
    net = (1.1005 - C - E) / E
    gross = (1.1005 - 1.1000) / E
    assert float(s.realized[0]) == pytest.approx(net, rel=1e-12)
    assert float(s.realized_gross[0]) == pytest.approx(gross, rel=1e-12)
    assert float(s.costs_paid[0]) == pytest.approx(2 * C / E, rel=1e-12)
    assert steps[1]["reward"] == pytest.approx(100 * net, rel=1e-6)


def test_tighten_moves_the_stop_toward_the_price_and_never_loosens():
    bars = bars_from([quiet(1.1), quiet(1.1000), quiet(1.1010), quiet(1.1012), quiet(1.1012)])
    _, env, steps = play(resolved(), bars, long_trade(), [T, T, H])
    stop0 = E - 0.0010
    s1 = steps[0]["after"].stop[0].item()
    assert s1 == pytest.approx(1.1000 - 0.5 * (1.1000 - stop0), abs=1e-15)
    s2 = steps[1]["after"].stop[0].item()
    assert s2 == pytest.approx(1.1010 - 0.5 * (1.1010 - s1), abs=1e-15)
    assert s2 > s1 > stop0
    assert int(env.state.n_stop_moves[0]) == 2


def test_trail_be_only_in_profit_and_sets_breakeven():
    bars = bars_from([quiet(1.1), (1.1000, 1.10005, 1.0997, 1.0998), quiet(1.1010), quiet(1.1012), quiet(1.1012)])
    _, env, steps = play(resolved(), bars, long_trade(), [B, B, H])
    stop0 = E - 0.0010
    assert steps[0]["after"].stop[0].item() == stop0  # losing at 1.0998: no-op
    assert not bool(steps[0]["after"].at_breakeven[0])
    be = E + C
    assert steps[1]["after"].stop[0].item() == pytest.approx(be, abs=1e-15)
    assert bool(steps[1]["after"].at_breakeven[0])


def test_partial_exit_closes_half_of_what_remains():
    bars = bars_from([quiet(1.1), quiet(1.1000), quiet(1.1010), quiet(1.1020), quiet(1.1030), quiet(1.1)])
    _, env, steps = play(resolved(), bars, long_trade(target=0.005), [P, P, X])
    assert steps[0]["after"].size[0].item() == 0.5
    assert steps[1]["after"].size[0].item() == 0.25
    expected = 0.5 * (1.1000 - C - E) / E + 0.25 * (1.1010 - C - E) / E + 0.25 * (1.1020 - C - E) / E
    assert float(env.state.realized[0]) == pytest.approx(expected, rel=1e-12)
    assert int(env.state.n_partials[0]) == 2 and int(env.state.exit_reason[0]) == ExitReason.AGENT


def test_time_stop_after_max_bars():
    bars = bars_from([quiet(1.1)] + [quiet(1.1000 + i * 1e-5) for i in range(8)])
    res = resolved(env=EnvConfig(max_bars=3))
    _, env, steps = play(res, bars, long_trade(), [H] * 10)
    s = env.state
    assert len(steps) == 3 and int(s.exit_reason[0]) == ExitReason.TIME and int(s.bars_held[0]) == 3
    assert float(s.exit_level[0]) == pytest.approx(1.1000 + 2e-5)


CLOSE_AT_HOLES = EnvConfig(data_holes="close")


def test_hole_in_the_data_closes_before_the_gap_and_end_of_data():
    """``env.data_holes = "close"``: flat before every hole of more than max_gap_bars bars."""
    rows = [quiet(1.1)] * 6
    bars = bars_from(rows, holes={4: 10})  # 10 bars missing before row 4 (> max_gap_bars 4)
    _, env, steps = play(resolved(env=CLOSE_AT_HOLES), bars, long_trade(), [H] * 10)
    assert int(env.state.exit_reason[0]) == ExitReason.GAP and int(env.state.exit_bar[0]) == 3
    bars = bars_from([quiet(1.1)] * 4)
    _, env, _ = play(resolved(env=CLOSE_AT_HOLES), bars, long_trade(), [H] * 10)
    assert int(env.state.exit_reason[0]) == ExitReason.END_OF_DATA and int(env.state.exit_bar[0]) == 3
    # a small hole (<= max_gap_bars) is spanned
    bars = bars_from(rows, holes={4: 2})
    _, env, _ = play(resolved(env=EnvConfig(max_bars=3, data_holes="close")), bars, long_trade(), [H] * 10)
    assert int(env.state.exit_reason[0]) == ExitReason.TIME


def test_fill_across_a_hole_is_invalid_when_closing_at_holes():
    bars = bars_from([quiet(1.1)] * 6, holes={1: 20})
    asm, _ = sweep(resolved(env=CLOSE_AT_HOLES), bars, trades_from([(0, 1, 0.001, 0.002), (2, 1, 0.001, 0.002)]))
    assert asm.table.valid.tolist() == [False, True]
    assert asm.table.invalid_reason[0] == "fill would cross a data hole"


def test_a_trade_is_held_across_a_hole_by_default():
    """design.md §3: only EXIT, stop, target, max_bars or the data's end end a trade; a weekend
    is just the next bar further on, so a quiet trade reaches the data's end and the time stop."""
    rows = [quiet(1.1)] * 6
    bars = bars_from(rows, holes={4: 200})  # a weekend: 200 bars missing before row 4
    asm, env, steps = play(resolved(), bars, long_trade(), [H] * 10)
    assert int(asm.table.last_bar[0]) == 5 and int(asm.table.last_reason[0]) == ExitReason.END_OF_DATA
    assert int(env.state.exit_reason[0]) == ExitReason.END_OF_DATA and int(env.state.exit_bar[0]) == 5
    assert len(steps) == 5  # decisions at bars 1-5, two of them after the hole
    _, env, _ = play(resolved(env=EnvConfig(max_bars=4)), bars, long_trade(), [H] * 10)
    assert int(env.state.exit_reason[0]) == ExitReason.TIME and int(env.state.exit_bar[0]) == 4


def test_a_gap_through_the_stop_over_a_hole_fills_at_the_next_open():
    """design.md §2: "A gap through the stop fills at the open" - also the open after a weekend."""
    rows = [quiet(1.1), quiet(1.1), quiet(1.1), quiet(1.1), (1.0970, 1.0975, 1.0960, 1.0965), quiet(1.0965)]
    bars = bars_from(rows, holes={4: 200})
    asm, env, steps = play(resolved(), bars, long_trade(), [H] * 10)
    s = env.state
    assert int(s.exit_reason[0]) == ExitReason.STOP and int(s.exit_bar[0]) == 4  # the bar after the hole
    assert float(s.exit_level[0]) == 1.0970  # its open, beyond the stop E - 10 pips
    assert float(s.realized[0]) == pytest.approx((1.0970 - C - E) / E, rel=1e-12)
    assert int(s.bars_held[0]) == 4 and len(steps) == 3
    # a short through its target the same way
    _, env, _ = play(resolved(), bars, trades_from([(0, -1, 0.0010, 0.0020)]), [H] * 10)
    assert int(env.state.exit_reason[0]) == ExitReason.TARGET and float(env.state.exit_level[0]) == 1.0970


def test_a_fill_after_a_hole_is_valid_by_default():
    """A signal at the last bar before a weekend fills at the first open after it."""
    rows = [quiet(1.1), quiet(1.1010)] + [quiet(1.1)] * 4
    bars = bars_from(rows, holes={1: 200})
    asm, _ = sweep(resolved(), bars, trades_from([(0, 1, 0.001, 0.002), (2, 1, 0.001, 0.002)]))
    assert asm.table.valid.tolist() == [True, True] and asm.table.invalid_reason == ("", "")
    assert float(asm.table.entry_open[0]) == 1.1010 and int(asm.table.entry_bar[0]) == 1


def test_guards_block_and_count_and_mask_removes_actions():
    bars = bars_from([quiet(1.1), quiet(1.1000), quiet(1.1001), quiet(1.1030), quiet(1.1031), quiet(1.1)])
    res = resolved(guards=[("min_profit_for_exit", {"min_profit": 0.001}), ("min_bars_for_exit", {"min_bars": 2})],
                   masks=[("min_exit_bar", {"n": 3})])
    asm, env, steps = play(res, bars, long_trade(stop=0.005, target=0.005), [X, X, X, X])
    # decision 0 and 1: blocked (too early / too little profit) -> executed HOLD
    assert [int(s["after"].action[0]) for s in steps[:2]] == [H, H]
    assert [bool(s["after"].blocked[0]) for s in steps[:2]] == [True, True]
    # decision 2 at 1.1030: k=2 >= 2 bars and upnl > 10 pips -> executes
    assert int(steps[2]["after"].action[0]) == X and int(env.state.exit_reason[0]) == ExitReason.AGENT
    stats = env.episode_stats()
    assert stats["blocked_rate"]["EXIT"] == pytest.approx(2 / 3)
    assert stats["guard_blocks"] == {"min_profit_for_exit": 2, "min_bars_for_exit": 2}
    # the mask: EXIT and PARTIAL disallowed at k < 3, HOLD/TIGHTEN/TRAIL allowed
    asm, env = sweep(res, bars, long_trade())
    _, mask = env.reset()
    assert mask[0].tolist() == [True, False, True, True, False]


def test_rewards_time_penalty_and_regret():
    bars = bars_from([quiet(1.1), quiet(1.1000), quiet(1.1015), quiet(1.1005), quiet(1.1)])
    res = resolved(rewards=[("time_penalty", {"time_coef": 0.5}, 1.0), ("regret", {"regret_coef": 1.0}, 2.0)])
    _, env, steps = play(res, bars, long_trade(stop=0.005, target=0.005), [H, H, X])
    best = (1.1015 - C - E) / E
    realized = (1.1005 - C - E) / E
    assert steps[0]["reward"] == pytest.approx(0.0)
    assert steps[1]["reward"] == pytest.approx(-0.5 * 1 / 96)
    assert steps[2]["reward"] == pytest.approx(-0.5 * 2 / 96 - 2.0 * 100 * (best - realized), rel=1e-6)  # float32 reward


def test_unrealized_pnl_reward_telescopes_to_the_final_pnl():
    bars = random_bars(400, seed=3)
    trades = trades_from([(50, 1, 0.01, 0.01), (60, -1, 0.01, 0.01)])
    res = resolved(rewards=[("pnl", {"unrealized": True}, 1.0), ("cost", {}, 1.0)])
    asm, env = sweep(res, bars, trades)
    env.reset()
    start_mtm = (env.state.direction * (env.state.price - env.state.entry_open) / env.state.entry_price).clone()
    total = torch.zeros(2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    while not bool(env.state.done.all()):
        _, _, r, _ = env.step(torch.randint(0, 5, (2,), generator=gen))
        total += r.double()
    # sum of mark-to-market rewards = final net PnL - the gross MTM already there at decision 0
    expected = 100 * (env.state.realized - start_mtm)
    assert torch.allclose(total, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- bad input


def test_invalid_actions_are_rejected_with_a_clear_message():
    bars = random_bars(200)
    _, env = sweep(resolved(), bars, trades_from([(50, 1, 0.002, 0.004)]))
    env.reset()
    with pytest.raises(ValueError, match=r"invalid action id\(s\): 7 in env 0 \(1 of 1 envs\); valid ids are 0..4"):
        env.step(torch.tensor([7]))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="int64"):
        env.step(torch.tensor([0.0]))


class _BadPlugin:
    """Test plugin with deliberately broken components."""

    @hookimpl
    def register_reward_terms(self, register):
        register("nan_reward", lambda p, ctx: (lambda b, a, after: torch.full_like(after.realized, float("nan"))))
        register("wrong_shape", lambda p, ctx: (lambda b, a, after: torch.zeros(3, dtype=torch.float64)))

    @hookimpl
    def register_action_masks(self, register):
        register("nothing_allowed", lambda p, ctx: (lambda s: torch.zeros(s.n, 5, dtype=torch.bool)))
        # "force an exit": HOLD forbidden, EXIT allowed; exitcore would allow HOLD anyway
        register("forcing_exit", lambda p, ctx: (lambda s: torch.zeros(s.n, 5, dtype=torch.bool).index_fill_(1, torch.tensor([1]), True)))

    @hookimpl
    def register_exit_guards(self, register):
        register("float_guard", lambda p, ctx: (lambda s, a: torch.zeros(s.n)))
        # writes into the state (the guards after it, and the engine, would see upnl = 0)
        register("zeroing_guard", lambda p, ctx: (lambda s, a: s.upnl.mul_(0) < 0))
        # a write that changes nothing on the first step (k = 0) and bites from decision 2 on
        register("later_guard", lambda p, ctx: (lambda s, a: s.size.masked_fill_(s.k >= 2, 0.0) < 0))
        # a write that never changes a value (upnl * 1.0): still a write, named by its field
        register("identity_guard", lambda p, ctx: (lambda s, a: s.upnl.mul_(1.0) < -1e9))

    @hookimpl
    def register_features(self, register):
        from exitcore.components import FeatureSpec

        def zeroing(p, ctx):
            def compute(market, state):
                state.upnl.mul_(0)
                return state.upnl[:, None].to(torch.float32)

            return FeatureSpec(("upnl_zeroed",), 0, compute)

        register("zeroing_feature", zeroing)

        def bumping(p, ctx):
            def compute(market, state):
                market.high.add_(1e-4)  # the shared bars drift a little every step
                return state.upnl[:, None].to(torch.float32)

            return FeatureSpec(("bumps_high",), 0, compute)

        register("bumping_feature", bumping)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rewards=[("nan_reward", {}, 1.0)]), r"reward term 'nan_reward' from .*_BadPlugin.* non-finite"),
        (dict(rewards=[("wrong_shape", {}, 1.0)]), r"reward term 'wrong_shape' .* shape \(3,\), expected \(1,\)"),
        (dict(masks=[("nothing_allowed", {})]), r"action mask 'nothing_allowed' .* allowed no action"),
        (dict(masks=[("forcing_exit", {})]), r"action mask 'forcing_exit' .* forbade HOLD in 1 row\(s\) .* cannot force an action"),
        (dict(guards=[("float_guard", {})]), r"exit guard 'float_guard' .* dtype float32, expected bool"),
        (dict(guards=[("zeroing_guard", {})]), r"exit guard 'zeroing_guard' .* wrote into the environment state in place \(state.upnl changed\)"),
        (dict(features=[("position", {}), ("zeroing_feature", {})]),
         r"feature 'zeroing_feature' .* wrote into the environment state in place \(state.upnl changed\)"),
        (dict(guards=[("later_guard", {})]),
         r"exit guard 'later_guard' .* in place \(state.size was written, though no value changed on this step\)"),
        (dict(guards=[("identity_guard", {})]),
         r"exit guard 'identity_guard' .* in place \(state.upnl was written, though no value changed on this step\)"),
        (dict(features=[("position", {}), ("bumping_feature", {})]),
         r"feature 'bumping_feature' .* wrote into the market data in place \(market.high\)"),
    ],
)
def test_broken_plugins_are_named_on_the_first_step(kwargs, message):
    res = resolved(extra_plugins=(_BadPlugin(),), **kwargs)
    _, env = sweep(res, random_bars(200), trades_from([(50, 1, 0.002, 0.004)]))
    with pytest.raises(PluginError, match=message):
        env.reset()
        env.step(torch.tensor([0]))


class _WritesInBuild:
    """Factories that change the shared bars or trades while building (every policy's numbers
    change with them, baselines included, and the audit blamed another component)."""

    @hookimpl
    def register_action_masks(self, register):
        def build(p, ctx):
            ctx.trades.stop0.sub_((ctx.trades.stop0 - ctx.trades.entry_price) / 2)  # stops halfway to the entry
            return lambda s: torch.ones(s.n, 5, dtype=torch.bool)

        register("moves_stops", build)

    @hookimpl
    def register_exit_guards(self, register):
        def build(p, ctx):
            ctx.market.high[:] = ctx.market.high.max()  # a write that goes through a view
            return lambda s, a: torch.zeros(s.n, dtype=torch.bool)

        register("flattens_highs", build)

        def through_numpy(p, ctx):
            ctx.market.close.numpy()[:] = 1.0  # shares memory on the CPU and bumps no write counter
            return lambda s, a: torch.zeros(s.n, dtype=torch.bool)

        register("rewrites_closes", through_numpy)


@pytest.mark.parametrize("kwargs, message", [
    (dict(guards=[("rewrites_closes", {})]), r"exit guard 'rewrites_closes' from .* wrote into ctx\.market\.close in place"),
    (dict(masks=[("moves_stops", {})]), r"action mask 'moves_stops' from .* wrote into ctx\.trades\.stop0 in place in its build"),
    (dict(guards=[("flattens_highs", {})]), r"exit guard 'flattens_highs' from .* wrote into ctx\.market\.high in place"),
])
def test_a_factory_writing_into_the_shared_bars_or_trades_is_named(kwargs, message):
    res = resolved(extra_plugins=(_WritesInBuild(),), **kwargs)
    with pytest.raises(PluginError, match=message):
        assemble(res, random_bars(200), trades=trades_from([(50, 1, 0.002, 0.004)]))


@pytest.mark.parametrize("compile_env", [False, True])
def test_an_in_place_write_is_caught_in_training_mode_too(compile_env):
    """Training mode (auto-reset; packed state tables when compiled) hands the components
    column views: a write through one is caught on the first step there as well."""
    res = resolved(extra_plugins=(_BadPlugin(),), guards=[("later_guard", {})])
    asm = assemble(res, random_bars(400), trades=trades_from([(50, 1, 0.002, 0.004), (120, -1, 0.002, 0.004)]))
    env = asm.make_env(torch.nonzero(asm.table.valid).flatten(), n_envs=4, auto_reset=True, compile=compile_env)
    with pytest.raises(PluginError, match=r"exit guard 'later_guard' .* wrote into the environment state in place"):
        env.reset(seed=0)
        env.step(torch.zeros(4, dtype=torch.int64))


class _LaterEmptyMask:
    """A mask that passes the first step's per-mask check (every row allows an action at
    decision 0) and allows nothing from decision 3 on: a plugin bug the check cannot see."""

    @hookimpl
    def register_action_masks(self, register):
        def build(p, ctx):
            def mask(s):
                allowed = torch.ones(s.n, 5, dtype=torch.bool)
                return allowed & (s.k < 3)[:, None]

            return mask

        register("empty_from_3", build)


class _ExitOnlyLater:
    """A mask that allows EXIT alone from decision 3 on: never empty by itself, but with
    ``min_exit_bar`` (EXIT forbidden before decision ``n``) nothing is allowed at 3 <= k < n."""

    @hookimpl
    def register_action_masks(self, register):
        def build(p, ctx):
            def mask(s):
                exit_only = torch.zeros(s.n, 5, dtype=torch.bool)
                exit_only[:, X] = True
                return torch.where((s.k < 3)[:, None], torch.ones_like(exit_only), exit_only)

            return mask

        register("exit_only_from_3", build)


#: a shipped mask that never leaves a row empty, beside the late-empty one
SHIPPED_AND_LATE_EMPTY = (("min_exit_bar", {"n": 12}), ("empty_from_3", {}))
#: two masks that are never empty alone, but together are at decisions 3..11
EMPTY_TOGETHER = (("min_exit_bar", {"n": 12}), ("exit_only_from_3", {}))


def _late_empty_env(compile_env=False, auto_reset=True, masks=(("empty_from_3", {}),)):
    res = resolved(extra_plugins=(_LaterEmptyMask(), _ExitOnlyLater()), masks=list(masks))
    bars = random_bars(3000, seed=5)
    trades = trades_from([(30 + 11 * i, 1 if i % 3 else -1, 0.001 * (1 + i % 4), 0.002 * (1 + i % 4)) for i in range(100)])
    asm = assemble(res, bars, trades=trades)
    if auto_reset:
        return asm.make_env(torch.nonzero(asm.table.decidable).flatten(), n_envs=16, auto_reset=True, compile=compile_env)
    return asm.make_env(torch.nonzero(asm.table.valid).flatten(), auto_reset=False, compile=compile_env)


def test_decisions_whose_masks_allow_nothing_are_counted():
    """HOLD is allowed regardless, so an all-false mask row after the first step does not stop
    anything: ``mask_empty`` counts those decisions (each step's next mask), checked here
    against the states' own decision index. (Compiled: the per-mask test below checks the same
    count with this mask beside a shipped one.)"""
    env = _late_empty_env()
    env.reset(seed=0)
    expected = 0
    for _ in range(12):
        env.step(torch.zeros(env.n_envs, dtype=torch.int64))  # HOLD: episodes run past decision 3
        expected += int((env.state.k >= 3).sum())
    assert expected > 0
    assert env.episode_stats()["mask_empty"] == expected


def test_empty_masks_of_finished_sweep_episodes_are_not_counted():
    env = _late_empty_env(auto_reset=False)
    env.reset()
    expected = 0
    finished_late = 0
    for _ in range(20):
        env.step(torch.zeros(env.n_envs, dtype=torch.int64))
        expected += int(((env.state.k >= 3) & ~env.state.done).sum())
        finished_late += int(((env.state.k >= 3) & env.state.done).sum())
    assert expected > 0 and finished_late > 0  # both kinds of row occur
    assert env.episode_stats()["mask_empty"] == expected


def test_training_warns_once_naming_the_masks_and_logs_the_count(tmp_path):
    from exitcore.config import PPOConfig
    from exitcore.errors import ExitcoreWarning
    from exitcore.ppo import MLPActorCritic, PPOTrainer

    env = _late_empty_env()
    ppo = PPOConfig(n_envs=16, n_steps=8, batch_size=64, n_epochs=1, hidden=[8], total_timesteps=2 * 16 * 8, seed=0)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    log = []
    trainer = PPOTrainer(env, policy, ppo, on_update=lambda u, m: log.append(m), progress=False)
    with pytest.warns(ExitcoreWarning) as caught:
        trainer.train()
    messages = [str(w.message) for w in caught if "allowed no action" in str(w.message)]
    assert len(messages) == 1 and "update 1: the action mask 'empty_from_3' allowed no action at" in messages[0]
    assert [m["mask_empty"] > 0 for m in log] == [True, True]
    assert [m["mask_empty_by/empty_from_3"] for m in log] == [m["mask_empty"] for m in log]


@pytest.mark.parametrize("compile_env", [False, True])
def test_each_mask_that_alone_allows_nothing_is_counted(compile_env):
    """``mask_empty_by`` counts, per mask, the decisions that mask alone allowed nothing at (a
    shipped mask beside a user's late-empty one: only the latter), eager (computed only at the
    steps with an empty row) and compiled (every step) alike; masks empty only together count
    nothing alone."""
    for masks, late_empty in ((SHIPPED_AND_LATE_EMPTY, lambda k: k >= 3), (EMPTY_TOGETHER, lambda k: (k >= 3) & (k < 12))):
        env = _late_empty_env(compile_env, masks=masks)
        env.reset(seed=0)
        expected = 0
        for _ in range(14):
            env.step(torch.zeros(env.n_envs, dtype=torch.int64))  # HOLD: episodes run past decision 12
            expected += int(late_empty(env.state.k).sum())
        stats = env.episode_stats()
        assert expected > 0 and stats["mask_empty"] == expected
        if masks == SHIPPED_AND_LATE_EMPTY:
            assert stats["mask_empty_by"] == {"min_exit_bar": 0, "empty_from_3": expected}
        else:
            assert stats["mask_empty_by"] == {"min_exit_bar": 0, "exit_only_from_3": 0}


def test_the_mask_counts_of_finished_sweep_episodes_are_not_counted():
    env = _late_empty_env(auto_reset=False, masks=SHIPPED_AND_LATE_EMPTY)
    env.reset()
    expected = 0
    for _ in range(20):
        env.step(torch.zeros(env.n_envs, dtype=torch.int64))
        expected += int(((env.state.k >= 3) & ~env.state.done).sum())
    assert expected > 0
    assert env.episode_stats()["mask_empty_by"] == {"min_exit_bar": 0, "empty_from_3": expected}


def _mask_warnings(masks):
    from exitcore.config import PPOConfig
    from exitcore.ppo import MLPActorCritic, PPOTrainer

    env = _late_empty_env(masks=masks)
    ppo = PPOConfig(n_envs=16, n_steps=16, batch_size=64, n_epochs=1, hidden=[8], total_timesteps=16 * 16, seed=0)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    log = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PPOTrainer(env, policy, ppo, on_update=lambda u, m: log.append(m), progress=False).train()
    return [str(w.message) for w in caught if "allowed no action" in str(w.message)], log[0]


def test_the_warning_names_only_the_mask_that_allowed_nothing():
    """Beside a shipped mask that never leaves a row empty, only the user's late-empty mask is
    named, with its own count."""
    (message,), log = _mask_warnings(SHIPPED_AND_LATE_EMPTY)
    n = log["mask_empty_by/empty_from_3"]
    assert n > 0 and log["mask_empty_by/min_exit_bar"] == 0
    assert message.startswith(f"update 1: the action mask 'empty_from_3' allowed no action at {n} of "
                              f"{log['decisions']} decisions, where only HOLD could be taken: "), message
    assert "min_exit_bar" not in message


def test_the_warning_words_name_each_mask_that_alone_allowed_nothing():
    from exitcore.ppo.trainer import mask_empty_words

    def words(empty, **by):
        return mask_empty_words(empty, {"decisions": 100, "mask_empty_by": by})

    assert words(7, a=0, b=5).startswith("the action mask 'b' allowed no action at 5 of 100 decisions (the masks "
                                         "together at 7), where only HOLD could be taken: it returns all-false rows")
    assert words(7, a=2, b=5, c=0).startswith("the action masks 'a' and 'b' allowed no action at 7 of 100 decisions "
                                              "('a' alone at 2, 'b' alone at 5), where only HOLD could be taken")
    assert words(7, a=0, b=0, c=0).startswith("the action masks 'a', 'b' and 'c' together allowed no action at 7 of "
                                              "100 decisions")
    assert mask_empty_words(7, {"decisions": 100}).startswith("the action masks allowed no action at 7 of 100 decisions")


def test_the_warning_says_when_only_the_masks_together_allowed_nothing():
    (message,), log = _mask_warnings(EMPTY_TOGETHER)
    assert message.startswith(f"update 1: the action masks 'min_exit_bar' and 'exit_only_from_3' together allowed no "
                              f"action at {log['mask_empty']} of {log['decisions']} decisions, where only HOLD could "
                              "be taken: each allows some action there, but no action is allowed by all of them"), message


def test_v4_masks_never_leave_a_decision_without_an_action():
    env = _training_env()
    _rollout(env, 50)
    assert env.episode_stats()["mask_empty"] == 0


# --------------------------------------------------------------------------- look-ahead


def _decision_rows(res, bars, trades, n_steps=12, seed=0):
    from exitcore.env.causality import sample_decision_rows

    asm, env = sweep(res, bars, trades)
    gen = torch.Generator().manual_seed(seed)

    def act(mask):
        logits = torch.rand(mask.shape, generator=gen).masked_fill(~mask, -1)
        return logits.argmax(dim=1)

    return asm, sample_decision_rows(env, n_steps, act, every=3)


@pytest.mark.parametrize("seed", [0, 1])
def test_observations_masks_and_guards_ignore_the_future(seed):
    """Bit-identical obs, masks and guard decisions at every sampled decision after every bar
    after the decision is truncated, NaN, huge or a random walk (components rebuilt)."""
    from exitcore.env.causality import probe_decisions

    bars = random_bars(600, seed=seed)
    trades = trades_from([(40 + 37 * i, 1 if i % 2 else -1, 0.004, 0.006) for i in range(12)])
    res = resolved(**V4_SET)
    asm, rows = _decision_rows(res, bars, trades, seed=seed)
    assert len(rows) > 20
    leaks = probe_decisions(asm, rows[::3], lambda b: assemble(res, b, trades=trades))
    assert leaks == []


def test_the_look_ahead_check_catches_the_leaky_feature():
    from exitcore.env.causality import probe_decisions

    bars = random_bars(600, seed=2)
    trades = trades_from([(40 + 37 * i, 1, 0.004, 0.006) for i in range(6)])
    v3 = dict(V4_SET, features=[*V4_SET["features"], ("leaky_next_move", {})])
    res = resolved(**v3)
    asm, rows = _decision_rows(res, bars, trades)
    leaks = probe_decisions(asm, rows[:4], lambda b: assemble(res, b, trades=trades))
    assert leaks, "the leaky feature must be detected"
    assert {leak.component.split(" ")[0] for leak in leaks} == {"leaky_next_move.next_move_atr"}
    assert {leak.mode for leak in leaks} == {"truncate", "nan", "huge", "random_walk"}


# --------------------------------------------------------------------------- training mode


def _training_env(seed=0, n_envs=64):
    bars = random_bars(3000, seed=5)
    trades = trades_from([(30 + 11 * i, 1 if i % 3 else -1, 0.002, 0.004) for i in range(250)])
    asm = assemble(resolved(**V4_SET), bars, trades=trades)
    pool = torch.nonzero(asm.table.decidable).flatten()
    return asm.make_env(pool, n_envs=n_envs, seed=seed)


def _rollout(env, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    obs, mask = env.reset() if env.after is None and n > 0 else (None, env.action_mask())
    for _ in range(n):
        logits = torch.rand(mask.shape, generator=gen).masked_fill(~mask, -1)
        obs, mask, r, d = env.step(logits.argmax(dim=1))
        out.append((obs.clone(), r.clone(), d.clone()))
    return out


def test_training_mode_is_deterministic_and_resumes_exactly():
    a = _training_env(seed=3)
    full = _rollout(a, 60)
    b = _training_env(seed=3)
    first = _rollout(b, 30)
    saved = b.state_dict()
    c = _training_env(seed=99)  # different seed: the saved state must win
    c.reset()
    c.load_state_dict(saved)
    gen_state_consumed = torch.Generator().manual_seed(0)
    for _ in range(30):  # replay the action generator to where `first` left it
        torch.rand((64, 5), generator=gen_state_consumed)
    rest = []
    mask = c.action_mask()
    for _ in range(30):
        logits = torch.rand(mask.shape, generator=gen_state_consumed).masked_fill(~mask, -1)
        obs, mask, r, d = c.step(logits.argmax(dim=1))
        rest.append((obs, r, d))
    for (o1, r1, d1), (o2, r2, d2) in zip(full, first + rest):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(d1, d2)


def test_training_mode_resamples_and_reports_statistics():
    env = _training_env()
    _rollout(env, 200)
    stats = env.episode_stats()
    assert stats["episodes"] > 100 and stats["decisions"] == 200 * 64
    assert math.isfinite(stats["ep_return_mean"]) and stats["ep_length_mean"] >= 1
    assert sum(stats["action_frac"].values()) == pytest.approx(1.0)
    assert stats["action_frac"]["EXIT"] > 0  # allowed after bar 3
    assert sum(stats["exit_reasons"].values()) == pytest.approx(1.0)
    assert env.episode_stats()["decisions"] == 0  # reset after reading


def test_state_dict_without_the_trade_draws_is_refused_with_a_reason():
    env = _training_env(seed=1, n_envs=8)
    _rollout(env, 2)
    data = env.state_dict()
    data.pop("trade_draws")
    with pytest.raises(ValueError, match="predates counter-based trade draws"):
        env.load_state_dict(data)


def test_training_pool_must_be_decidable():
    bars = bars_from([quiet(1.1), (1.1000, 1.1002, 1.0980, 1.0985), quiet(1.0985)])
    asm = assemble(resolved(), bars, trades=long_trade())
    with pytest.raises(ValueError, match="decidable"):
        asm.make_env(torch.tensor([0]), n_envs=4)


@pytest.mark.parametrize("n_envs", [0, -2, 2.0, True])
def test_a_training_env_needs_a_positive_whole_number_of_envs(n_envs):
    """make_env(pool, n_envs=0) was accepted (an environment of no trades at a time)."""
    bars = random_bars(2_000)
    asm = assemble(resolved(), bars, trades=trades_from([(50, 1, 0.002, 0.004)]))
    pool = torch.nonzero(asm.table.decidable).flatten()
    with pytest.raises(ValueError, match=rf"n_envs must be a positive integer, got {n_envs!r}"):
        asm.make_env(pool, n_envs=n_envs)


def test_memory_of_market_tensors_is_at_most_twice_the_raw_bars():
    bars = random_bars(10_000)
    asm = assemble(resolved(), bars, trades=trades_from([(50, 1, 0.002, 0.004)]))
    raw = len(bars) * (8 + 4 * 8)  # timestamp + OHLC
    assert asm.market.nbytes() <= 2 * raw


def test_compiled_core_matches_eager(needs_compile):
    eager = _training_env(seed=1, n_envs=32)
    bars = random_bars(3000, seed=5)
    trades = trades_from([(30 + 11 * i, 1 if i % 3 else -1, 0.002, 0.004) for i in range(250)])
    asm = assemble(resolved(**V4_SET), bars, trades=trades)
    compiled = asm.make_env(torch.nonzero(asm.table.decidable).flatten(), n_envs=32, seed=1, compile=True)
    a, b = _rollout(eager, 8), _rollout(compiled, 8)
    for (o1, r1, d1), (o2, r2, d2) in zip(a, b):
        assert torch.equal(d1, d2)
        assert torch.allclose(o1, o2, atol=1e-6) and torch.allclose(r1, r2, atol=1e-6)
    assert torch.equal(eager.state.trade, compiled.state.trade)  # the same trade draws
    s1, s2 = eager.episode_stats(), compiled.episode_stats()
    assert s1.pop("ep_return_mean") == pytest.approx(s2.pop("ep_return_mean"), rel=1e-9)
    assert s1 == s2 and s1["episodes"] > 10


def test_compiled_env_rejects_invalid_actions_and_keeps_nothing(needs_compile):
    """The compiled step range-checks action ids in its kernel; a bad step changes no state."""
    bars = random_bars(3000, seed=5)
    trades = trades_from([(30 + 11 * i, 1 if i % 3 else -1, 0.002, 0.004) for i in range(250)])
    asm = assemble(resolved(**V4_SET), bars, trades=trades)
    pool = torch.nonzero(asm.table.decidable).flatten()
    # the shapes and seed of test_compiled_core_matches_eager's env: the same graph, which
    # torch.compile then takes from its cache (a cold compile is 15-25 s of a CI run)
    env = asm.make_env(pool, n_envs=32, seed=1, compile=True)
    twin = asm.make_env(pool, n_envs=32, seed=1, compile=True)
    _rollout(env, 3), _rollout(twin, 3)
    before = {k: v.clone() for k, v in env.state.tensors().items()}
    bad = torch.zeros(32, dtype=torch.int64)
    bad[5] = 9
    with pytest.raises(ValueError, match=r"invalid action id\(s\): 9 in env 5 \(1 of 32 envs\)"):
        env.step(bad)
    assert all(torch.equal(before[k], v) for k, v in env.state.tensors().items())
    assert env.episode_stats(reset=False) == twin.episode_stats(reset=False)
    (o1, r1, d1), (o2, r2, d2) = _rollout(env, 1, seed=4)[0], _rollout(twin, 1, seed=4)[0]
    assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(d1, d2)


class _BadEntry:
    """Entry strategies returning malformed trades."""

    @hookimpl
    def register_entry_strategies(self, register):
        import pandas as pd

        from exitcore.data.bars import Trades

        def make(rows):
            return lambda p, ctx: (lambda bars: Trades(pd.DataFrame(rows, columns=["signal_bar", "direction", "stop_dist", "target_dist"])))

        register("out_of_range", make([(5, 1, 0.001, 0.002), (10_000, 1, 0.001, 0.002)]))
        register("zero_direction", make([(5, 0, 0.001, 0.002)]))
        register("float_direction", make([(5, 1.0, 0.001, 0.002), (7, -1.0, 0.001, 0.002)]))
        register("nan_stop", make([(5, 1, float("nan"), 0.002)]))
        register("unsorted", make([(9, 1, 0.001, 0.002), (5, 1, 0.001, 0.002)]))
        register("not_trades", lambda p, ctx: (lambda bars: [(5, 1)]))


@pytest.mark.parametrize(
    "name, message",
    [
        ("out_of_range", r"1 signal_bar value\(s\) outside 0..199"),
        ("zero_direction", r"direction must be \+1 or -1, got \[0\]"),
        # an id like signal_bar, so an integer column like it (docs/plugins.md: int64)
        ("float_direction", r"direction must be an integer column \(\+1 long, -1 short\), got dtype float64"),
        ("nan_stop", r"1 stop_dist value\(s\) not finite and > 0 \(first at row 0\)"),
        ("unsorted", r"rows are not sorted by signal_bar"),
        ("not_trades", r"returned list, expected exitcore.data.bars.Trades"),
    ],
)
def test_malformed_entry_trades_name_the_strategy(name, message):
    from types import SimpleNamespace

    from exitcore.assembly import run_entry
    from exitcore.components import ComponentKind
    from exitcore.experiments import ResolvedComponent
    from exitcore.plugins import PluginHost

    comp = PluginHost.create(autoload=False, plugins=[_BadEntry()]).get(ComponentKind.ENTRY, name)
    res = SimpleNamespace(config=resolved().config, entry=ResolvedComponent(comp, None, "experiments.x.entry"))
    with pytest.raises(PluginError, match=rf"experiments.x.entry: entry strategy '{name}' from _BadEntry .*{message}"):
        run_entry(res, random_bars(200))


def test_stop_distances_in_pips_are_warned_about():
    """Distances are price units; 20 "pips" written as 20.0 is 1,800 % of a EURUSD price."""
    import warnings

    from exitcore.assembly import warn_if_pips
    from exitcore.errors import ExitcoreWarning

    bars = random_bars(200)
    with pytest.warns(ExitcoreWarning, match=r"where: 2 of 2 trades have a stop_dist above 20% of the price .*"
                                             r"distances are in price units, not pips"):
        warn_if_pips(trades_from([(5, 1, 20.0, 0.004), (9, -1, 20.0, 0.004)]), bars, "where")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_pips(trades_from([(5, 1, 0.002, 0.004)]), bars, "where")  # price units: quiet


def test_compiled_training_env_ignores_trades_outside_its_pool():
    """A trade signalled on the last bar has no entry bar inside the data; it is not in the
    training pool. The compiled env's decision-0 table once covered every trade and indexed
    past the data's end on construction (IndexError on the CPU, a device assert on CUDA)."""
    bars = random_bars(3000, seed=5)
    rows = [(30 + 11 * i, 1 if i % 3 else -1, 0.002, 0.004) for i in range(250)] + [(len(bars) - 1, 1, 0.002, 0.004)]
    asm = assemble(resolved(**V4_SET), bars, trades=trades_from(rows))
    assert int(asm.table.entry_bar[-1]) == len(bars) and not bool(asm.table.decidable[-1])
    pool = torch.nonzero(asm.table.decidable).flatten()
    packed = asm.make_env(pool, n_envs=32, seed=1, compile=True)  # built without compiling anything yet
    eager = asm.make_env(pool, n_envs=32, seed=1)
    assert torch.equal(packed.state.trade, eager.state.trade)
    packed._compiled_core = None  # step the packed path eagerly: its construction and draws are under test
    for (o1, r1, d1), (o2, r2, d2) in zip(_rollout(eager, 40), _rollout(packed, 40)):
        assert torch.equal(d1, d2) and torch.allclose(o1, o2, atol=1e-6) and torch.allclose(r1, r2, atol=1e-6)
    assert torch.equal(packed.state.trade, eager.state.trade) and packed.episode_stats()["episodes"] > 32


def test_trade_pools_and_seeds_are_whole_numbers_of_their_range():
    """Trial AC: a pool id 0.9 was cast to trade 0 and -1 taken as a trade; seed 2**32 replayed
    seed 0's trades and seed 1.5 was a raw TypeError; n_envs np.int64(4) was refused."""
    import numpy as np

    from exitcore.env.sampling import new_key

    bars = random_bars(200)
    asm = assemble(resolved(), bars, trades=trades_from([(50, 1, 0.002, 0.004), (60, -1, 0.002, 0.004)]))
    for pool, said in ((torch.tensor([0.9]), "must hold integer trade ids, got dtype torch.float32"),
                       (torch.tensor([-1]), r"trade id\(s\) \[-1\] in the pool are not trades of this table \(ids 0..1\)"),
                       (torch.tensor([5]), r"trade id\(s\) \[5\]"), (torch.tensor([[0]]), "must be a 1-D tensor")):
        with pytest.raises(ValueError, match=said):
            asm.make_env(pool, auto_reset=False)
    env = asm.make_env(torch.tensor([0, 1]), n_envs=np.int64(4), seed=0)
    assert env.n_envs == 4 and isinstance(env.n_envs, int)
    cpu = torch.device("cpu")
    assert not torch.equal(new_key(0, cpu), new_key(2**32, cpu)) and not torch.equal(new_key(1, cpu), new_key(2**32, cpu))
    assert torch.equal(new_key(7, cpu), new_key(np.int64(7), cpu))
    with pytest.raises(ValueError, match="a seed must be a whole number, got 1.5"):
        new_key(1.5, cpu)
