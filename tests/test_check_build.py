"""`exitcore experiments check --build` runs what a run would run first: every component's
build, a few steps in which every action the masks allow is executed, and every evaluator's
build (with the context a run gives it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from exitcore import hookimpl
from exitcore.actions import EXIT, PARTIAL_EXIT
from exitcore.cli.experiments import _build_and_step
from exitcore.env.sweep import step_every_action
from exitcore.experiments import SHIPPED_FILE, load_file



class _Brittle:
    """Components that only fail on what a HOLD-only step never shows."""

    @hookimpl
    def register_features(self, register):
        from exitcore.components import FeatureSpec

        def peer(params, ctx):
            close = ctx.market.close

            def compute(market, state):
                # the close at the latest bar another row of the batch is sitting on: in an
                # evaluation, where every test trade steps at once, often a later bar (trial T)
                later = state.bar.max().expand_as(state.bar)
                return (close[later] - close[state.bar]).to(torch.float32)[:, None]
            return FeatureSpec(("peer_move",), 0, compute)

        register("peer", peer)

        def noise(params, ctx):  # random, each row its own draw: honest, and no row to compare
            return FeatureSpec(("noise",), 0, lambda market, state: torch.rand(state.n, 1, device=state.upnl.device))

        register("noise", noise)

        def peer_noisy(params, ctx):  # the peer coupling under noise: noise does not hide it (review AC)
            inner = peer(params, ctx).compute
            return FeatureSpec(("peer_noisy",), 0, lambda market, state: inner(market, state)
                               + 1e-3 * torch.rand(state.n, 1, device=state.upnl.device))

        register("peer_noisy", peer_noisy)

        def slope(params, ctx):  # honest: a least-squares slope of the last 32 closes, one matmul per batch
            close = ctx.market.close.to(torch.float32)
            lags = torch.arange(32, device=close.device)
            weights = (lags.to(torch.float32) - 15.5) / ((lags.to(torch.float32) - 15.5) ** 2).sum()

            def compute(market, state):
                window = close[(state.bar[:, None] - lags).clamp(min=0)]
                return (window @ weights)[:, None]
            return FeatureSpec(("slope",), 32, compute)

        register("slope", slope)

        def nan_late(params, ctx):  # NaN from the third decision on: the first step's check saw none
            return FeatureSpec(("late",), 0, lambda market, state: torch.where(
                state.k >= 2, torch.nan, 0.0).to(torch.float32)[:, None])

        register("nan_late", nan_late)

    @hookimpl
    def register_action_masks(self, register):
        def batch_z(params, ctx):
            def mask(state):  # EXIT where this trade's PnL beats the batch's mean: a cross-sectional z-score
                allowed = torch.ones(state.n, 5, dtype=torch.bool, device=state.upnl.device)
                allowed[:, EXIT] = state.upnl >= state.upnl.mean()
                return allowed
            return mask

        register("batch_z", batch_z)

    @hookimpl
    def register_exit_guards(self, register):
        def crash_on(action_id):
            def build(params, ctx):
                close = ctx.market.close

                def guard(state, action):
                    # an index out of range only where the action is chosen (a real bug's shape)
                    index = torch.where(action == action_id, state.bar + close.numel(), state.bar)
                    return close[index] < 0
                return guard
            return build

        def batch_guard(params, ctx):
            def guard(state, action):  # blocks any move above the batch's mean PnL: reads the other rows
                return state.upnl > state.upnl.mean()
            return guard

        register("batch_guard", batch_guard)

        def strict_mask_reader(params, ctx):
            def guard(state, action):
                # v4's mask forbids EXIT before k = 3: a masked action reaching a guard is a bug
                if bool(((action == EXIT) & (state.k < 3) & ~state.done).any()):
                    raise AssertionError("a masked EXIT was stepped")
                return torch.zeros_like(state.done)
            return guard

        def one_argument(params, ctx):
            def guard(state):  # forgot `action`
                return torch.zeros_like(state.done)
            return guard

        register("one_argument", one_argument)
        register("crash_on_exit", crash_on(EXIT))
        register("crash_on_partial", crash_on(PARTIAL_EXIT))
        register("strict_mask_reader", strict_mask_reader)

    @hookimpl
    def register_reward_terms(self, register):
        def crash_on_executed_exit(params, ctx):
            close = ctx.market.close

            def term(before, action, after):
                # fails only where an EXIT was executed (after the guards), as a real bug might
                index = torch.where((after.action == EXIT) & after.done, after.bar + close.numel(), after.bar)
                return close[index] * 0.0
            return term

        register("crash_on_executed_exit", crash_on_executed_exit)

        class TwoArguments:  # a callable object, forgot `action`
            def __call__(self, before, after):
                return after.upnl

        register("two_arguments", lambda params, ctx: TwoArguments())

        def huge(params, ctx):
            def term(before, action, after):  # finite in float64, beyond the step's float32 reward
                return (after.bar + 1).to(torch.float64) * 1e300
            return term

        register("huge", huge)
        # a float32 term of 1: its weight of 1e39 overflows it to inf before the sum (review AB)
        register("one32", lambda params, ctx: (lambda before, action, after: torch.ones_like(after.upnl, dtype=torch.float32)))

        def draws_in_build(params, ctx):
            import random

            import numpy as np

            # a build drawing from every global generator (a sweep that rebuilt it unguarded shifted them)
            scale = float(torch.rand(1)) + float(np.random.rand()) + random.random()
            return lambda before, action, after: after.upnl * 0.0 * scale
        register("draws_in_build", draws_in_build)

        def nan_on_partial(params, ctx):
            def term(before, action, after):  # NaN only where a partial exit was executed (review AH)
                return torch.where(after.action == PARTIAL_EXIT, torch.nan, 0.0).to(torch.float32)
            return term

        register("nan_on_partial", nan_on_partial)

    @hookimpl
    def register_policies(self, register):
        class ValueAsColumn(torch.nn.Module):  # value [B, 1] instead of [B] (trial Y)
            def __init__(self, obs_dim, n_actions):
                super().__init__()
                self.net = torch.nn.Linear(obs_dim, n_actions + 1)

            def forward(self, obs):
                out = self.net(obs)
                return out[:, :-1], out[:, -1:]

        register("value_as_column", lambda params, ppo, obs_dim, n_actions: ValueAsColumn(obs_dim, n_actions))

    @hookimpl
    def register_evaluators(self, register):
        def build(params, ctx):
            raise ValueError("needs a benchmark file")
        register("needs_benchmark", build)
        register("not_a_function", lambda params, ctx: {"oops": 1})


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    from exitcore.plugins import PluginHost

    path = tmp_path_factory.mktemp("exp") / "experiments.toml"
    path.write_text(SHIPPED_FILE.read_text() + """
