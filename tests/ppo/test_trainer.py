"""The trainer: determinism, exact resume, divergence, Ctrl-C, logs."""

from __future__ import annotations

import json

import attrs
import pytest
import torch

from exitcore.config import PPOConfig
from exitcore.errors import ExitcoreError
from exitcore.ppo import CHECKPOINT_FILE, MLPActorCritic, PPOTrainer, TrainingDiverged, load_checkpoint, seed_everything
from exitcore.ppo.testing import MaskedBanditEnv, MaskedChainEnv

N_ENVS, N_STEPS = 8, 16
UPDATE_STEPS = N_ENVS * N_STEPS


def config(**kw):
    base = dict(n_envs=N_ENVS, n_steps=N_STEPS, batch_size=32, n_epochs=2, hidden=[16, 16], learning_rate=3e-3,
                anneal_lr=True, entropy_coef_start=0.05, entropy_coef_end=0.0, entropy_anneal_steps=4 * UPDATE_STEPS,
                total_timesteps=6 * UPDATE_STEPS, checkpoint_every=100, target_kl=0.0, seed=3)
    base.update(kw)
    return PPOConfig(**base)


def make(ppo, env_cls=MaskedBanditEnv, **kw):
    seed_everything(ppo.seed)
    env = env_cls(ppo.n_envs)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    return env, policy


def params(policy):
    return torch.cat([p.detach().flatten() for p in policy.parameters()])


def losses(log):
    return [(m["update"], m["loss_policy"], m["loss_value"], m["approx_kl"]) for m in log]


def run(ppo, run_dir=None, **kw):
    env, policy = make(ppo)
    log = []
    trainer = PPOTrainer(env, policy, ppo, run_dir=run_dir, on_update=lambda u, m: log.append(m), progress=False, **kw)
    return trainer, trainer.train(), log


def test_same_seed_same_numbers_other_seed_other_numbers():
    ppo = config(total_timesteps=3 * UPDATE_STEPS)
    a, _, log_a = run(ppo)
    b, _, log_b = run(ppo)
    assert torch.equal(params(a.policy), params(b.policy))
    assert losses(log_a) == losses(log_b)
    c, _, _ = run(config(total_timesteps=3 * UPDATE_STEPS, seed=4))
    assert not torch.equal(params(a.policy), params(c.policy))


