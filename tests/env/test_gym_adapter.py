"""The gymnasium adapter (``GymVecExitEnv``) and the reference ``gymnasium.Env``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")

from gymnasium.vector import AutoresetMode  # noqa: E402

from exitcore.actions import N_ACTIONS, Action  # noqa: E402
from exitcore.env.gym_adapter import GymVecExitEnv  # noqa: E402
from exitcore.timeline import ExitReason  # noqa: E402

from .helpers import make_env, ref_market, synthetic_bars, synthetic_trades, trade_rows  # noqa: E402
from .reference import ReferenceExitEnv, v4_config  # noqa: E402

N = 32
CFG = v4_config(max_bars=24)
BARS_HELD_COL = 1  # position.bars_held_frac (k / max_bars): position is v4's first feature


@pytest.fixture(scope="module")
def data():
    bars = synthetic_bars(3_000, seed=5)
    return bars, synthetic_trades(bars, 400, seed=6)


def adapter(data, seed: int = 0, episode_info: bool = True, n: int = N) -> GymVecExitEnv:
    bars, trades = data
    return GymVecExitEnv(make_env(bars, trades, CFG, n_envs=n, auto_reset=True, seed=seed), episode_info=episode_info)


def masked_random_actions(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A uniformly random allowed action per env (what a masked policy with flat logits does)."""
    scores = rng.random(mask.shape) * mask
    return scores.argmax(axis=1)


def test_spaces_and_metadata(data) -> None:
    env = adapter(data)
    assert env.num_envs == N
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.single_observation_space == gym.spaces.Box(-np.inf, np.inf, (CFG.obs_dim(),), np.float32)
    assert env.single_action_space == gym.spaces.Discrete(N_ACTIONS)
    assert env.observation_space.shape == (N, CFG.obs_dim()) and env.observation_space.dtype == np.float32
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    assert env.action_space.nvec.tolist() == [N_ACTIONS] * N


def test_reset_observation_and_masks(data) -> None:
    env = adapter(data)
    obs, info = env.reset(seed=1)
    assert info == {}
    assert obs.shape == (N, CFG.obs_dim()) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    mask = env.action_masks()
    assert mask.shape == (N, N_ACTIONS) and mask.dtype == np.bool_
    assert mask[:, Action.HOLD].all()
    # v4's min_exit_bar (n = 3): EXIT and PARTIAL_EXIT are masked at decision 0
    assert not mask[:, Action.EXIT].any() and not mask[:, Action.PARTIAL_EXIT].any()
    assert mask[:, Action.TIGHTEN_SL].all() and mask[:, Action.TRAIL_BE].all()


def test_random_rollout(data) -> None:
    """Shapes, dtypes, same-step autoreset, and the episode infos, over a masked random rollout."""
    env = adapter(data)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=2)
    returns = np.zeros(N)
    lengths = np.zeros(N, dtype=int)
    ended_total = 0
    for _ in range(200):
        mask = env.action_masks()
        actions = masked_random_actions(rng, mask)
        assert mask[np.arange(N), actions].all()
        obs, rew, term, trunc, infos = env.step(actions)
        assert obs.shape == (N, CFG.obs_dim()) and obs.dtype == np.float32 and np.isfinite(obs).all()
        assert rew.shape == (N,) and rew.dtype == np.float64 and np.isfinite(rew).all()
        assert term.dtype == np.bool_ and trunc.dtype == np.bool_ and not trunc.any()
        returns += rew
        lengths += 1
        if term.any():
            ended_total += int(term.sum())
            assert infos["_episode"].tolist() == term.tolist() and infos["_final_obs"].tolist() == term.tolist()
            np.testing.assert_allclose(infos["episode"]["r"][term], returns[term], rtol=1e-12)
            assert infos["episode"]["l"][term].tolist() == lengths[term].tolist()
            for i in range(N):
                assert (infos["final_obs"][i] is None) != bool(term[i])
            final = infos["final_info"]
            assert set(final["exit_reason"][term].tolist()) <= {int(r) for r in ExitReason if r != ExitReason.OPEN}
            assert (final["bars_held"][term] >= 1).all()
            # same-step autoreset: a terminated env already shows decision 0 of its next trade
            assert (obs[term, BARS_HELD_COL] == 0.0).all()
            assert not env.action_masks()[term, Action.EXIT].any()
            returns[term] = 0.0
            lengths[term] = 0
        else:
            assert infos == {}
    assert ended_total > N, "the rollout should finish many episodes"