[experiments.exit_crash]
extends = "v4_no_lookahead"
guards = [{ name = "crash_on_exit" }]
[experiments.partial_crash]
extends = "v4_no_lookahead"
guards = [{ name = "crash_on_partial" }]
[experiments.masked_ok]
extends = "v4_no_lookahead"
guards = [{ name = "strict_mask_reader" }]
[experiments.eval_build]
extends = "v4_no_lookahead"
eval = { evaluators = [{ name = "trade_metrics" }, { name = "needs_benchmark" }] }
[experiments.late_exit_reward]
extends = "v4_no_lookahead"
guards = [{ name = "min_bars_for_exit", params = { min_bars = 7 } }]
rewards = [{ name = "pnl" }, { name = "crash_on_executed_exit" }]
[experiments.eval_not_callable]
extends = "v4_no_lookahead"
eval = { evaluators = [{ name = "not_a_function" }] }
[experiments.guard_signature]
extends = "v4_no_lookahead"
guards = [{ name = "one_argument" }]
[experiments.reward_signature]
extends = "v4_no_lookahead"
rewards = [{ name = "pnl" }, { name = "two_arguments" }]
[experiments.huge_reward]
extends = "v4_no_lookahead"
rewards = [{ name = "pnl" }, { name = "huge" }]
[experiments.overflowing_weight]
extends = "v4_no_lookahead"
rewards = [{ name = "pnl" }, { name = "one32", weight = 1e39 }]
[experiments.peer_feature]
extends = "v4_no_lookahead"
features = [{ name = "price_window" }, { name = "peer" }]
[experiments.noisy_feature]
extends = "v4_no_lookahead"
features = [{ name = "price_window" }, { name = "noise" }]
[experiments.peer_noisy_feature]
extends = "v4_no_lookahead"
features = [{ name = "price_window" }, { name = "peer_noisy" }]
[experiments.slope_feature]
extends = "v4_no_lookahead"
features = [{ name = "price_window" }, { name = "slope" }]
[experiments.batch_guard]
extends = "v4_no_lookahead"
guards = [{ name = "batch_guard" }]
[experiments.batch_mask]
extends = "v4_no_lookahead"
masks = [{ name = "batch_z" }]
[experiments.draws]
extends = "v4_no_lookahead"
rewards = [{ name = "pnl" }, { name = "draws_in_build" }]
[experiments.late_nan_reward]
extends = "v4_no_lookahead"
rewards = [{ name = "pnl" }, { name = "nan_on_partial" }]
[experiments.late_nan_feature]
extends = "v4_no_lookahead"
features = [{ name = "price_window" }, { name = "nan_late" }]
[experiments.bad_policy]
extends = "v4_no_lookahead"
ppo = { policy = "value_as_column" }
[experiments.wf_too_many]
extends = "v4_no_lookahead"
eval = { walk_forward = 200 }
""")
    return load_file(path), PluginHost.create(plugins=[_Brittle()])


@pytest.mark.parametrize("name, guard", [("exit_crash", "crash_on_exit"), ("partial_crash", "crash_on_partial")])
def test_a_guard_that_fails_only_on_one_action_is_found(checked, name, guard):
    file, host = checked
    problem = _build_and_step(file, name, host)
    assert problem is not None and f"exit guard {guard!r}" in problem and "raised IndexError in a step" in problem


@pytest.mark.parametrize("name, words", [
    ("guard_signature", ["exit guard 'one_argument' from _Brittle", "raised TypeError in a step (decisions k = 0): ",
                         ".one_argument.<locals>.guard() takes 1 positional argument but 2 were given; the step calls "
                         "it as guard(state, action) (docs/plugins.md)"]),
    ("reward_signature", ["reward term 'two_arguments' from _Brittle", "raised TypeError in a step (decisions k = 0): ",
                          "TwoArguments.__call__() takes 3 positional arguments but 4 were given; the step calls it "
                          "as term(before, action, after) (docs/plugins.md)"]),
])
def test_a_function_written_with_other_parameters_is_named_not_a_traceback(checked, name, words):
    """A guard written `guard(state)` raised a bare TypeError from the step's own call (no frame
    of the plugin ran, so none was blamed): a traceback, exit 1, and the check stopped (trial R)."""
    file, host = checked
    problem = _build_and_step(file, name, host)
    assert problem is not None and all(w in problem for w in words), problem


@pytest.mark.parametrize("name, term", [("huge_reward", "huge"), ("overflowing_weight", "one32")])
def test_reward_terms_whose_sum_is_beyond_float32_are_found(checked, name, term):
    """Each term was checked finite in its own dtype, so a float64 term of 1e300 passed the
    check and stopped the run at its first rollout step (trial R); a float32 term weighted
    1e39 is inf before the sum, which the first check let through (review AB)."""
    file, host = checked
    problem = _build_and_step(file, name, host)
    assert problem is not None and "the reward terms (" in problem and f"'{term}' from _Brittle" in problem, problem
    assert "beyond float32, the step's reward type" in problem


@pytest.mark.parametrize("name, words", [
    ("late_nan_reward", "reward term 'nan_on_partial' from _Brittle (no distribution) returned "),
    ("late_nan_feature", "feature 'nan_late' from _Brittle (no distribution) returned "),
])
def test_an_output_gone_non_finite_after_the_first_step_is_found(checked, name, words):
    """Outputs were checked on the first step only, so a reward term returning NaN for a partial
    exit (which v4's guard first lets through some decisions in) or a feature gone NaN at the
    third decision passed `check --build` and failed the run in its first update: a failed trial
    (review AH, trial Y). The sweep checks every step."""
    file, host = checked
    problem = _build_and_step(file, name, host)
    assert problem is not None and words in problem and "non-finite value(s) (NaN or Inf)" in problem, problem


@pytest.mark.parametrize("name, words", [("guard_signature", "exit guard 'one_argument' from _Brittle"),
                                         ("late_nan_reward", "reward term 'nan_on_partial' from _Brittle"),
                                         ("bad_policy", "policy 'value_as_column' from _Brittle"),
                                         ("late_nan_feature", "feature 'nan_late' from _Brittle"),
                                         ("huge_reward", "beyond float32, the step's reward type"),
                                         ("overflowing_weight", "beyond float32, the step's reward type")])
def test_a_run_refuses_a_component_failing_at_its_first_steps_before_recording_anything(checked, tmp_path, name, words):
    """Such a component failed the run it had started: a failed run (a trial) with a checkpoint
    of the untrained policy (trial R). Its first steps are swept before the run is recorded."""
    from exitcore.errors import PluginError
    from exitcore.runner import RunRequest, execute

    file, host = checked
    runs = tmp_path / "runs"
    request = RunRequest(experiment=name, budget="smoke", runs_dir=str(runs))
    with pytest.raises(PluginError) as exc:
        execute(request, file, host, quiet=True)
    assert words in str(exc.value)
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]  # no run directory
    from exitcore.registry import Registry

    if Registry.exists(runs):
        with Registry(runs, read_only=True) as reg:
            assert reg.list() == []


@pytest.mark.parametrize("name, label", [("peer_feature", "feature 'peer' from _Brittle"),
                                         ("peer_noisy_feature", "feature 'peer_noisy' from _Brittle"),
                                         ("batch_mask", "action mask 'batch_z' from _Brittle"),
                                         ("batch_guard", "exit guard 'batch_guard' from _Brittle")])
def test_a_component_that_reads_other_rows_of_the_batch_is_refused(checked, name, label):
    """A feature reading the bar another row sits on (later, in an evaluation of every test trade
    at once) passed the look-ahead audit, which replays one trade at a time (trial T)."""
    file, host = checked
    problem = _build_and_step(file, name, host)
    assert problem is not None and label in problem and "when the other rows are copies of it: a feature, mask or guard must read only its own row" in problem, problem


def test_a_random_feature_is_not_taken_for_one_reading_other_rows(checked):
    """A noise feature's row differs alone and in the batch (another draw), as from one call to
    the next: it is left to the audit's seeded probes, not refused."""
    file, host = checked
    assert _build_and_step(file, "noisy_feature", host) is None
    # nor is a batched matmul, which rounds a row alone otherwise than in a batch (review AC)
    assert _build_and_step(file, "slope_feature", host) is None


def test_masked_actions_are_not_stepped(checked):
    file, host = checked
    assert _build_and_step(file, "masked_ok", host) is None


def _line_of(text: str) -> int:
    """The line of this file where ``text`` is first raised."""
    return next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1) if f"raise ValueError({text!r}" in line.replace('"', "'"))


