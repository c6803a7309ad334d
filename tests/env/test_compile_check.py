"""Compiled environment steps compute what eager ones do, or the run stops (exitcore/env/compile_check.py)."""

from __future__ import annotations

import enum
import math

import pytest
import torch

from .envkit import random_bars, resolved, trades_from
from exitcore.actions import ACTION_NAMES, Action
from exitcore.assembly import assemble
from exitcore.env.compile_check import COMPILE_CHECK_STEPS, CompiledStepMismatch
from exitcore.errors import PluginError
from exitcore.hookspecs import hookimpl
from exitcore.ids import IntIds
from exitcore.timeline import ExitReason


class _EnumAction(enum.IntEnum):
    EXIT = 1


class _GuardPlugin:
    """Two guards that block every EXIT: one compares with Action.EXIT, one with an IntEnum member."""

    @hookimpl
    def register_exit_guards(self, register):
        register("block_exit_action", lambda p, ctx: (lambda s, a: (a == Action.EXIT) & (s.upnl < 1.0)))
        register("block_exit_enum", lambda p, ctx: (lambda s, a: (a == _EnumAction.EXIT) & (s.upnl < 1.0)))


def _env(guard: str, compile: bool, n_envs: int = 64):
    bars = random_bars(3000, seed=5)
    trades = trades_from([(30 + 11 * i, 1 if i % 3 else -1, 0.002, 0.004) for i in range(250)])
    asm = assemble(resolved(guards=[(guard, {})], extra_plugins=(_GuardPlugin(),)), bars, trades=trades)
    return asm.make_env(torch.nonzero(asm.table.decidable).flatten(), n_envs=n_envs, seed=3, compile=compile)


def _steps(env, n: int) -> None:
    gen = torch.Generator().manual_seed(0)
    _, mask = env.reset()
    for _ in range(n):
        _, mask, _, _ = env.step(torch.rand(mask.shape, generator=gen).masked_fill(~mask, -1).argmax(dim=1))


def _exits(env) -> torch.Tensor:
    return torch.full((env.n_envs,), Action.EXIT, dtype=torch.int64)


def test_action_ids_are_plain_ints_with_names():
    assert type(Action.EXIT) is int and Action.EXIT == 1
    assert list(Action) == [0, 1, 2, 3, 4] and len(Action) == 5
    assert [Action.names[a] for a in Action] == list(ACTION_NAMES)
    assert Action(3) == Action.TRAIL_BE
    for bad in (5, -1, 1.5, True):
        with pytest.raises(ValueError, match="is not an id of Action"):
            Action(bad)
    assert type(ExitReason.STOP) is int and ExitReason.names[ExitReason.STOP] == "STOP" and len(ExitReason) == 7
    with pytest.raises(TypeError, match="Broken.B must be the plain int 1, got 2"):
        class Broken(metaclass=IntIds):
            names = ("A", "B")
            A, B = 0, 2


def test_exit_reason_comparisons_compile(needs_compile):
    """The exit reasons had the IntEnum problem too: `tensor == ExitReason.STOP` compiled to False."""
    reasons = torch.tensor([ExitReason.OPEN, ExitReason.STOP, ExitReason.TARGET, ExitReason.STOP])
    got = torch.compile(lambda r: r == ExitReason.STOP)(reasons)
    assert got.tolist() == [False, True, False, True]


def test_a_guard_comparing_with_action_exit_blocks_the_same_compiled_and_eager(needs_compile):
    compiled, eager = _env("block_exit_action", compile=True), _env("block_exit_action", compile=False)
    for env in (compiled, eager):
        _steps(env, 1)  # the first step runs eagerly, with every output checked
        env.step(_exits(env))
        _steps(env, 6)
    c, e = compiled.episode_stats(), eager.episode_stats()
    assert e["guard_blocks"]["block_exit_action"] > 0
    assert c["guard_blocks"] == e["guard_blocks"]
    assert c["blocked_rate"].keys() == e["blocked_rate"].keys()
    for name, rate in e["blocked_rate"].items():  # NaN for an action never sampled, in both
        assert rate == c["blocked_rate"][name] or (math.isnan(rate) and math.isnan(c["blocked_rate"][name])), name


def test_a_miscompiled_guard_stops_the_first_compiled_step(needs_compile):
    """torch.compile turns `tensor == IntEnum member` into False: the guard blocks nothing
    compiled. The first compiled step is recomputed eagerly and the difference named."""
    env = _env("block_exit_enum", compile=True)
    _steps(env, 1)
    with pytest.raises(CompiledStepMismatch, match=r"after\.blocked.*'block_exit_enum'.*ppo\.compile = \"off\""):
        env.step(_exits(env))