def test_adapter_matches_the_wrapped_env(data) -> None:
    """The adapter adds no behaviour: same numbers as the VecExitEnv it wraps."""
    bars, trades = data
    env = adapter(data, seed=3)
    raw = make_env(bars, trades, CFG, n_envs=N, auto_reset=True, seed=3)
    obs_a, _ = env.reset(seed=9)
    obs_r, mask_r = raw.reset(seed=9)
    np.testing.assert_array_equal(obs_a, obs_r.numpy())
    rng = np.random.default_rng(1)
    for _ in range(50):
        actions = masked_random_actions(rng, env.action_masks())
        obs_a, rew_a, term_a, _, _ = env.step(actions)
        obs_r, mask_r, rew_r, done_r = raw.step(torch.as_tensor(actions))
        np.testing.assert_array_equal(obs_a, obs_r.numpy())
        np.testing.assert_array_equal(rew_a, rew_r.numpy().astype(np.float64))
        np.testing.assert_array_equal(term_a, done_r.numpy())
        np.testing.assert_array_equal(env.action_masks(), mask_r.numpy())


def test_adapter_over_the_compiled_env_reports_the_same_episodes(data, needs_compile) -> None:
    """The compiled env keeps its state packed; the final infos (read from ``env.after``) and
    everything else come out as over the eager env."""
    bars, trades = data
    eager = adapter(data, seed=4)
    compiled = GymVecExitEnv(make_env(bars, trades, CFG, n_envs=N, auto_reset=True, seed=4, compile=True))
    compiled.reset(seed=7)
    eager.reset(seed=7)
    rng = np.random.default_rng(2)
    ended = 0
    for _ in range(40):
        actions = masked_random_actions(rng, eager.action_masks())
        obs_e, rew_e, term_e, _, info_e = eager.step(actions)
        obs_c, rew_c, term_c, _, info_c = compiled.step(actions)
        np.testing.assert_allclose(obs_c, obs_e, atol=1e-6)
        np.testing.assert_allclose(rew_c, rew_e, atol=1e-6)
        np.testing.assert_array_equal(term_c, term_e)
        if term_e.any():
            ended += int(term_e.sum())
            for key, value in info_e["final_info"].items():
                np.testing.assert_allclose(info_c["final_info"][key][term_e], value[term_e], rtol=1e-9, err_msg=key)
    assert ended > N


def rollout(env: GymVecExitEnv, seed: int, steps: int = 60) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs.copy()]
    for _ in range(steps):
        obs, rew, term, _, _ = env.step(masked_random_actions(rng, env.action_masks()))
        out += [obs.copy(), rew.copy(), term.copy()]
    return out


def test_seeded_reset_is_deterministic(data) -> None:
    a, b = adapter(data, seed=0), adapter(data, seed=123)  # construction seeds differ; reset(seed) decides
    first, second = rollout(a, seed=4), rollout(b, seed=4)
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    again = rollout(a, seed=4)  # the same env, reseeded
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    other = rollout(a, seed=5)
    assert any(not np.array_equal(x, y) for x, y in zip(first, other))