def test_every_evaluator_is_built_and_named_when_its_build_fails(checked):
    file, host = checked
    problem = _build_and_step(file, "eval_build", host)
    assert problem == ("experiments.eval_build.eval.evaluators[1]: evaluator 'needs_benchmark' from _Brittle (no distribution) "
                       f"failed to build: ValueError: needs a benchmark file (at {os.path.relpath(__file__)}:{_line_of('needs a benchmark file')})")
    problem = _build_and_step(file, "eval_not_callable", host)
    assert problem is not None and "evaluator 'not_a_function'" in problem and "returned dict from build" in problem


def test_every_action_is_stepped_in_a_few_steps(checked):
    from exitcore.assembly import assemble
    from exitcore.data.pipeline import load_bars
    from exitcore.experiments import resolve

    file, host = checked
    resolved = resolve(file, "v4_no_lookahead", host)
    assembled = assemble(resolved, load_bars(resolved.config.data, host))
    env = assembled.make_env(torch.nonzero(assembled.table.valid).flatten(), auto_reset=False)
    _, mask = env.reset(seed=0)
    assert step_every_action(env, mask) == []
    # only the masks' forbidden actions stay untried: a mask allowing HOLD alone leaves the rest
    _, _ = env.reset(seed=0)
    hold_only = torch.zeros_like(mask)
    hold_only[:, 0] = True
    assert step_every_action(env, hold_only, max_steps=1) == [1, 2, 3, 4]


