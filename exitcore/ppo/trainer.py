"""The masked PPO trainer: collect -> advantages -> update, with checkpoints and logs.

Usage (what the run orchestrator does)::

    seed_everything(ppo.seed)                      # before building env and policy
    env = ...                                      # a MaskedVecEnv on the training device
    policy = build_policy(component, ppo, env.obs_dim, env.n_actions)
    trainer = PPOTrainer(env, policy, ppo, run_dir=run_dir, on_update=hook)
    result = trainer.train()                       # TrainResult(status="done" | "interrupted", ...)

    # later, or after Ctrl-C / a crash: continue exactly where the checkpoint was written
    trainer = PPOTrainer.resume(run_dir / CHECKPOINT_FILE, env, policy, ppo, run_dir=run_dir)

Nothing here knows about trades: the trainer sees only the :class:`MaskedVecEnv` protocol.
Inside the rollout loop there is no host synchronisation; the trainer reads device values back
once per update (statistics, finiteness checks) and once per epoch (the KL early stop).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from exitcore.actions import ACTION_NAMES
from exitcore.errors import ExitcoreError, ExitcoreWarning, NotOwner
from exitcore.evaluation.rundir import TRAIN_LOG_FILE
from exitcore.ppo.buffer import Minibatch, RolloutBuffer
from exitcore.ppo.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from exitcore.ppo.gae import compute_gae
from exitcore.ppo.graphs import (
    GraphedMinibatchUpdate,
    GraphedPolicyStep,
    float_learning_rates,
    policy_step,
    set_learning_rate,
    tensor_learning_rates,
)
from exitcore.ppo.logger import TrainLogger, flatten_metrics, last_logged_update
from exitcore.ppo.loss import normalise_advantages, ppo_loss
from exitcore.ppo.rng import capture_rng_state, restore_rng_state
from exitcore.ppo.schedule import Schedules
from exitcore.ppo.stop import StopRequests

#: the checkpoint file inside a run directory (periodic, final, on Ctrl-C and on divergence)
CHECKPOINT_FILE = "checkpoint.pt"
#: Adam's epsilon (1e-5 rather than 1e-8, as in the PPO implementation-details study)
ADAM_EPS = 1e-5
#: an update's mean approx-KL (nats) above which the trainer warns that the policy ran away:
#: healthy PPO updates stay near target_kl (0.01-0.05); learning rates 1.0 and 1e6 gave 8 and 1e7
RUNAWAY_KL = 1.0

OnUpdate = Callable[[int, dict[str, Any]], None]
# quantities checked for NaN/Inf after every minibatch, in this order
_LOSS_QUANTITIES = ("loss_policy", "loss_value", "loss_entropy", "gradient norm")


class TrainingDiverged(ExitcoreError):
    """NaN or Inf appeared in observations, rewards, losses or gradients.

    ``update`` is the update in which it happened, ``quantity`` what was non-finite;
    ``checkpoint_path`` the last good checkpoint written before raising (``None`` without a
    run directory). Resuming from it replays the failing update, so change something first.
    """

    def __init__(self, update: int, quantity: str, detail: str = "", at: tuple[int, int] | None = None):
        self.update, self.quantity, self.detail = update, quantity, detail
        self.checkpoint_path: Path | None = None
        #: (rollout step, env) of the first non-finite reward, for the replay that names its term
        self.at = at
        super().__init__(f"training diverged in update {update}: non-finite {quantity}" + (f" ({detail})" if detail else ""))

    def add_cause(self, words: str) -> None:
        """Append what a later look found (the reward term behind a non-finite reward)."""
        self.args = (f"{self.args[0]}; {words}",)


@attrs.frozen
class TrainResult:
    """How :meth:`PPOTrainer.train` ended.

    ``status`` is ``"done"`` or ``"interrupted"`` (Ctrl-C); ``global_step`` and ``updates`` count
    what the checkpoint at ``checkpoint_path`` holds (``None`` without a run directory);
    ``last_metrics`` is the last update's log record (empty if none finished).
    """

    status: str
    global_step: int
    updates: int
    checkpoint_path: Path | None
    last_metrics: dict[str, Any]
    #: why training ended before ``total_timesteps`` (:meth:`PPOTrainer.stop_early`), else None
    #: (also when the stop was asked for with the last update: the run trained to its end)
    stopped_early: str | None = None


class PPOTrainer:
    """Masked PPO on a :class:`~exitcore.env.protocol.MaskedVecEnv` (design.md §5).

    ``env`` fixes the training device (its ``device``); ``policy`` is moved there. ``ppo`` is a
    :class:`~exitcore.config.PPOConfig`. ``run_dir`` receives ``train_log.jsonl``, TensorBoard
    events (when installed) and ``checkpoint.pt``; ``None`` keeps everything in memory.
    ``on_update(update, metrics)`` is called after every update (update numbers start at 1); an
    :class:`ExitcoreError` raised there stops training after a checkpoint and propagates.
    ``progress``: progress bar on stderr (``None``: only on a TTY). ``total_timesteps``
    overrides ``ppo.total_timesteps`` (None: the config's; 0 or less is refused); training runs
    ``ceil(total / (n_envs * n_steps))`` updates. A ``policy`` not built by ``build_policy`` is
    checked as that checks one (:func:`~exitcore.ppo.policy.check_policy_contract`).
    """

    def __init__(self, env: Any, policy: nn.Module, ppo: Any, run_dir: Path | None = None,
                 on_update: OnUpdate | None = None, progress: bool | None = None,
                 total_timesteps: int | None = None, before_write: Callable[[], None] | None = None):
        self.env, self.ppo, self.on_update, self.progress = env, ppo, on_update, progress
        #: called before every checkpoint write; raising :class:`~exitcore.errors.NotOwner` there
        #: (the run is another process's now) stops training without writing
        self.before_write = before_write
        self.device = torch.device(env.device)
        if ppo.device != "auto" and not same_device(torch.device(ppo.device), self.device):
            raise ExitcoreError(f"ppo.device is {ppo.device!r} but the environment lives on {self.device}")
        if getattr(env, "auto_reset", True) is False:  # first: a sweep's n_envs is its pool's size
            # a sweep (evaluation) env stops when its trades are done: training on it would run
            # gradient updates on frozen, finished states without a single decision
            raise ExitcoreError("PPOTrainer needs a training-mode environment: make_env(pool, n_envs=..., "
                                "auto_reset=True) (the default), not a sweep made with auto_reset=False")
        if env.n_envs != ppo.n_envs:
            raise ExitcoreError(f"the environment has {env.n_envs} envs but ppo.n_envs is {ppo.n_envs}")
        self.policy = policy.to(self.device)
        # a policy given directly (a script's own module, not build_policy's, which checked it):
        # its contract, before the first rollout meets it; in eval mode, so that the dummy batch
        # leaves no trace in a BatchNorm's running statistics
        from exitcore.ppo.policy import check_policy_contract

        training = self.policy.training
        self.policy.eval()
        try:
            check_policy_contract(self.policy, env.obs_dim, env.n_actions,
                                  f"the policy given to PPOTrainer ({type(policy).__name__})")
        finally:
            self.policy.train(training)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if total_timesteps is not None and (isinstance(total_timesteps, bool) or total_timesteps < 1):
            raise ExitcoreError(f"total_timesteps must be a positive number of steps, got {total_timesteps!r} "
                                "(None: ppo.total_timesteps)")
        self.total_timesteps = int(total_timesteps if total_timesteps is not None else ppo.total_timesteps)
        self.steps_per_update = ppo.n_envs * ppo.n_steps
        self.n_updates = -(-self.total_timesteps // self.steps_per_update)
        # Adam's step is captured with the update where graphs are on (capturable: its step
        # count lives on the device); elsewhere it stays the plain fused kernel.
        self._capturable = ppo.captures_graphs(self.device.type)
        self.optimizer = make_adam(self.policy.parameters(), ppo.learning_rate, capturable=self._capturable)
        self.schedules = Schedules(ppo, self.total_timesteps)
        # The trainer's own generator drives action sampling and minibatch shuffles, so other
        # code drawing from torch's global generator cannot change a run.
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(ppo.seed)
        # ppo.precision == "bf16": the network's matmuls run in bfloat16 (autocast); the
        # distribution, the losses, the optimiser and the stored rollout stay float32.
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=ppo.precision == "bf16")
        self.micro_batch_size = ppo.micro_batch_rows(self.device.type)
        # CUDA graphs of the policy step and the minibatch update (exitcore/ppo/graphs.py), built
        # on first use ("on": in use, or to be captured at first use); a failed capture turns
        # that graph off for the run, with a warning.
        self.graphs: dict[str, str] = dict.fromkeys(("policy_step", "update"), "on" if self._capturable else "off")
        self._policy_graph: GraphedPolicyStep | None = None
        self._update_graph: GraphedMinibatchUpdate | None = None
        # ... and the environment's compiled step (exitcore/env/step_graph.py), which does not
        # depend on the policy's precision or micro-batches: wherever the env offers it on CUDA.
        use_env_graph = getattr(env, "use_cuda_graph", None)
        env_graph = use_env_graph is not None and use_env_graph(ppo.replays_env_graph(self.device.type))
        self.graphs["env_step"] = "on" if env_graph else "off"
        self.buffer = RolloutBuffer(ppo.n_steps, ppo.n_envs, env.obs_dim, env.n_actions, self.device)
        self.action_names = tuple(getattr(env, "action_names", None) or _default_action_names(env.n_actions))
        self.global_step = 0
        self.update = 0  # updates completed
        self.next_obs: Tensor | None = None
        self.next_mask: Tensor | None = None
        self._resumed = False
        self._warned_mask_empty = False  # see _warn_mask_empty
        self._warned_runaway_kl = False  # see _warn_runaway_kl
        self._stop = StopRequests()
        self._early_stop: str | None = None  # see stop_early

    # ------------------------------------------------------------------ the loop

    def train(self) -> TrainResult:
        """Train until ``n_updates`` updates are done; returns how it ended.

        Ctrl-C (or SIGTERM) returns ``status="interrupted"`` after writing the state of the last
        *complete* update (the interrupted update is replayed exactly on resume). The signal is
        honoured at the next rollout step or minibatch (:class:`~exitcore.ppo.stop.StopRequests`);
        a second one stops at once. Any exception
        (:class:`TrainingDiverged`, an :class:`ExitcoreError` from ``on_update`` or the
        environment, a bug) propagates after that checkpoint is written, with a note saying
        where, and the trainer is rolled back to it.
        """
        if self.next_obs is None:
            self.next_obs, self.next_mask = self.env.reset(seed=self.ppo.seed)
        # Log records after the trainer's update are stale (a resumed run replays them; a run
        # killed before its first checkpoint starts again from update 0): they are dropped.
        logger = TrainLogger(self.run_dir, self.n_updates * self.steps_per_update, self.global_step,
                             progress=self.progress, resume_update=self.update)
        good = self.snapshot()  # the last consistent state: what every checkpoint writes
        saved_update = self.update if self._resumed else -1
        last_metrics: dict[str, Any] = {}
        with self._stop:  # Ctrl-C and SIGTERM set a flag, honoured between steps (exitcore/ppo/stop.py)
            try:
                while self.update < self.n_updates and self._early_stop is None:
                    metrics = self._train_one_update(self.update + 1)
                    self.update += 1
                    # logged before it becomes the state a checkpoint writes: a kill between the two
                    # loses no record, and a log that fails (a full disk, a second Ctrl-C) leaves the
                    # previous update the last good one, so no checkpoint is ever ahead of the log
                    logger.log(metrics)
                    good = self.snapshot()
                    if self.update % self.ppo.checkpoint_every == 0:
                        self._write(good)
                        saved_update = self.update
                    last_metrics = metrics
                    if self.on_update is not None:
                        self.on_update(self.update, metrics)
                    if self._early_stop is not None:
                        break
                path = self._write(good) if saved_update != self.update else self._checkpoint_path()
                self._stop.check()  # asked for during the last update's bookkeeping: stop before evaluation
                return TrainResult("done", self.global_step, self.update, path, last_metrics, self._stopped_early())
            except KeyboardInterrupt:
                path = self._rollback_and_write(good)  # NotOwner from before_write: nothing written
                # a stop a plugin asked for in the update just written holds for its resume too
                return TrainResult("interrupted", self.global_step, self.update, path, last_metrics, self._stopped_early())
            except NotOwner:  # another process owns the run directory now: write nothing into it
                raise
            except Exception as exc:  # TrainingDiverged, a plugin's ExitcoreError, or a bug
                # Whatever stopped the run, hours of training must not be lost with it.
                try:
                    path = self._rollback_and_write(good)
                except NotOwner:
                    raise
                except Exception as inner:  # noqa: BLE001 - reported on the original error
                    exc.add_note(f"the last good state could not be checkpointed: {type(inner).__name__}: {inner}")
                    raise exc from None
                if isinstance(exc, TrainingDiverged):
                    exc.checkpoint_path = path
                    if exc.at is not None:  # the last good state is written: replay the rollout to name the term
                        cause = self._replay_rewards(*exc.at)
                        self.load_state_dict(_clone(good))
                        if cause:
                            exc.add_cause(cause)
                where = f"written to {path}" if path else "kept in memory (no run directory)"
                exc.add_note(f"state of the last complete update ({self.update}) {where}")
                raise
            finally:
                logger.close()

    def _stopped_early(self) -> str | None:
        """The reason a stop was asked for, if it ended training before its last update (one
        asked for with the last update ends nothing: the run trained to its end)."""
        return self._early_stop if self.update < self.n_updates else None

    def stop_early(self, reason: str) -> None:
        """End training after the update in progress (call it from ``on_update``; called before
        :meth:`train`, training ends at once, as for a resumed run that a plugin had ended): the
        run ends ``done`` with the steps trained so far, checkpointed as at its normal end, and
        :class:`TrainResult` carries ``reason`` in ``stopped_early``."""
        self._early_stop = str(reason)

    def _train_one_update(self, update: int) -> dict[str, Any]:
        ppo = self.ppo
        hyper = self.schedules.values()
        set_learning_rate(self.optimizer, hyper["learning_rate"])

        t_start = time.perf_counter()
        last_value = self._collect()
        env_stats = self.env.episode_stats()  # the rollout's one host synchronisation
        self._check_rollout(update)
        self._warn_mask_empty(update, env_stats)
        t_rollout = time.perf_counter()

        advantages, returns = compute_gae(self.buffer.rewards, self.buffer.values, self.buffer.dones,
                                          last_value, ppo.gamma, ppo.gae_lambda)
        self.buffer.advantages.copy_(advantages)
        self.buffer.returns.copy_(returns)
        learn = self._learn(update, hyper["entropy_coef"])
        self._warn_runaway_kl(update, learn, hyper["learning_rate"])
        _synchronize(self.device)
        t_update = time.perf_counter()

        self.global_step += self.steps_per_update
        self.schedules.advance(self.steps_per_update)
        return self._metrics(update, env_stats, learn, hyper, t_rollout - t_start, t_update - t_rollout)

    @torch.no_grad()
    def _collect(self) -> Tensor:
        """Fill the buffer with ``n_steps`` steps of every env; returns the bootstrap value [N]."""
        buf, env, policy, gen = self.buffer, self.env, self.policy, self.generator
        obs, mask = self.next_obs, self.next_mask
        noise_shape = (buf.n_envs, self.env.n_actions)
        step = self._policy_step_graph()
        for t in range(buf.n_steps):
            self._stop.check()
            with torch.inference_mode():
                # Gumbel noise for the sampling, drawn here so a CUDA graph can replay the rest
                uniform = torch.rand(noise_shape, generator=gen, device=self.device, dtype=torch.float32)
                if step is not None:
                    action, logprob, value = step(obs, mask, uniform)
                else:
                    action, logprob, value = policy_step(policy, obs, mask, uniform, self.autocast)
                buf.obs[t] = obs
                buf.masks[t] = mask
                buf.actions[t] = action
                buf.logprobs[t] = logprob
                buf.values[t] = value
            # The env steps outside inference mode so that its own state tensors stay normal tensors.
            obs, mask, reward, done = env.step(buf.actions[t])
            buf.rewards[t] = reward
            buf.dones[t] = done
        self.next_obs, self.next_mask = obs, mask
        if self.graphs["env_step"] == "on" and not env.cuda_graph_on:
            self.graphs["env_step"] = "failed: see the environment's warning"
        with torch.inference_mode(), self.autocast:
            return policy(obs)[1].float()

    def _policy_step_graph(self) -> GraphedPolicyStep | None:
        """The captured policy step, capturing it on first use (None: graphs are off)."""
        if self.graphs["policy_step"] != "on" or self._policy_graph is not None:
            return self._policy_graph
        try:
            self._policy_graph = GraphedPolicyStep(self.policy, self.buffer.n_envs, self.env.obs_dim,
                                                   self.env.n_actions, self.device, self.autocast)
        except Exception as exc:  # noqa: BLE001 - the eager path computes the same
            self._graph_failed("policy_step", exc)
        return self._policy_graph

    def _graph_failed(self, name: str, exc: Exception) -> None:
        self.graphs[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
        warnings.warn(f"CUDA graph of the {name.replace('_', ' ')} could not be captured ({type(exc).__name__}: "
                      f"{exc}); training goes on without it, slower (ppo.compile = \"off\" turns graphs off)",
                      ExitcoreWarning, stacklevel=2)

    def _check_rollout(self, update: int) -> None:
        """One read-back: are observations (the bootstrap one included), rewards and values
        finite, does every mask allow an action?"""
        buf = self.buffer
        bad_obs, bad_next, bad_rew, bad_val, empty = torch.stack([
            ~torch.isfinite(buf.obs).all(),
            ~torch.isfinite(self.next_obs).all(),
            ~torch.isfinite(buf.rewards).all(),
            ~(torch.isfinite(buf.values).all() & torch.isfinite(buf.logprobs).all()),
            ~buf.masks.any(dim=-1).all(),
        ]).tolist()
        if bad_obs:
            t, n = _first_index(~torch.isfinite(buf.obs).all(dim=-1))
            columns = (~torch.isfinite(buf.obs[t, n])).nonzero().flatten().tolist()
            names = getattr(self.env, "feature_names", None) or [f"column {c}" for c in range(self.env.obs_dim)]
            raise TrainingDiverged(update, "observations", f"first at rollout step {t}, env {n}, in "
                                   + ", ".join(repr(names[c]) for c in columns))
        if bad_next:  # the last step's observation: it bootstraps this update's values and starts the next
            n = int(torch.nonzero(~torch.isfinite(self.next_obs).all(dim=-1))[0, 0])
            columns = (~torch.isfinite(self.next_obs[n])).nonzero().flatten().tolist()
            names = getattr(self.env, "feature_names", None) or [f"column {c}" for c in range(self.env.obs_dim)]
            raise TrainingDiverged(update, "observations", f"first after the last rollout step (the bootstrap "
                                   f"observation), env {n}, in " + ", ".join(repr(names[c]) for c in columns))
        if bad_rew:
            t, n = _first_index(~torch.isfinite(buf.rewards))
            components = getattr(self.env, "components", None)
            terms = f"; reward terms: {', '.join(repr(r.name) for r in components.rewards)}" if components is not None else ""
            raise TrainingDiverged(update, "rewards", f"first at rollout step {t}, env {n}{terms}", at=(t, n))
        if bad_val:
            raise TrainingDiverged(update, "policy outputs (values or log-probs) in the rollout")
        if empty:
            t, n = _first_index(~buf.masks.any(dim=-1))
            raise ExitcoreError(f"update {update}: the action mask of env {n} at rollout step {t} allows no action")

    def _replay_rewards(self, t: int, n: int) -> str:
        """Which reward term made the reward of env ``n`` at rollout step ``t`` non-finite: the
        rollout is replayed from the last good state (just restored) with its recorded actions,
        and each term is computed apart at that step (the step only keeps their weighted sum).
        ``""`` where the environment cannot tell its terms apart or the replay fails."""
        terms_of = getattr(self.env, "reward_terms", None)
        if terms_of is None:
            return ""
        actions = self.buffer.actions[: t + 1].clone()
        try:
            for k in range(t):
                self.env.step(actions[k])
            values = [(term, float(r[n])) for term, r in terms_of(actions[t])]
        except Exception:  # noqa: BLE001 - the divergence itself is reported all the same
            return ""
        bad = [f"reward term {term.label()} returned {value}" for term, value in values if not math.isfinite(value)]
        if bad:
            return f"{' and '.join(bad)} there (the rollout replayed from the last good state)"
        total = sum(term.weight * value for term, value in values)
        each = ", ".join(f"{term.name!r} {value + 0.0:.6g} x {term.weight:g}" for term, value in values)  # no -0
        if not math.isfinite(float(torch.tensor(total, dtype=torch.float32))):
            return (f"replayed from the last good state, every reward term is finite there ({each}), but their "
                    f"weighted sum {total:.6g} is not in float32, the reward's type (beyond "
                    f"{torch.finfo(torch.float32).max:.3g})")
        return f"replayed from the last good state, every reward term is finite there ({each}): not reproduced"

    def _warn_mask_empty(self, update: int, env_stats: dict[str, Any]) -> None:
        """Warn once per process when the masks left no action at some decisions (the env then
        allows HOLD alone; the first step's per-mask check only sees the first decisions),
        naming the masks that alone allowed nothing there (``mask_empty_by``), else every mask:
        then only their combination did."""
        empty = int(env_stats.get("mask_empty", 0))
        if not empty or self._warned_mask_empty:
            return
        self._warned_mask_empty = True
        warnings.warn(f"update {update}: {mask_empty_words(empty, env_stats)}", ExitcoreWarning, stacklevel=2)

    def _warn_runaway_kl(self, update: int, learn: dict[str, Any], learning_rate: float) -> None:
        """Warn once per trainer when an update moved the policy far beyond PPO's trust region
        (mean approx-KL above :data:`RUNAWAY_KL` nats): the losses stay finite, so nothing stops
        the run, but such a policy has usually collapsed (with learning_rate 1e6 the entropy was
        0 from the third update on, and the run was reported like any other)."""
        kl = learn["approx_kl"]
        if self._warned_runaway_kl or not kl > RUNAWAY_KL:
            return
        self._warned_runaway_kl = True
        warnings.warn(f"update {update}: approx_kl {kl:.3g} nats, far beyond PPO's trust region (target_kl "
                      f"{self.ppo.target_kl:g}); the learning rate ({learning_rate:g}) is probably too high, and the "
                      f"policy may have collapsed (entropy {learn['entropy']:.3g}): check train_log.jsonl",
                      ExitcoreWarning, stacklevel=2)

    def _learn(self, update: int, ent_coef: float) -> dict[str, Any]:
        """``n_epochs`` passes over the rollout in shuffled minibatches, with the KL early stop."""
        ppo, buf = self.ppo, self.buffer
        n_minibatches = buf.size // ppo.batch_size  # a remainder is left out of that epoch's pass
        sums = torch.zeros(6, device=self.device)  # loss_policy, loss_value, loss_entropy, entropy, kl, clipfrac
        first_bad = torch.zeros(len(_LOSS_QUANTITIES), dtype=torch.bool, device=self.device)
        epochs = minibatches = 0
        for epoch in range(ppo.n_epochs):
            perm = torch.randperm(buf.size, generator=self.generator, device=self.device)
            epoch_kl = torch.zeros((), device=self.device)
            for i in range(n_minibatches):
                self._stop.check()
                stats, grad_norm = self._minibatch_update(perm[i * ppo.batch_size:(i + 1) * ppo.batch_size], ent_coef)
                # Remember which quantities were non-finite in the first bad minibatch (no sync).
                terms = torch.cat([stats[:3], grad_norm.reshape(1)])
                first_bad = torch.where(first_bad.any(), first_bad, ~torch.isfinite(terms))
                sums += stats
                epoch_kl += stats[4]
            epochs += 1
            minibatches += n_minibatches
            # One read-back per epoch: divergence check and the KL early stop on the epoch's mean KL.
            kl, *bad = torch.cat([(epoch_kl / max(n_minibatches, 1)).reshape(1), first_bad.float()]).tolist()
            if any(bad):
                names = ", ".join(q for q, b in zip(_LOSS_QUANTITIES, bad) if b)
                raise TrainingDiverged(update, names, f"epoch {epoch + 1}")
            if ppo.target_kl > 0 and kl > ppo.target_kl:
                break
        means = (sums / max(minibatches, 1)).tolist()
        return dict(zip(("loss_policy", "loss_value", "loss_entropy", "entropy", "approx_kl", "clipfrac"), means),
                    epochs=epochs, minibatches=minibatches)

    def _minibatch_update(self, index: Tensor, ent_coef: float) -> tuple[Tensor, Tensor]:
        """Update the policy on the rollout samples at ``index``; returns ``(stats [6], gradient
        norm)`` (see :meth:`_accumulate_gradient`), replayed from a CUDA graph where one is on."""
        if self.graphs["update"] == "on":
            if self._update_graph is None:
                tensor_learning_rates(self.optimizer, self.device)
                self._update_graph = GraphedMinibatchUpdate(self._update_step, self.ppo.batch_size, self.device)
            try:
                return self._update_graph(index, ent_coef)
            except Exception as exc:  # noqa: BLE001 - a failed capture ran nothing: go on eagerly
                if self._update_graph.graph is not None:
                    raise  # a replay failed: not a capture problem
                self._update_graph = None
                float_learning_rates(self.optimizer)
                set_learning_rate(self.optimizer, self.schedules.values()["learning_rate"])  # not the float32 copy
                self._graph_failed("update", exc)
        return self._update_step(index, ent_coef)

    def _update_step(self, index: Tensor, ent_coef: float | Tensor) -> tuple[Tensor, Tensor]:
        """Gather the minibatch at ``index``, accumulate its gradient, clip, take the Adam step
        (no host synchronisation: a CUDA graph captures exactly this)."""
        stats = self._accumulate_gradient(self.buffer.minibatch(index), ent_coef)
        grad_norm = nn.utils.clip_grad_norm_(self.policy.parameters(), self.ppo.max_grad_norm)
        self.optimizer.step()
        return stats, grad_norm

    def _accumulate_gradient(self, mb: Minibatch, ent_coef: float | Tensor) -> Tensor:
        """Leave the gradient of the PPO loss on minibatch ``mb`` in the policy's ``.grad``.

        The minibatch is passed through the network in micro-batches of ``micro_batch_size``
        rows whose gradients add up (each loss weighted by its share of the rows), which is the
        gradient of the whole minibatch's loss up to float rounding; advantages are normalised
        over the whole minibatch first. Returns the minibatch means [6]: loss_policy,
        loss_value, loss_entropy, entropy, approx_kl, clipfrac.
        """
        ppo, policy = self.ppo, self.policy
        size, micro = mb.obs.shape[0], self.micro_batch_size
        split = size > micro
        if split and ppo.norm_adv:
            mb = mb._replace(advantages=normalise_advantages(mb.advantages))
        self.optimizer.zero_grad(set_to_none=True)
        stats = torch.zeros(6, device=self.device)
        for start in range(0, size, micro):
            part = Minibatch(*(x[start:start + micro] for x in mb)) if split else mb
            weight = part.obs.shape[0] / size
            with self.autocast:
                out = ppo_loss(policy, part, clip_coef=ppo.clip_coef, clip_vf=ppo.clip_vf, vf_coef=ppo.vf_coef,
                               ent_coef=ent_coef, norm_adv=ppo.norm_adv and not split)
            (out.loss * weight if split else out.loss).backward()
            stats += weight * torch.stack([out.loss_policy.detach(), out.loss_value.detach(), out.loss_entropy.detach(),
                                           out.entropy, out.approx_kl, out.clipfrac])
        return stats

    def _metrics(self, update: int, env_stats: dict[str, Any], learn: dict[str, Any], hyper: dict[str, float],
                 rollout_s: float, update_s: float) -> dict[str, Any]:
        buf = self.buffer
        n_actions = len(self.action_names)
        values, returns = buf.values.flatten(), buf.returns.flatten()
        var_returns = returns.var()
        explained_var = 1 - (returns - values).var() / var_returns
        device_stats = torch.cat([
            torch.bincount(buf.actions.flatten(), minlength=n_actions).float() / buf.size,
            1 - buf.masks.float().mean(dim=(0, 1)),
            explained_var.reshape(1),
        ]).tolist()
        sampled_frac, masked_frac, (ev,) = device_stats[:n_actions], device_stats[n_actions:2 * n_actions], device_stats[2 * n_actions:]
        steps = self.steps_per_update
        metrics: dict[str, Any] = {"update": update, "global_step": self.global_step, "steps": steps}
        metrics.update(flatten_metrics(env_stats))
        metrics.update({f"sampled_frac/{name}": v for name, v in zip(self.action_names, sampled_frac)})
        metrics.update({f"masked_frac/{name}": v for name, v in zip(self.action_names, masked_frac)})
        metrics.update(learn)
        metrics.update(
            explained_variance=ev,
            entropy_coef=hyper["entropy_coef"],
            learning_rate=hyper["learning_rate"],
            time_rollout=rollout_s,
            time_update=update_s,
            sps=steps / (rollout_s + update_s),
            sps_rollout=steps / rollout_s,
            sps_update=steps / update_s,
        )
        return metrics

    # ------------------------------------------------------------------ state, checkpoints, resume

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (live references; see :meth:`snapshot`)."""
        from exitcore.config import unstructure

        return {
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "global_step": self.global_step,
            "update": self.update,
            "schedules": self.schedules.state_dict(),
            "rng": capture_rng_state(),
            "generator": self.generator.get_state(),
            "env": self.env.state_dict(),
            "next_obs": self.next_obs,
            "next_mask": self.next_mask,
            "ppo": unstructure(self.ppo),
            "obs_dim": self.env.obs_dim,
            "n_actions": self.env.n_actions,
            "n_envs": self.env.n_envs,
            "device": self.device.type,
        }

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of :meth:`state_dict` that later training cannot change."""
        return _clone(self.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (from a checkpoint or a snapshot)."""
        for key, mine in (("obs_dim", self.env.obs_dim), ("n_actions", self.env.n_actions), ("n_envs", self.env.n_envs)):
            if state[key] != mine:
                raise CheckpointError(f"the checkpoint has {key} = {state[key]} but this run has {mine}")
        if state["device"] != self.device.type:
            # The sampling generator's state is device-specific; the weights alone can still be
            # loaded anywhere with load_checkpoint(path)["model"].
            raise CheckpointError(f"the checkpoint was written on {state['device']}; resume it on {state['device']} "
                                  f"(this run is on {self.device.type})")
        try:
            self.policy.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"the checkpoint's model does not fit this policy: {exc}") from exc
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # loading copied the writer's setting
            group["capturable"] = self._capturable
        float_learning_rates(self.optimizer)  # a captured update's tensor lr, saved as such
        # Graphs read the tensors they captured; loading replaced Adam's state: capture anew.
        self._policy_graph = self._update_graph = None
        self.global_step = int(state["global_step"])
        self.update = int(state["update"])
        self.schedules.load_state_dict(state["schedules"])
        restore_rng_state(state["rng"])
        self.generator.set_state(state["generator"])
        try:
            self.env.load_state_dict(state["env"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint's environment state cannot be restored: {exc}") from exc
        self.next_obs = state["next_obs"].to(self.device).clone()
        self.next_mask = state["next_mask"].to(self.device).clone()

    @classmethod
    def resume(cls, checkpoint_path: str | Path, env: Any, policy: nn.Module, ppo: Any, **kwargs: Any) -> PPOTrainer:
        """A trainer that continues the run saved at ``checkpoint_path`` exactly (a run
        directory stands for its ``checkpoint.pt``).

        Takes the same arguments as the constructor. On the same device with the same config it
        reaches the same parameters as an uninterrupted run (bit-exact on CPU); the environment
        is restored through its ``load_state_dict``.
        """
        if Path(checkpoint_path).is_dir():  # the run directory given (trial AC: "no such checkpoint file")
            checkpoint_path = Path(checkpoint_path) / CHECKPOINT_FILE
        state = load_checkpoint(checkpoint_path)
        if kwargs.get("run_dir") is not None:
            check_log_reaches(checkpoint_path, int(state["update"]), Path(kwargs["run_dir"]))
        trainer = cls(env, policy, ppo, **kwargs)
        try:
            trainer.load_state_dict(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{checkpoint_path}: {exc}") from exc
        trainer._resumed = True
        return trainer

    def _checkpoint_path(self) -> Path | None:
        return self.run_dir / CHECKPOINT_FILE if self.run_dir is not None else None

    def _write(self, state: dict[str, Any]) -> Path | None:
        path = self._checkpoint_path()
        if path is not None and self.before_write is not None:
            self.before_write()
        return save_checkpoint(path, state) if path is not None else None

    def _rollback_and_write(self, good: dict[str, Any]) -> Path | None:
        """Return to the last consistent state and write it (a partial update is dropped)."""
        self.load_state_dict(_clone(good))
        return self._write(good)


def check_log_reaches(checkpoint_path: str | Path, update: int, run_dir: Path) -> None:
    """Refuse a checkpoint of update ``update`` when ``run_dir``'s training log ends before it:
    each update's record is on disk before its checkpoint is written, so such a checkpoint is
    another run's (one with the same ``[ppo]`` table: 80 updates ahead, it resumed as 'done'
    with those updates missing from the log). No log at all is not a contradiction."""
    last = last_logged_update(run_dir)
    if last is not None and last < update:
        raise CheckpointError(
            f"{checkpoint_path}: holds update {update}, but the run's training log ({run_dir / TRAIN_LOG_FILE}) ends at "
            f"update {last}, and every update is logged before its checkpoint is written: the checkpoint is another "
            "run's, or the log lost its last records. Put the run's own checkpoint back, or start a new run")


def make_adam(parameters: Any, lr: float, capturable: bool = False) -> torch.optim.Adam:
    """Adam with the fused kernel (one kernel per parameter instead of a Python loop of small
    ops: an order of magnitude less optimiser time per minibatch on CPU), else the foreach one.
    ``capturable``: its step can be captured in a CUDA graph (CUDA only)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, eps=ADAM_EPS, fused=True, capturable=capturable)
    except (RuntimeError, TypeError):  # a device or torch version without the fused kernel
        return torch.optim.Adam(parameters, lr=lr, eps=ADAM_EPS, foreach=True, capturable=capturable)


def _clone(obj: Any) -> Any:
    """Deep copy of nested dicts/lists/tuples with every tensor cloned."""
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_clone(v) for v in obj)
    return obj


def same_device(wanted: torch.device, actual: torch.device) -> bool:
    """Whether ``wanted`` (``ppo.device``: ``cpu``, ``cuda``, ``cuda:N``) names ``actual``; a
    device without an index matches any index of its type."""
    return wanted.type == actual.type and (wanted.index is None or actual.index is None or wanted.index == actual.index)


def _first_index(flags: Tensor) -> tuple[int, int]:
    t, n = flags.nonzero()[0].tolist()
    return t, n


def _default_action_names(n_actions: int) -> tuple[str, ...]:
    return ACTION_NAMES if n_actions == len(ACTION_NAMES) else tuple(str(i) for i in range(n_actions))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mask_empty_words(empty: int, env_stats: dict[str, Any]) -> str:
    """Which masks left no action at ``empty`` decisions of an update, from ``env_stats``
    (``mask_empty_by``: per mask, the decisions it alone allowed nothing at): only the masks
    that did so alone are named, not the masks they are combined with; none alone, the masks
    together. An env without per-mask counts gets the masks unnamed."""
    decisions = env_stats.get("decisions", "?")
    hold = "where only HOLD could be taken"
    by = env_stats.get("mask_empty_by") or {}
    alone = {name: int(n) for name, n in by.items() if n}
    if len(alone) == 1:
        ((name, n),) = alone.items()
        together = f" (the masks together at {empty})" if n != empty else ""
        return (f"the action mask {name!r} allowed no action at {n} of {decisions} decisions{together}, {hold}: "
                f"it returns all-false rows for some states (mask_empty_by/{name} in train_log.jsonl counts them "
                "per update)")
    if alone:
        each = ", ".join(f"{name!r} alone at {n}" for name, n in alone.items())
        return (f"the action masks {_names(alone)} allowed no action at {empty} of {decisions} decisions ({each}), "
                f"{hold}: they return all-false rows for some states (mask_empty_by/<mask> in train_log.jsonl counts "
                "them per update)")
    if by:
        return (f"the action masks {_names(by)} together allowed no action at {empty} of {decisions} decisions, "
                f"{hold}: each allows some action there, but no action is allowed by all of them (mask_empty in "
                "train_log.jsonl counts them per update)")
    return (f"the action masks allowed no action at {empty} of {decisions} decisions, {hold}: a mask returns "
            "all-false rows for some states (mask_empty in train_log.jsonl counts them per update)")


def _names(names: Any) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