def test_gymnasium_wrappers_understand_the_autoreset_mode(data) -> None:
    """gymnasium's RecordEpisodeStatistics (which reads metadata["autoreset_mode"]) agrees with our infos."""
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    ours = adapter(data, seed=7)
    theirs = RecordEpisodeStatistics(adapter(data, seed=7, episode_info=False))
    rng = np.random.default_rng(3)
    ours.reset(seed=8)
    theirs.reset(seed=8)
    seen = 0
    for _ in range(80):
        actions = masked_random_actions(rng, ours.action_masks())
        _, _, term, _, info_ours = ours.step(actions)
        _, _, term_t, _, info_theirs = theirs.step(actions)
        np.testing.assert_array_equal(term, term_t)
        if term.any():
            seen += 1
            np.testing.assert_allclose(info_theirs["episode"]["r"][term], info_ours["episode"]["r"][term], rtol=1e-6)
            np.testing.assert_array_equal(info_theirs["episode"]["l"][term], info_ours["episode"]["l"][term])
            # the autoreset contract's final observations with episode_info off too (review AH)
            assert info_theirs["_final_obs"].tolist() == term.tolist() and "final_info" not in info_theirs
            for i in np.flatnonzero(term):
                np.testing.assert_array_equal(info_theirs["final_obs"][i], info_ours["final_obs"][i])
    assert seen > 0


def test_sweep_mode_is_rejected(data) -> None:
    bars, trades = data
    with pytest.raises(ValueError, match="training-mode"):
        GymVecExitEnv(make_env(bars, trades, CFG))


def test_step_before_reset_is_an_error(data) -> None:
    env = adapter(data)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(N, dtype=np.int64))
    with pytest.raises(RuntimeError, match="reset"):
        env.action_masks()


def test_float_actions_are_taken_only_when_they_are_whole_numbers(data) -> None:
    """1.7 was cast to 1 (EXIT) without a word; the base environment refuses floats outright."""
    env = adapter(data)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"integer action ids 0\.\.4, got dtype float64 with non-integer values \(e\.g\. 1\.7\)"):
        env.step(np.full(N, 1.7))
    env.step(np.zeros(N, dtype=np.float32))  # whole numbers, as some agents emit them: HOLD
    with pytest.raises(ValueError, match="got dtype <U1"):
        env.step(np.full(N, "0"))