def test_resume_after_interrupt_is_bit_exact(tmp_path):
    ppo = config()
    straight, result, log_straight = run(ppo, tmp_path / "straight")
    assert result.status == "done" and result.updates == 6 and result.global_step == 6 * UPDATE_STEPS

    def stop_at_3(update, metrics):
        if update == 3:
            raise KeyboardInterrupt

    env, policy = make(ppo)
    first = PPOTrainer(env, policy, ppo, run_dir=tmp_path / "split", on_update=stop_at_3, progress=False)
    stopped = first.train()
    assert stopped.status == "interrupted" and stopped.updates == 3
    assert stopped.checkpoint_path == tmp_path / "split" / CHECKPOINT_FILE

    # A fresh process would build a fresh env and a differently initialised policy.
    seed_everything(999)
    env2 = MaskedBanditEnv(N_ENVS)
    policy2 = MLPActorCritic.from_config(ppo, env2.obs_dim, env2.n_actions)
    log_resumed = []
    resumed = PPOTrainer.resume(stopped.checkpoint_path, env2, policy2, ppo, run_dir=tmp_path / "split",
                                on_update=lambda u, m: log_resumed.append(m), progress=False)
    result2 = resumed.train()
    assert result2.status == "done" and result2.updates == 6
    assert torch.equal(params(resumed.policy), params(straight.policy))
    assert losses(log_resumed) == losses(log_straight)[3:]
    # the run's log holds every update once
    lines = [json.loads(x) for x in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert [m["update"] for m in lines] == [1, 2, 3, 4, 5, 6]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing in the trainer catches it."""


def _log_updates(run_dir):
    return [json.loads(x)["update"] for x in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_a_run_killed_before_its_first_checkpoint_starts_its_log_again(tmp_path):
    """Resumed with no checkpoint, a run trains from update 0 in the same directory: the records
    the killed attempt logged must go (they were appended to: 1, 2, 1, 2, 3, ...)."""
    ppo = config(checkpoint_every=100)

    def kill_at_2(update, metrics):
        if update == 2:
            raise _Killed

    env, policy = make(ppo)
    with pytest.raises(_Killed):
        PPOTrainer(env, policy, ppo, run_dir=tmp_path, on_update=kill_at_2, progress=False).train()
    assert _log_updates(tmp_path) == [1, 2] and not (tmp_path / CHECKPOINT_FILE).exists()
    env, policy = make(ppo)
    PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False).train()
    assert _log_updates(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_a_kill_right_after_a_checkpoint_loses_no_log_record(tmp_path, monkeypatch):
    """The update's record is logged before its checkpoint is written: a kill between the two
    leaves the record of an update the checkpoint holds (the other order lost it for good)."""
    ppo = config(checkpoint_every=2)
    real_write = PPOTrainer._write

    def write_then_die(self, snapshot):
        path = real_write(self, snapshot)
        if self.update == 4:
            raise _Killed
        return path

    env, policy = make(ppo)
    monkeypatch.setattr(PPOTrainer, "_write", write_then_die)
    with pytest.raises(_Killed):
        PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False).train()
    monkeypatch.setattr(PPOTrainer, "_write", real_write)
    env, policy = make(ppo)
    PPOTrainer.resume(tmp_path / CHECKPOINT_FILE, env, policy, ppo, run_dir=tmp_path, progress=False).train()
    assert _log_updates(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_a_stop_signal_is_honoured_between_steps_not_inside_other_code(tmp_path):
    """Ctrl-C (here SIGINT sent to ourselves inside the update hook, where TensorBoard writes)
    must not raise inside that code: an interrupt inside TensorBoard's writer once left its
    close() waiting forever. The hook finishes; the trainer stops at its next rollout step,
    resumable, and restores the previous handlers."""
    import os
    import signal

    ppo = config(total_timesteps=6 * UPDATE_STEPS)
    straight, _, _ = run(ppo)
    finished = []

    def ctrl_c_at_2(update, metrics):
        if update == 2:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # a pending signal is handled at the next bytecode boundaries
                pass
        finished.append(update)

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    env, policy = make(ppo)
    stopped = PPOTrainer(env, policy, ppo, run_dir=tmp_path, on_update=ctrl_c_at_2, progress=False).train()
    assert finished == [1, 2]  # the hook ran to its end
    assert stopped.status == "interrupted" and stopped.updates == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    env2, policy2 = make(ppo)
    resumed = PPOTrainer.resume(stopped.checkpoint_path, env2, policy2, ppo, run_dir=tmp_path, progress=False)
    assert resumed.train().status == "done"
    assert torch.equal(params(resumed.policy), params(straight.policy))


def test_a_stop_signal_in_the_rollout_stops_at_the_next_step():
    import os
    import signal

    ppo = config(total_timesteps=4 * UPDATE_STEPS)

    class Signalling(MaskedBanditEnv):
        calls = 0

        def step(self, action):
            Signalling.calls += 1
            if Signalling.calls == 2 * N_STEPS + 5:  # inside the rollout of update 3
                os.kill(os.getpid(), signal.SIGINT)
            return super().step(action)

    seed_everything(ppo.seed)
    env = Signalling(N_ENVS)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    stopped = PPOTrainer(env, policy, ppo, progress=False).train()
    assert stopped.status == "interrupted" and stopped.updates == 2
    assert Signalling.calls == 2 * N_STEPS + 5  # not one more env step


def test_a_second_stop_signal_still_returns_interrupted():
    import os
    import signal

    ppo = config(total_timesteps=4 * UPDATE_STEPS)

    def ctrl_c_twice(update, metrics):
        if update == 2:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
            os.kill(os.getpid(), signal.SIGINT)  # raises here
            for _ in range(1000):
                pass

    env, policy = make(ppo)
    stopped = PPOTrainer(env, policy, ppo, on_update=ctrl_c_twice, progress=False).train()
    assert stopped.status == "interrupted" and stopped.updates == 2


def test_interrupt_mid_rollout_replays_the_update_exactly(tmp_path):
    ppo = config(total_timesteps=4 * UPDATE_STEPS)
    straight, _, _ = run(ppo)

    class Flaky(MaskedBanditEnv):
        calls = 0

        def step(self, action):
            Flaky.calls += 1
            if Flaky.calls == 2 * N_STEPS + 5:  # inside the rollout of update 3
                raise KeyboardInterrupt
            return super().step(action)

    seed_everything(ppo.seed)
    env = Flaky(N_ENVS)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    stopped = PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False).train()
    assert stopped.status == "interrupted" and stopped.updates == 2
    assert load_checkpoint(stopped.checkpoint_path)["update"] == 2
    env2, policy2 = make(ppo)
    resumed = PPOTrainer.resume(stopped.checkpoint_path, env2, policy2, ppo, run_dir=tmp_path, progress=False)
    resumed.train()
    assert torch.equal(params(resumed.policy), params(straight.policy))


class NaNEnv(MaskedBanditEnv):
    """Produces a non-finite observation or reward at one global step."""

    def __init__(self, n_envs, at_step, where):
        super().__init__(n_envs)
        self.at_step, self.where, self.calls = at_step, where, 0
        self.feature_names = tuple(f"feature.{i}" for i in range(self.obs_dim))  # as VecExitEnv names columns

    def step(self, action):
        obs, mask, reward, done = super().step(action)
        self.calls += 1
        if self.calls == self.at_step:
            if self.where == "obs":
                obs = obs.clone()
                obs[3, 1] = getattr(self, "bad", float("nan"))
            else:
                reward = reward.clone()
                reward[5] = float("inf")
        return obs, mask, reward, done


# The 3rd step of update 3 returns the bad value: its reward belongs to rollout step 2, the
# observation it returns is the one the policy sees at step 3.
@pytest.mark.parametrize("where, quantity, step", [("obs", "observations", 3), ("reward", "rewards", 2)])
def test_nan_in_env_output_stops_with_named_quantity_and_a_good_checkpoint(tmp_path, where, quantity, step):
    ppo = config(checkpoint_every=100)
    seed_everything(ppo.seed)
    env = NaNEnv(N_ENVS, at_step=2 * N_STEPS + 3, where=where)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    trainer = PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged, match=f"update 3: non-finite {quantity}") as info:
        trainer.train()
    assert info.value.update == 3 and info.value.quantity == quantity
    assert f"rollout step {step}, env {3 if where == 'obs' else 5}" in str(info.value)
    if where == "obs":
        assert str(info.value).endswith("in 'feature.1')")  # the column that went NaN
    state = load_checkpoint(info.value.checkpoint_path)
    assert state["update"] == 2 and state["global_step"] == 2 * UPDATE_STEPS
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert trainer.update == 2  # rolled back to the checkpoint


class SpikeEnv(MaskedBanditEnv):
    """A reward term that returns +inf for env 5 at one global step, its step counter part of
    the state (a checkpoint restores it), with its terms apart as VecExitEnv gives them."""

    def __init__(self, n_envs, at_step):
        super().__init__(n_envs)
        self.at_step, self.steps, self.replayed = at_step, 0, 0

    def _spike(self):
        r = torch.zeros(self.n_envs, dtype=torch.float64)
        if self.steps == self.at_step:
            r[5] = float("inf")
        return r

    def step(self, action):
        obs, mask, reward, done = super().step(action)
        reward = reward + self._spike().to(reward.dtype)
        self.steps += 1
        return obs, mask, reward, done

    def reward_terms(self, action):
        from exitcore.env.components import Named

        self.replayed += 1
        return [(Named("bandit", "the test", None), torch.zeros(self.n_envs)), (Named("spike", "the test", None), self._spike())]

    def state_dict(self):
        return {**super().state_dict(), "steps": self.steps}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.steps = state["steps"]


def test_a_non_finite_reward_is_replayed_to_name_its_term_and_the_trainer_is_left_at_the_last_good_state(tmp_path):
    ppo = config(checkpoint_every=100)
    seed_everything(ppo.seed)
    env = SpikeEnv(N_ENVS, at_step=2 * N_STEPS + 2)  # rollout step 2 of update 3
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    trainer = PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged, match="update 3: non-finite rewards") as info:
        trainer.train()
    assert str(info.value) == ("training diverged in update 3: non-finite rewards (first at rollout step 2, env 5); "
                               "reward term 'spike' from the test returned inf there (the rollout replayed from the "
                               "last good state)")
    assert env.replayed == 1
    state = load_checkpoint(info.value.checkpoint_path)
    assert state["update"] == 2 and trainer.update == 2
    # the replay stepped the environment on: it is put back to the state the checkpoint holds
    assert env.steps == state["env"]["steps"] == 2 * N_STEPS
    assert torch.equal(env.context, state["env"]["context"]) and torch.equal(trainer.next_obs, state["next_obs"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_bad_observation_from_the_last_rollout_step_stops_that_update(tmp_path, bad):
    """The last step's observation is never stored in the buffer: it bootstraps the update's
    values and starts the next rollout. Unchecked, +inf went through a tanh network finitely, the
    update was accepted and its checkpoint held the bad observation: no resume could get past it."""
    ppo = config(checkpoint_every=1)
    seed_everything(ppo.seed)
    env = NaNEnv(N_ENVS, at_step=3 * N_STEPS, where="obs")  # the last step of update 3
    env.bad = bad
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    trainer = PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged, match="update 3: non-finite observations") as info:
        trainer.train()
    assert "after the last rollout step (the bootstrap observation), env 3, in 'feature.1'" in str(info.value)
    state = load_checkpoint(info.value.checkpoint_path)
    assert state["update"] == 2 and torch.isfinite(state["next_obs"]).all()


def test_same_device_matches_an_index_only_where_both_name_one():
    from exitcore.ppo.trainer import same_device

    cuda0, cuda1, cuda, cpu = (torch.device(d) for d in ("cuda:0", "cuda:1", "cuda", "cpu"))
    assert same_device(cuda0, cuda0) and same_device(cuda, cuda1) and same_device(cuda0, cuda)
    assert not same_device(cuda0, cuda1) and not same_device(cuda, cpu) and same_device(cpu, cpu)


class NaNValueInUpdate(MLPActorCritic):
    """Finite in the rollout (no grad), infinite value in the update from ``bad_update`` on."""

    bad_update = 2
    updates_seen = 0

    def forward(self, obs):
        logits, value = super().forward(obs)
        if torch.is_grad_enabled() and NaNValueInUpdate.updates_seen >= self.bad_update:
            value = value * float("inf")
        return logits, value


def test_nan_in_loss_stops_with_named_quantity(tmp_path):
    ppo = config()
    seed_everything(ppo.seed)
    env = MaskedBanditEnv(N_ENVS)
    policy = NaNValueInUpdate(env.obs_dim, env.n_actions, hidden=[16, 16])
    NaNValueInUpdate.updates_seen = 1

    def count(update, metrics):
        NaNValueInUpdate.updates_seen += 1

    trainer = PPOTrainer(env, policy, ppo, run_dir=tmp_path, on_update=count, progress=False)
    with pytest.raises(TrainingDiverged, match="update 2: non-finite loss_value") as info:
        trainer.train()
    state = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert state["update"] == 1 and info.value.checkpoint_path == tmp_path / CHECKPOINT_FILE
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_exitcore_error_from_on_update_stops_after_a_checkpoint(tmp_path):
    def stop(update, metrics):
        if update == 2:
            raise ExitcoreError("early stop requested by a plugin")

    env, policy = make(config())
    trainer = PPOTrainer(env, policy, config(), run_dir=tmp_path, on_update=stop, progress=False)
    with pytest.raises(ExitcoreError, match="early stop requested"):
        trainer.train()
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["update"] == 2


def test_a_run_taken_over_writes_no_checkpoint(tmp_path):
    """A heartbeat that finds another process owning the run (NotOwner) stops training without
    the last-good checkpoint every other error gets: the directory is the other process's now."""
    from exitcore.errors import NotOwner

    def taken(update, metrics):
        if update == 2:
            raise NotOwner("run x is now running under process 1 on elsewhere")

    env, policy = make(config())
    trainer = PPOTrainer(env, policy, config(), run_dir=tmp_path, on_update=taken, progress=False)
    with pytest.raises(NotOwner):
        trainer.train()
    assert not (tmp_path / CHECKPOINT_FILE).exists()


@pytest.mark.parametrize("stop", [KeyboardInterrupt, ValueError, None])
def test_before_write_stops_every_checkpoint_of_a_run_taken_over(tmp_path, stop):
    """before_write (the runner's ownership check) runs before each checkpoint: the periodic one,
    the one Ctrl-C writes and the one an error writes. A run another process took over wrote
    its checkpoint over that process's when stopped (a review)."""
    from exitcore.errors import NotOwner

    ppo = config(checkpoint_every=2)
    taken = []

    def before_write():
        if taken:
            raise NotOwner("run x is now running under process 1 on elsewhere")

    def on_update(update, metrics):
        if update == 1:
            taken.append(True)  # another process resumed it meanwhile
            if stop is not None:
                raise stop("stopped")

    env, policy = make(ppo)
    trainer = PPOTrainer(env, policy, ppo, run_dir=tmp_path, on_update=on_update, progress=False, before_write=before_write)
    with pytest.raises(NotOwner):
        trainer.train()
    assert not (tmp_path / CHECKPOINT_FILE).exists()


def test_empty_mask_row_is_reported():
    class EmptyMask(MaskedBanditEnv):
        def step(self, action):
            obs, mask, reward, done = super().step(action)
            mask = mask.clone()
            mask[2] = False
            return obs, mask, reward, done

    ppo = config()
    seed_everything(0)
    env = EmptyMask(N_ENVS)
    trainer = PPOTrainer(env, MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions), ppo, progress=False)
    with pytest.raises(ExitcoreError, match="update 1: the action mask of env 2 at rollout step 1 allows no action"):
        trainer.train()


