"""``GymVecExitEnv``: a :class:`~exitcore.env.vec_env.VecExitEnv` as a ``gymnasium.vector.VectorEnv``.

For training with other RL libraries (docs/gym.md). gymnasium is an optional extra
(``pip install 'exitcore[gym]'``); importing this module without it works, constructing the
adapter raises :class:`~exitcore.errors.ExitcoreError` saying what to install.

Semantics (what a gymnasium user needs to know):

* **Spaces.** ``single_observation_space`` is ``Box(-inf, inf, (obs_dim,), float32)`` (the
  experiment's features, concatenated); ``single_action_space`` is ``Discrete(5)`` with the ids
  of :class:`exitcore.actions.Action`. The batched spaces are gymnasium's ``batch_space`` of
  those (``Box`` ``[N, obs_dim]`` and ``MultiDiscrete([5] * N)``).
* **Action masks.** :meth:`GymVecExitEnv.action_masks` returns the current mask as a numpy bool
  array ``[N, 5]`` (the convention of sb3-contrib's MaskablePPO). ``HOLD`` is always allowed.
  The adapter enforces the mask (``enforce_masks=True``, the default): a masked action sent
  anyway (an algorithm that ignores ``action_masks()``) is executed as ``HOLD``, counted per
  action in :attr:`GymVecExitEnv.refused`, and warned about once, so an agent cannot take the
  exits v4's mask forbids (the look-ahead exploit of v3 the mask closes) behind the mask's
  back. ``enforce_masks=False`` executes it as ``VecExitEnv`` does (which trusts its caller:
  exitcore's PPO samples from masked logits only), where it may still be blocked by a guard.
  Every step's action ids and shape are checked on the host (an environment on a GPU checks its
  first steps only): a bad id is a ``ValueError`` naming it and its env.
* **Termination.** Every end of a trade (agent exit, stop, target, the ``max_bars`` time stop,
  the end of the data, a data hole where ``env.data_holes = "close"``) is ``terminated``: the time stop is part of the trade's
  definition (design.md §3), and the position state the agent sees carries the bars held, so
  the MDP is not cut short by an outside time limit. ``truncations`` are always all False.
* **Autoreset.** ``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``, which is what
  ``VecExitEnv`` does: where ``terminations[i]``, the returned ``obs[i]`` (and the mask) already
  belong to the next trade, and ``infos["final_obs"][i]`` holds the observation of the state
  the trade ended in (an object array, ``None`` elsewhere, with the ``"_final_obs"`` mask), as
  gymnasium's own vector environments do in this mode. Sending a reset is never needed.
* **Infos** (``episode_info=True``, the default): on the steps where trades end,
  ``infos["episode"] = {"r": return, "l": decisions}`` with mask ``"_episode"`` (the format of
  gymnasium's ``RecordEpisodeStatistics``), and ``infos["final_info"]`` with ``exit_reason``
  (an :class:`exitcore.timeline.ExitReason` id), ``bars_held`` and ``realized`` (net PnL as a
  fraction of the entry price). ``episode_info=False`` skips their cost and returns only
  ``final_obs`` (the autoreset contract); use it under gymnasium's ``RecordEpisodeStatistics``,
  which writes ``infos["episode"]`` itself (with its time ``"t"``) and refuses a key already there.
  The environment's own statistics stay available through ``env.episode_stats()``.
* **Seeding.** ``reset(seed=s)`` reseeds the trade sampler, so equal seeds give equal runs.
* **Closing.** After ``close()`` (gymnasium's), ``step``, ``reset`` and ``action_masks`` raise.

Only training-mode environments (``auto_reset=True``) can be wrapped; sweep mode (each env
plays one given trade once, then freezes) has no gymnasium equivalent.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from exitcore.actions import ACTION_NAMES, HOLD, N_ACTIONS
from exitcore.env.components import check_actions
from exitcore.env.vec_env import VecExitEnv
from exitcore.errors import ExitcoreError, ExitcoreWarning

try:  # the optional extra
    import gymnasium
    from gymnasium.vector import AutoresetMode, VectorEnv
    from gymnasium.utils import seeding
    from gymnasium.vector.utils import batch_space
except ImportError:  # pragma: no cover - exercised by test_missing_gymnasium_is_a_clear_error
    gymnasium = None
    AutoresetMode = None
    VectorEnv = object  # type: ignore[assignment,misc]

_MISSING = "the gymnasium adapter needs gymnasium >= 1.0, which is not installed: pip install 'exitcore[gym]'"


def require_gymnasium() -> Any:
    """The gymnasium module, or an :class:`ExitcoreError` saying how to install it."""
    if gymnasium is None:
        raise ExitcoreError(_MISSING)
    return gymnasium


class GymVecExitEnv(VectorEnv):  # type: ignore[misc,valid-type]
    """A training-mode ``VecExitEnv`` behind the ``gymnasium.vector.VectorEnv`` API (see the module doc)."""

    metadata: dict[str, Any] = {
        "autoreset_mode": AutoresetMode.SAME_STEP if AutoresetMode is not None else "SameStep",
        "render_modes": [],
    }

    def __init__(self, env: VecExitEnv, episode_info: bool = True, enforce_masks: bool = True):
        gym = require_gymnasium()
        if not env.auto_reset:
            raise ValueError("GymVecExitEnv wraps training-mode environments only (VecExitEnv(..., auto_reset=True))")
        self.env = env
        self.episode_info = episode_info
        self.num_envs = env.n_envs
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (env.obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._mask: np.ndarray | None = None
        self.enforce_masks = enforce_masks
        #: masked actions sent and executed as HOLD instead, per action id (``enforce_masks``)
        self.refused = np.zeros(N_ACTIONS, dtype=np.int64)
        self._told_refused = False
        # per-env running return and length, for infos["episode"] (host side: gymnasium is host side)
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every env on a new trade; ``seed`` reseeds the trade sampler."""
        self._check_open("reset")
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        obs, mask = self.env.reset(seed=seed)
        self._mask = _host(mask)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return _host(obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One decision per env; same-step autoreset (see the module doc)."""
        self._check_open("step")
        if self._mask is None:
            raise RuntimeError("call reset() before step()")
        given = np.asarray(actions)
        if given.dtype.kind not in "iu" and not (given.dtype.kind == "f" and np.all(given == np.round(given))):
            # casting 1.7 to 1 (EXIT) would take an action nobody chose
            raise ValueError(f"actions must be integer action ids 0..{self.env.n_actions - 1}, got dtype {given.dtype}"
                             + (f" with non-integer values (e.g. {float(given[given != np.round(given)].flat[0])!r})"
                                if given.dtype.kind == "f" else ""))
        ids = given.reshape(-1).astype(np.int64)
        # here, on the host, every step: an environment on a GPU checks the ids of its first steps
        # only (a check there waits for the device), and an eager one would fail on a bad id
        # with a device-side assert, naming nothing (trial AC)
        check_actions(torch.from_numpy(ids), self.num_envs, torch.device("cpu"))
        if self.enforce_masks:
            ids = self._refuse_masked(ids)
        action = torch.as_tensor(ids, dtype=torch.int64, device=self.env.device)
        obs, mask, reward, done = self.env.step(action)
        self._mask = _host(mask)
        rewards = _host(reward).astype(np.float64)
        terminations = _host(done)
        truncations = np.zeros(self.num_envs, dtype=np.bool_)
        infos: dict[str, Any] = {}
        ended = bool(terminations.any())
        if ended:  # SAME_STEP's contract: a value bootstrap needs the state the trade ended in
            infos = self._final_obs(terminations)
        if self.episode_info:
            self._returns += rewards
            self._lengths += 1
            if ended:
                infos.update(self._final_infos(terminations))
            self._returns[terminations] = 0.0
            self._lengths[terminations] = 0
        return _host(obs), rewards, terminations, truncations, infos

    def _refuse_masked(self, ids: np.ndarray) -> np.ndarray:
        """``ids`` with every action the current mask forbids replaced by HOLD (counted, warned
        about once); the ids are valid (checked before)."""
        assert self._mask is not None
        refused = np.flatnonzero(~self._mask[np.arange(len(ids)), ids])
        if refused.size == 0:
            return ids
        if not self._told_refused:
            first = int(refused[0])
            # before counting: a warning raised as an error (-W error) leaves the step undone
            warnings.warn(
                f"GymVecExitEnv: {refused.size} of {self.num_envs} actions were masked (e.g. {ACTION_NAMES[int(ids[first])]} in "
                f"env {first}) and are executed as HOLD: pass env.action_masks() to the algorithm (sb3-contrib's "
                "MaskablePPO takes it); env.refused counts them per action; GymVecExitEnv(..., enforce_masks=False) "
                "executes them instead", ExitcoreWarning, stacklevel=3)
            self._told_refused = True
        np.add.at(self.refused, ids[refused], 1)
        out = ids.copy()
        out[refused] = HOLD
        return out

    def _check_open(self, what: str) -> None:
        # gymnasium's close() sets `closed`; a closed environment is used no more (trial AC)
        if getattr(self, "closed", False):
            raise RuntimeError(f"{what}() on a closed GymVecExitEnv; make a new one")

    def action_masks(self) -> np.ndarray:
        """Allowed actions at the current decision of every env, bool ``[N, 5]``."""
        self._check_open("action_masks")
        if self._mask is None:
            raise RuntimeError("call reset() before action_masks()")
        return self._mask

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release: the environment holds tensors only."""

    def __repr__(self) -> str:
        return f"GymVecExitEnv(num_envs={self.num_envs}, obs_dim={self.env.obs_dim}, device={self.env.device})"

    # ------------------------------------------------------------------ internals

    def _final_obs(self, ended: np.ndarray) -> dict[str, Any]:
        final_obs_rows = _host(self.env.observe(self.env.after))  # the states the trades ended in
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(ended):
            final_obs[i] = final_obs_rows[i]
        return {"final_obs": final_obs, "_final_obs": ended.copy()}

    def _final_infos(self, ended: np.ndarray) -> dict[str, Any]:
        after = self.env.after  # the states the trades ended in, before the reset
        return {
            "final_info": {
                "exit_reason": np.where(ended, _host(after.exit_reason), 0),
                "_exit_reason": ended.copy(),
                "bars_held": np.where(ended, _host(after.bars_held), 0),
                "_bars_held": ended.copy(),
                "realized": np.where(ended, _host(after.realized), 0.0),
                "_realized": ended.copy(),
            },
            "_final_info": ended.copy(),
            "episode": {
                "r": np.where(ended, self._returns, 0.0),
                "l": np.where(ended, self._lengths, 0),
            },
            "_episode": ended.copy(),
        }


def _host(t: torch.Tensor) -> np.ndarray:
    """A numpy array of ``t`` (a view on CPU: ``VecExitEnv`` returns fresh tensors every step)."""
    return t.detach().cpu().numpy()