def test_missing_gymnasium_is_a_clear_error() -> None:
    """Without gymnasium the module imports, and building the adapter names the extra to install."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["gymnasium"] = None  # makes `import gymnasium` raise ImportError
        from exitcore.errors import ExitcoreError
        from exitcore.env.gym_adapter import GymVecExitEnv
        try:
            GymVecExitEnv(object())
        except ExitcoreError as exc:
            print("ERR", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2], timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "exitcore[gym]" in out.stdout


# --------------------------------------------------------------------------------- the reference env


@pytest.fixture(scope="module")
def reference_env(data):
    bars, trades = data
    return ReferenceExitEnv(ref_market(bars), trade_rows(trades), CFG)


# The features are unbounded (moves in ATR units), so the Box is (-inf, inf) on purpose.
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value")
def test_reference_env_passes_gymnasium_env_checker(reference_env) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(reference_env, skip_render_check=True)


def test_reference_env_in_sync_vector_env(data) -> None:
    """The benchmark's baseline: the reference env in gymnasium's SyncVectorEnv, masks via call()."""
    bars, trades = data
    market, rows = ref_market(bars), trade_rows(trades)
    envs = gym.vector.SyncVectorEnv([lambda: ReferenceExitEnv(market, rows, CFG) for _ in range(4)])
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (4, CFG.obs_dim())
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(100):
        mask = np.stack(envs.call("action_masks"))
        assert mask.shape == (4, N_ACTIONS) and mask[:, Action.HOLD].all()
        obs, rew, term, trunc, _ = envs.step(masked_random_actions(rng, mask))
        ended += int(term.sum())
        assert not trunc.any()
    assert ended > 0


@pytest.mark.parametrize("enforce", [True, False])
def test_a_masked_action_sent_anyway_is_held_counted_and_warned_about(data, enforce) -> None:
    """Review AI: EXIT sent at the first decision, where v4's min_exit_bar mask forbids it, was
    executed (every trade closed by the agent at bar 0: v3's exploit behind the mask's back),
    and nothing counted it. Enforced (the default) it is held, counted per action, warned about once."""
    bars, trades = data
    unguarded = v4_config(max_bars=24, guards=())  # the mask alone stands between EXIT and bar 0
    env = GymVecExitEnv(make_env(bars, trades, unguarded, n_envs=N, auto_reset=True, seed=3), enforce_masks=enforce)
    env.reset(seed=3)
    assert not env.action_masks()[:, Action.EXIT].any()  # the first decision: EXIT masked everywhere
    exits = np.full(N, Action.EXIT)
    if not enforce:
        _, _, terminated, _, infos = env.step(exits)
        assert terminated.all() and (infos["final_info"]["exit_reason"] == ExitReason.AGENT).all()
        assert env.refused.sum() == 0
        return
    with pytest.warns(Warning, match=rf"{N} of {N} actions were masked \(e.g. EXIT in env 0\) and are executed as HOLD"):
        _, _, terminated, _, infos = env.step(exits)
    agent_exits = terminated & (infos.get("final_info", {}).get("exit_reason", np.zeros(N)) == ExitReason.AGENT)
    assert not agent_exits.any()
    assert env.refused.tolist() == [0, N, 0, 0, 0]
    import warnings as _warnings

    with _warnings.catch_warnings():
        _warnings.simplefilter("error")  # said once
        env.step(np.where(env.action_masks()[:, Action.EXIT], Action.HOLD, Action.EXIT))
    assert env.refused[Action.EXIT] > N


def test_a_masked_action_warning_raised_as_an_error_counts_nothing(data) -> None:
    """Review AJ: under `-W error` the refusals were counted (and the warning marked given) for a
    step that never ran; the next one then ran silently."""
    import warnings as _warnings

    bars, trades = data
    env = GymVecExitEnv(make_env(bars, trades, v4_config(max_bars=24, guards=()), n_envs=N, auto_reset=True, seed=3))
    env.reset(seed=3)
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        for _ in range(2):
            with pytest.raises(Warning, match="were masked"):
                env.step(np.full(N, Action.EXIT))
    assert env.refused.sum() == 0


def test_the_adapter_checks_every_step_s_ids_where_the_environment_would_not(data) -> None:
    """Trial AC: an environment on a GPU checks its first step's ids only (a check there waits
    for the device); through the adapter a bad id or shape later on is refused, naming it."""
    env = adapter(data)
    env.reset(seed=1)
    env.step(np.zeros(N, dtype=np.int64))
    env.env._strict = False  # what an environment on a GPU is after its first step
    bad = np.zeros(N, dtype=np.int64)
    bad[3] = 7
    with pytest.raises(ValueError, match=rf"invalid action id\(s\): 7 in env 3 \(1 of {N} envs\)"):
        env.step(bad)
    with pytest.raises(ValueError, match=rf"actions must have shape \[{N}\], got \(1,\)"):
        env.step(np.zeros(1, dtype=np.int64))


def test_record_episode_statistics_wraps_the_adapter_without_its_own_episode_info(data) -> None:
    """Trial AC 1: docs/gym.md said gymnasium's RecordEpisodeStatistics works as it is; it refuses
    the adapter's own infos["episode"]. With episode_info=False (as documented now) it works."""
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    with pytest.raises(ValueError, match="already exists"):
        _run_wrapped(RecordEpisodeStatistics(adapter(data)))
    episodes = _run_wrapped(RecordEpisodeStatistics(adapter(data, episode_info=False)))
    assert episodes and all({"r", "l", "t"} <= set(e) for e in episodes)


def _run_wrapped(env) -> list:
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    episodes = []
    for _ in range(60):
        _, _, terminated, _, infos = env.step(masked_random_actions(rng, env.unwrapped.action_masks()))
        if "episode" in infos:
            episodes.append(infos["episode"])
    return episodes


def test_a_closed_adapter_is_used_no_more(data) -> None:
    """Trial AC 10: step() and action_masks() still worked after close()."""
    env = adapter(data)
    env.reset(seed=0)
    env.close()
    for call in (lambda: env.step(np.zeros(N, dtype=np.int64)), env.action_masks, env.reset):
        with pytest.raises(RuntimeError, match=r"on a closed GymVecExitEnv"):
            call()
    env.close()  # twice is fine, as gymnasium's own