def test_log_records_and_periodic_checkpoints(tmp_path):
    ppo = config(total_timesteps=4 * UPDATE_STEPS, checkpoint_every=2)
    seen = []
    seed_everything(0)
    env = MaskedChainEnv(N_ENVS)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    path = tmp_path / CHECKPOINT_FILE

    def on_update(update, metrics):
        seen.append(load_checkpoint(path)["update"] if path.exists() else None)

    result = PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False, on_update=on_update).train()
    assert seen == [None, 2, 2, 4]  # written every 2 updates, before on_update sees the update
    assert result.checkpoint_path == path and load_checkpoint(path)["update"] == 4
    records = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(records) == 4 and records == [json.loads(json.dumps(r)) for r in records]
    last = records[-1]
    for key in ("global_step", "ep_return_mean", "ep_length_mean", "episodes", "sampled_frac/0", "masked_frac/1",
                "loss_policy", "loss_value", "loss_entropy", "entropy", "approx_kl", "clipfrac", "explained_variance",
                "entropy_coef", "learning_rate", "sps", "sps_rollout", "sps_update", "epochs"):
        assert key in last, key
    assert last["global_step"] == 4 * UPDATE_STEPS and result.last_metrics["update"] == 4
    assert last["masked_frac/1"] > 0 and last["masked_frac/0"] == 0  # EXIT is masked early in the chain
    assert last["sampled_frac/0"] + last["sampled_frac/1"] == pytest.approx(1.0)
    assert last["learning_rate"] < records[0]["learning_rate"]  # annealed
    assert last["entropy_coef"] < records[0]["entropy_coef"]