def test_a_reward_term_failing_only_on_an_executed_exit_is_found_behind_a_guard(checked):
    """A guard blocks EXIT until bar 7: sampling EXIT in the first steps is not executing it,
    and the check went on only until every action had been *sampled*."""
    file, host = checked
    problem = _build_and_step(file, "late_exit_reward", host)
    assert problem is not None and "crash_on_executed_exit" in problem, problem


def test_walk_forward_windows_the_data_cannot_test_are_found(checked):
    """`check --build` said OK to eval.walk_forward = 500 on three years of bars; the run then
    trained and evaluated before failing in its walk-forward stage (a walk-forward trial)."""
    file, host = checked
    assert _build_and_step(file, "wf_too_many", host) == (
        "eval.walk_forward = 200: walk-forward window 1 (bars 45256..45293) has no trades; use fewer windows or more data")


def test_the_runs_first_steps_leave_the_training_components_and_random_generators_untouched(checked):
    """The sweep stepped the very components training uses: a generator seeded in build (as
    docs/plugins.md recommends) was advanced, so the run's numbers changed (review AA)."""
    import random

    import numpy as np

    from exitcore.assembly import assemble
    from exitcore.data.pipeline import load_bars
    from exitcore.env.sweep import first_steps
    from exitcore.experiments import resolve

    file, host = checked
    resolved = resolve(file, "draws", host, budget="smoke")
    assembled = assemble(resolved, load_bars(resolved.config.data, host))
    calls = []
    original = assembled.components.rewards[0].fn
    object.__setattr__(assembled.components.rewards[0], "fn", lambda *a: (calls.append(1), original(*a))[1])
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    first_steps(assembled)
    assert calls == []  # the training components were not stepped
    assert torch.equal(torch.get_rng_state(), before[0]) and (np.random.get_state()[1] == before[1]).all()
    assert random.getstate() == before[2]