def test_only_the_first_compiled_steps_are_checked(needs_compile):
    env = _env("block_exit_action", compile=True)
    _steps(env, 1)
    checks = []
    verify = env._verify_compiled
    env._verify_compiled = lambda *a: (checks.append(1), verify(*a))
    env.step(_exits(env))
    _steps(env, COMPILE_CHECK_STEPS + 3)
    assert len(checks) == COMPILE_CHECK_STEPS


# --------------------------------------------------------------------------- naming a raising component


class _RaisingFeatures:
    """Features that fail after the first step: a KeyError at k >= 2, and an index past the data."""

    @hookimpl
    def register_features(self, register):
        from exitcore.components import FeatureSpec

        def build_keyerror(p, ctx):
            def compute(m, s):
                if bool((s.k >= 2).any()):
                    raise KeyError("no column 'spread'")
                return s.upnl.reshape(-1, 1).float()

            return FeatureSpec(("x",), 0, compute)

        def build_peek(p, ctx):
            # from decision 3 on, reads a bar 100,000 bars later: past the data's end
            late = lambda s: s.bar + 100_000 * (s.k >= 3).to(torch.int64)  # noqa: E731
            return FeatureSpec(("later",), 0, lambda m, s: (m.close[late(s)] - m.close[s.bar]).reshape(-1, 1).float())

        register("raises_keyerror", build_keyerror)
        register("peeks_past_the_end", build_peek)


def _feature_env(feature: str, compile: bool = False, n_bars: int = 3000):
    bars = random_bars(n_bars, seed=5)
    trades = trades_from([(30 + 11 * i, 1 if i % 3 else -1, 0.002, 0.004) for i in range(n_bars // 12)])
    asm = assemble(resolved(features=[("position", {}), (feature, {})], extra_plugins=(_RaisingFeatures(),)), bars, trades=trades)
    return asm.make_env(torch.nonzero(asm.table.decidable).flatten(), n_envs=16, seed=3, compile=compile)


def test_a_feature_raising_in_a_later_step_is_named():
    env = _feature_env("raises_keyerror")
    with pytest.raises(PluginError, match=r"feature 'raises_keyerror' from .*_RaisingFeatures.* raised KeyError in a step "
                                          r"\(decisions k = .*\): .*no column 'spread'"):
        _steps(env, 5)


def test_a_feature_indexing_past_the_data_is_named_eager_and_compiled(needs_compile):
    env = _feature_env("peeks_past_the_end")
    with pytest.raises(PluginError, match=r"feature 'peeks_past_the_end' .* raised IndexError"):
        _steps(env, 6)
    env = _feature_env("peeks_past_the_end", compile=True)
    _steps(env, 1)  # eager, k 0 -> 1
    env.step(torch.zeros(env.n_envs, dtype=torch.int64))  # compiled, k 1 -> 2
    # k 2 -> 3: the compiled kernel's bounds check fails; the eager re-run names the feature
    with pytest.raises(PluginError, match=r"feature 'peeks_past_the_end' .* raised IndexError"):
        env.step(torch.zeros(env.n_envs, dtype=torch.int64))


def test_the_mismatch_message_reads_as_one_sentence_with_the_trainer_s_note():
    """A failed run prints the error with the trainer's note (where the last good state went)
    appended; the mismatch message ends its sentence, which gave "to train eagerly.; state ..."."""
    from exitcore.env.compile_check import check_compiled_step
    from exitcore.runner import with_notes

    t = torch.zeros(2, dtype=torch.bool)
    with pytest.raises(CompiledStepMismatch) as info:
        check_compiled_step((None, t), (None, ~t), "guards: 'g'")
    info.value.add_note("state of the last complete update (0) in runs/x")
    text = with_notes(info.value)
    assert ".;" not in text
    assert text.endswith('Set ppo.compile = "off" to train eagerly; state of the last complete update (0) in runs/x')
    assert with_notes(ValueError("plain")) == "plain"  # no notes: the message as it was


def test_an_index_past_the_end_hints_at_reading_a_later_bar():
    """A trial's feature read close[bar + 1]: at the data's last bar the step raised a bare
    'index 75240 is out of bounds ...', with no word of look-ahead."""
    from exitcore.env.blame import plugin_failure

    for index, hinted in ((5, True), (-7, False)):
        try:
            torch.zeros(5)[torch.tensor([index])]
        except IndexError as exc:
            message = str(plugin_failure(exc, "feature 'peek'", "in a step"))
        assert message.startswith(f"feature 'peek' raised IndexError in a step: index {index} is out of bounds")
        assert message.endswith("(bar + 1 at the data's last bar), which is look-ahead") is hinted