def test_kl_early_stop_cuts_epochs():
    ppo = config(total_timesteps=UPDATE_STEPS, n_epochs=8, target_kl=1e-9, learning_rate=1e-2)
    _, result, _ = run(ppo)
    assert result.last_metrics["epochs"] == 1
    _, result, _ = run(config(total_timesteps=UPDATE_STEPS, n_epochs=8, target_kl=0.0))
    assert result.last_metrics["epochs"] == 8


def test_the_first_minibatch_reuses_the_sampling_mask(monkeypatch):
    """Before any optimiser step the policy is unchanged: under the stored mask the ratio is 1."""
    import exitcore.ppo.trainer as trainer_module

    seen = []
    real = trainer_module.ppo_loss

    def spy(policy, mb, **kw):
        out = real(policy, mb, **kw)
        seen.append((out.approx_kl.item(), mb.masks.all().item()))
        return out

    monkeypatch.setattr(trainer_module, "ppo_loss", spy)
    run(config(total_timesteps=UPDATE_STEPS))
    kl, all_allowed = seen[0]
    assert kl == 0.0 and not all_allowed  # masks really restrict something, and the ratio is exactly 1


def test_resume_refuses_a_checkpoint_that_does_not_fit(tmp_path):
    from exitcore.ppo import CheckpointError

    ppo = config(total_timesteps=UPDATE_STEPS)
    run(ppo, tmp_path)
    seed_everything(0)
    other = MaskedBanditEnv(N_ENVS, n_contexts=7)  # obs_dim 7 instead of 4
    policy = MLPActorCritic.from_config(ppo, other.obs_dim, other.n_actions)
    with pytest.raises(CheckpointError, match="checkpoint.pt: the checkpoint has obs_dim = 4 but this run has 7"):
        PPOTrainer.resume(tmp_path / CHECKPOINT_FILE, other, policy, ppo)


def test_resume_refuses_an_environment_state_it_cannot_restore(tmp_path):
    from exitcore.ppo import CheckpointError

    class Pickier(MaskedBanditEnv):
        def load_state_dict(self, data):
            raise ValueError("this environment checkpoint predates something")

    ppo = config(total_timesteps=2 * UPDATE_STEPS)
    run(ppo, tmp_path)
    seed_everything(0)
    env = Pickier(N_ENVS, n_contexts=4)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    with pytest.raises(CheckpointError, match="environment state cannot be restored: this environment checkpoint predates"):
        PPOTrainer.resume(tmp_path / CHECKPOINT_FILE, env, policy, ppo)


def test_resume_of_a_finished_run_returns_at_once(tmp_path):
    ppo = config(total_timesteps=2 * UPDATE_STEPS)
    done, _, _ = run(ppo, tmp_path)
    env, policy = make(ppo)
    again = PPOTrainer.resume(tmp_path / CHECKPOINT_FILE, env, policy, ppo, progress=False).train()
    assert again.status == "done" and again.updates == 2 and again.last_metrics == {}
    assert torch.equal(params(policy), params(done.policy))


def test_a_crashing_environment_still_leaves_the_last_good_checkpoint(tmp_path):
    class Crashing(MaskedBanditEnv):
        calls = 0

        def step(self, action):
            Crashing.calls += 1
            if Crashing.calls == 2 * N_STEPS + 1:
                raise RuntimeError("bug in a plugin")
            return super().step(action)

    ppo = config()
    seed_everything(0)
    env = Crashing(N_ENVS)
    trainer = PPOTrainer(env, MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions), ppo, run_dir=tmp_path,
                         progress=False)
    with pytest.raises(RuntimeError, match="bug in a plugin") as info:
        trainer.train()
    assert any("last complete update (2) written to" in note for note in info.value.__notes__)
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["update"] == 2


def test_bf16_precision_is_deterministic_and_differs_from_fp32():
    ppo = config(total_timesteps=2 * UPDATE_STEPS, precision="bf16")
    a, _, log_a = run(ppo)
    b, _, log_b = run(ppo)
    assert torch.equal(params(a.policy), params(b.policy)) and losses(log_a) == losses(log_b)
    assert all(p.dtype == torch.float32 for p in a.policy.parameters())  # weights stay float32
    fp32, _, _ = run(config(total_timesteps=2 * UPDATE_STEPS))
    assert not torch.equal(params(a.policy), params(fp32.policy))  # bf16 matmuls really ran


@pytest.mark.parametrize("micro", [32, 12])  # 32 passes: the whole minibatch; 12: passes of 12, 12, 8 rows
def test_micro_batches_give_the_gradient_of_the_whole_minibatch(micro):
    """Summing the gradients of weighted micro-batch losses must equal one pass over the minibatch
    (advantages normalised over the whole minibatch, each pass weighted by its share of rows)."""
    ppo = config(batch_size=32)
    env, policy = make(ppo)
    trainer = PPOTrainer(env, policy, ppo, progress=False)
    trainer.next_obs, trainer.next_mask = env.reset(seed=0)
    trainer._collect()
    buf = trainer.buffer
    buf.advantages.normal_(generator=torch.Generator().manual_seed(1)).mul_(3).add_(1)  # mean and scale far from 0, 1
    buf.returns.normal_(generator=torch.Generator().manual_seed(2))
    mb = buf.minibatch(torch.randperm(buf.size, generator=torch.Generator().manual_seed(3))[:32])

    trainer.micro_batch_size = 32
    whole = trainer._accumulate_gradient(mb, ent_coef=0.05)
    whole_grad = [p.grad.clone() for p in policy.parameters()]
    trainer.micro_batch_size = micro
    split = trainer._accumulate_gradient(mb, ent_coef=0.05)
    split_grad = [p.grad for p in policy.parameters()]

    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    for a, b in zip(split_grad, whole_grad):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_micro_batch_rows_follow_the_config_and_the_device():
    assert config(batch_size=32, micro_batch_size=12).micro_batch_rows("cpu") == 12
    assert config(batch_size=32, micro_batch_size=100).micro_batch_rows("cpu") == 32
    v4 = PPOConfig(n_envs=256, n_steps=128, batch_size=8192, hidden=[512, 256])
    assert v4.micro_batch_rows("cpu") == 2048  # 2048 x 512 float32 activations = 4 MiB
    assert v4.micro_batch_rows("cuda") == 8192
    assert attrs.evolve(v4, precision="bf16").micro_batch_rows("cpu") == 8192
    assert PPOConfig(n_envs=256, n_steps=128, batch_size=8192, hidden=[64, 64]).micro_batch_rows("cpu") == 8192


def test_training_with_micro_batches_is_deterministic_and_close_to_whole_minibatches():
    a, _, log_a = run(config(total_timesteps=2 * UPDATE_STEPS, micro_batch_size=12))
    b, _, log_b = run(config(total_timesteps=2 * UPDATE_STEPS, micro_batch_size=12))
    assert torch.equal(params(a.policy), params(b.policy)) and losses(log_a) == losses(log_b)
    c, _, _ = run(config(total_timesteps=2 * UPDATE_STEPS))
    torch.testing.assert_close(params(a.policy), params(c.policy), rtol=1e-3, atol=1e-4)


def test_graphs_are_for_cuda_fp32_whole_minibatches_only():
    v4 = PPOConfig(hidden=[512, 256], batch_size=8192)
    assert v4.captures_graphs("cuda") and not v4.captures_graphs("cpu")
    assert not attrs.evolve(v4, compile="off").captures_graphs("cuda")
    assert not attrs.evolve(v4, precision="bf16").captures_graphs("cuda")
    assert not attrs.evolve(v4, micro_batch_size=2048).captures_graphs("cuda")
    # the env step's graph does not depend on the policy's precision or micro-batches
    assert attrs.evolve(v4, precision="bf16").replays_env_graph("cuda") and not v4.replays_env_graph("cpu")
    assert not attrs.evolve(v4, compile="off").replays_env_graph("cuda")
    env, policy = make(config())
    assert PPOTrainer(env, policy, config(), progress=False).graphs == {"policy_step": "off", "update": "off", "env_step": "off"}


def test_a_graph_that_cannot_be_captured_falls_back_to_the_same_training():
    """Forced on where capture is impossible (no CUDA here), each graph fails on first use: the
    trainer warns, names the failure in ``graphs`` and trains exactly as without graphs (the
    failed attempt changed nothing)."""
    ppo = config(total_timesteps=3 * UPDATE_STEPS)
    plain, _, log_plain = run(ppo)
    env, policy = make(ppo)
    forced = PPOTrainer(env, policy, ppo, progress=False)
    forced.graphs.update(policy_step="on", update="on")
    with pytest.warns(RuntimeWarning) as caught:
        forced.train()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages  # one per graph, not one per step
    assert "CUDA graph of the policy step could not be captured" in messages[0]
    assert "CUDA graph of the update could not be captured" in messages[1]
    assert forced.graphs["policy_step"].startswith("failed: ") and forced.graphs["update"].startswith("failed: ")
    assert torch.equal(params(forced.policy), params(plain.policy))
    assert isinstance(forced.optimizer.param_groups[0]["lr"], float)  # the update graph's tensor lr, undone


def test_loading_a_checkpoint_keeps_the_trainers_own_optimizer_settings(tmp_path):
    """Adam's load_state_dict copies the writer's hyperparameters, ``capturable`` included: a
    checkpoint written with graphs on (or before them) must not switch this trainer's Adam."""
    ppo = config(total_timesteps=UPDATE_STEPS)
    trainer, result, _ = run(ppo, tmp_path)
    state = load_checkpoint(result.checkpoint_path)
    state["optimizer"]["param_groups"][0]["capturable"] = True
    env, policy = make(ppo)
    again = PPOTrainer(env, policy, ppo, progress=False)
    again.load_state_dict(state)
    assert again.optimizer.param_groups[0]["capturable"] is False


def test_a_trainer_without_graphs_turns_the_environments_graph_off():
    """An env left in graph mode (by an earlier trainer, say) must not replay graphs under a
    trainer that reports them off."""

    class GraphableEnv(MaskedBanditEnv):
        graph = True

        def use_cuda_graph(self, enabled=True):
            GraphableEnv.graph = enabled
            return enabled

    ppo = config()
    seed_everything(ppo.seed)
    env = GraphableEnv(ppo.n_envs)
    trainer = PPOTrainer(env, MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions), ppo, progress=False)
    assert GraphableEnv.graph is False and trainer.graphs["env_step"] == "off"


def test_a_runaway_update_is_warned_about_once():
    """A learning rate of 1e6 keeps every loss finite, so nothing stops the run, but the policy
    collapses at once; the trainer says so (once), and a healthy run says nothing."""
    import warnings

    from exitcore.errors import ExitcoreWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, healthy = run(config())
        _, _, runaway = run(config(learning_rate=1e6, anneal_lr=False))
    ours = [w for w in caught if issubclass(w.category, ExitcoreWarning)]
    assert max(m["approx_kl"] for m in healthy) < 0.1 and runaway[0]["approx_kl"] > 1.0
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert str(ours[0].message).startswith("update 1: approx_kl ") and "learning rate (1e+06) is probably too high" in str(ours[0].message)


def _stopped_after_two(run_dir):
    """Train config() in ``run_dir`` with an on_update that calls stop_early("enough") at update 2."""
    holder = []

    def stop_after_two(update, metrics):
        if update == 2:
            holder[0].stop_early("enough")

    env, policy = make(config())
    holder.append(PPOTrainer(env, policy, config(), run_dir=run_dir, on_update=stop_after_two, progress=False))
    return holder[0].train()


def test_a_trainer_stopped_early_from_on_update_ends_done_and_checkpointed(tmp_path):
    result = _stopped_after_two(tmp_path)
    assert (result.status, result.updates, result.stopped_early) == ("done", 2, "enough")
    assert result.global_step == 2 * UPDATE_STEPS and load_checkpoint(tmp_path / CHECKPOINT_FILE)["update"] == 2
    assert run(config())[1].stopped_early is None  # an ordinary run


def test_a_stop_asked_for_with_the_last_update_is_no_early_stop(tmp_path):
    """A plugin answering 'stop' at the last update made the run another trial (stopped early at
    its full length) although it trained exactly as the run without the plugin (review AD)."""
    holder = []
    ppo = config(total_timesteps=2 * UPDATE_STEPS)
    env, policy = make(ppo)
    holder.append(PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False,
                             on_update=lambda update, metrics: holder[0].stop_early("enough") if update == 2 else None))
    result = holder[0].train()
    assert (result.status, result.updates, result.stopped_early) == ("done", 2, None)


def test_a_resumed_trainer_a_plugin_had_stopped_early_trains_no_further(tmp_path):
    """A run a plugin ended early, stopped while evaluating and resumed, trained on to
    total_timesteps from its checkpoint: stop_early before train() ends it at once."""
    _stopped_after_two(tmp_path)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    env, policy = make(config())
    resumed = PPOTrainer.resume(tmp_path / CHECKPOINT_FILE, env, policy, config(), run_dir=tmp_path, progress=False)
    resumed.stop_early("enough")
    result = resumed.train()
    assert (result.status, result.updates, result.stopped_early) == ("done", 2, "enough")
    assert _log_updates(tmp_path) == [1, 2] and (tmp_path / CHECKPOINT_FILE).read_bytes() == before


def test_a_sweep_environment_is_refused():
    """An evaluation sweep (auto_reset=False) was trained on silently: gradient updates on
    frozen, finished states, 0 episodes and 0 decisions, status done."""
    ppo = config()
    env, policy = make(ppo)
    env.auto_reset = False
    env.n_envs = ppo.n_envs + 5  # as a sweep has one env per trade of its pool: still the sweep message
    with pytest.raises(ExitcoreError, match="PPOTrainer needs a training-mode environment"):
        PPOTrainer(env, policy, ppo)


def test_a_checkpoint_changed_after_it_was_written_is_refused(tmp_path):
    """A single flipped bit in a weight resumed without a word into a different run (a trial
    measured weights off by 0.063); 16 flipped bytes loaded NaN weights and failed the run for good."""
    from exitcore.errors import CheckpointError

    ppo = config(total_timesteps=2 * UPDATE_STEPS)
    trainer, result, _ = run(ppo, tmp_path)
    path = result.checkpoint_path
    assert load_checkpoint(path)["global_step"] == 2 * UPDATE_STEPS  # intact: read as written
    data = bytearray(path.read_bytes())
    weight = next(iter(trainer.policy.parameters())).detach().flatten()[:4].numpy().tobytes()
    at = bytes(data).find(weight)
    assert at > 0, "the first weights' bytes are stored as they are"
    data[at + 2] ^= 0x40  # one bit of one float32
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: damaged: its contents no longer match the checksum"):
        load_checkpoint(path)


def test_a_checkpoint_ahead_of_the_runs_log_is_another_runs(tmp_path):
    """Another run's checkpoint with the same [ppo] table, 80 updates ahead, resumed as 'done'
    with those updates missing from the log."""
    from exitcore.errors import CheckpointError

    ppo = config(total_timesteps=4 * UPDATE_STEPS)
    _, other, _ = run(ppo, tmp_path / "other")

    def stop_at_1(update, metrics):
        if update == 1:
            raise KeyboardInterrupt

    env, policy = make(ppo)
    mine = PPOTrainer(env, policy, ppo, run_dir=tmp_path / "mine", on_update=stop_at_1, progress=False).train()
    assert mine.updates == 1
    (tmp_path / "mine" / CHECKPOINT_FILE).write_bytes(other.checkpoint_path.read_bytes())
    env, policy = make(ppo)
    with pytest.raises(CheckpointError, match=r"holds update 4, but the run's training log \(.*train_log.jsonl\) ends "
                                              r"at update 1, .*the checkpoint is another run's"):
        PPOTrainer.resume(tmp_path / "mine" / CHECKPOINT_FILE, env, policy, ppo, run_dir=tmp_path / "mine",
                          progress=False)
    # its own run resumes it (the log reaches it)
    env, policy = make(ppo)
    PPOTrainer.resume(other.checkpoint_path, env, policy, ppo, run_dir=tmp_path / "other", progress=False)


def test_a_log_that_fails_leaves_a_checkpoint_the_run_can_resume(tmp_path, monkeypatch):
    """The snapshot was taken before the log record was written: a full disk (or a second
    Ctrl-C) while logging update 2 wrote checkpoint 2 beside a log ending at 1, which resume
    then refused as another run's."""
    import errno

    from exitcore.ppo import logger as logger_module

    real_log = logger_module.TrainLogger.log

    def log(self, metrics):
        if metrics["update"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_log(self, metrics)

    ppo = config(total_timesteps=4 * UPDATE_STEPS)
    env, policy = make(ppo)
    monkeypatch.setattr(logger_module.TrainLogger, "log", log)
    with pytest.raises(OSError):
        PPOTrainer(env, policy, ppo, run_dir=tmp_path, progress=False).train()
    monkeypatch.setattr(logger_module.TrainLogger, "log", real_log)
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["update"] == 1
    env, policy = make(ppo)
    assert PPOTrainer.resume(tmp_path / CHECKPOINT_FILE, env, policy, ppo, run_dir=tmp_path,
                             progress=False).train().status == "done"
    assert _log_updates(tmp_path) == [1, 2, 3, 4]


class _ValueColumn(torch.nn.Module):
    """A policy whose value is a column [B, 1] instead of [B]."""

    def __init__(self, obs_dim, n_actions, dtype=torch.float32):
        super().__init__()
        self.linear = torch.nn.Linear(obs_dim, n_actions + 1, dtype=dtype)

    def forward(self, obs):
        out = self.linear(obs)
        return out[:, :-1], out[:, -1:]


def test_a_policy_given_directly_is_checked_before_the_first_rollout():
    """Trial AC 6: a policy passed to PPOTrainer (not built by build_policy) was never checked:
    a value [B, 1] failed mid-rollout as torch's `expand(...)`, a float64 network as 'mat1 and
    mat2 must have the same dtype'."""
    from exitcore.errors import PluginError

    ppo = config()
    env, _ = make(ppo)
    with pytest.raises(PluginError, match=r"the policy given to PPOTrainer \(_ValueColumn\): forward\(obs \[2, \d+\]\) "
                                          r"must return logits \[2, \d\] and value \[2\], got \[2, \d\] and \[2, 1\]"):
        PPOTrainer(env, _ValueColumn(env.obs_dim, env.n_actions), ppo, progress=False)
    with pytest.raises(PluginError, match=r"forward failed on a float32 batch of observations .*dtype"):
        PPOTrainer(env, _ValueColumn(env.obs_dim, env.n_actions, torch.float64), ppo, progress=False)


def test_resume_takes_a_run_directory_and_a_zero_length_is_refused(tmp_path):
    """Trial AC 11: `PPOTrainer.resume(run_dir, ...)` said "no such checkpoint file" for a
    directory that holds one; `total_timesteps=0` trained ppo.total_timesteps instead."""
    ppo = config(total_timesteps=2 * UPDATE_STEPS)
    run(ppo, run_dir=tmp_path)
    env, policy = make(ppo)
    trainer = PPOTrainer.resume(tmp_path, env, policy, ppo, run_dir=tmp_path, progress=False)
    assert trainer.global_step == 2 * UPDATE_STEPS
    env, policy = make(ppo)
    with pytest.raises(ExitcoreError, match="total_timesteps must be a positive number of steps, got 0"):
        PPOTrainer(env, policy, ppo, total_timesteps=0, progress=False)
