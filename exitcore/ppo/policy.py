"""The default actor-critic: an MLP with orthogonal initialisation (registered as ``"mlp"``).

Any policy plugin returns an ``nn.Module`` with the same contract (see
:func:`exitcore.hookspecs.register_policies`): ``forward(obs [B, obs_dim]) -> (logits [B, A],
value [B])``. The trainer applies the action mask itself, so a network never sees it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from exitcore.errors import PluginError, describe_exception

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with ``gain`` and a constant bias (the PPO implementation-details
    recipe: sqrt(2) for hidden layers, 0.01 for the policy head, 1 for the value head)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp_trunk(in_dim: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    """``Linear -> activation`` for each size in ``hidden``, orthogonally initialised."""
    act = _ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [layer_init(nn.Linear(in_dim, size)), act()]
        in_dim = size
    return nn.Sequential(*layers)


class MLPActorCritic(nn.Module):
    """Actor and critic MLPs with ``hidden`` layer sizes.

    ``shared_trunk=False`` (the default, as in the research log) gives actor and critic their
    own trunk; ``True`` shares one trunk between a policy head and a value head.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (256, 128),
                 shared_trunk: bool = False, activation: str = "tanh"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.obs_dim, self.n_actions, self.shared_trunk = obs_dim, n_actions, shared_trunk
        if shared_trunk:
            self.trunk = mlp_trunk(obs_dim, hidden, activation)
            self.actor_trunk = self.critic_trunk = None
        else:
            self.trunk = None
            self.actor_trunk = mlp_trunk(obs_dim, hidden, activation)
            self.critic_trunk = mlp_trunk(obs_dim, hidden, activation)
        # A near-zero policy head starts with (almost) uniform action probabilities.
        self.policy_head = layer_init(nn.Linear(hidden[-1], n_actions), gain=0.01)
        self.value_head = layer_init(nn.Linear(hidden[-1], 1), gain=1.0)

    @classmethod
    def from_config(cls, ppo: Any, obs_dim: int, n_actions: int) -> MLPActorCritic:
        """Build from a :class:`exitcore.config.PPOConfig` (``hidden``, ``shared_trunk``, ``activation``)."""
        return cls(obs_dim, n_actions, hidden=list(ppo.hidden), shared_trunk=ppo.shared_trunk, activation=ppo.activation)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``obs`` [B, obs_dim] -> ``(logits [B, n_actions], value [B])``."""
        if self.trunk is not None:
            h = self.trunk(obs)
            return self.policy_head(h), self.value_head(h).squeeze(-1)
        return self.policy_head(self.actor_trunk(obs)), self.value_head(self.critic_trunk(obs)).squeeze(-1)


def build_policy(component: Any, ppo: Any, obs_dim: int, n_actions: int, params: Any = None,
                 check_rows: bool = True) -> nn.Module:
    """Build the policy ``component`` (a registered ``policy`` :class:`~exitcore.components.Component`)
    and check its contract on a two-row dummy batch.

    Called as ``component.build(params, ppo, obs_dim, n_actions)``: ``params`` is the instance
    of the component's params class made from ``ppo.policy_params`` (``None`` when it takes
    none; :attr:`ResolvedExperiment.policy_params`), ``ppo`` the whole ``[ppo]`` section. A
    module with the wrong output shapes, or a build that fails, is reported as
    :class:`PluginError` naming the component and its plugin. ``check_rows=False`` skips the
    check that rows are independent in training mode (for loading a recorded run's policy to
    evaluate it: the check is for training, and runs recorded before it must still load).
    """
    where = f"policy {component.name!r} from {component.origin}"
    try:
        policy = component.build(params, ppo, obs_dim, n_actions)
    except Exception as exc:  # noqa: BLE001 - reported with the component's origin
        raise PluginError(f"{where} failed to build: {describe_exception(exc)}") from exc
    if not isinstance(policy, nn.Module):
        raise PluginError(f"{where} returned {type(policy).__name__}, expected a torch.nn.Module")
    check_policy_contract(policy, obs_dim, n_actions, where)
    if check_rows:
        device = next((p.device for p in policy.parameters()), torch.device("cpu"))
        _check_rows_independent(policy, obs_dim, device, where)
    return policy


def check_policy_contract(policy: nn.Module, obs_dim: int, n_actions: int, where: str) -> None:
    """Raise :class:`PluginError` naming ``where`` unless ``policy(obs)`` on a float32 batch
    ``[2, obs_dim]`` returns ``(logits [2, n_actions], value [2])`` in floating point (what the
    trainer and the evaluation call it with). :func:`build_policy` checks every built policy,
    :class:`~exitcore.ppo.trainer.PPOTrainer` one given to it directly (trial AC: a value [B, 1]
    or a float64 network failed mid-rollout in torch's words)."""
    device = next((p.device for p in policy.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            out = policy(torch.zeros(2, obs_dim, device=device))
    except Exception as exc:  # noqa: BLE001 - the policy's own code, named
        raise PluginError(f"{where}: forward failed on a float32 batch of observations [2, {obs_dim}]: "
                          f"{describe_exception(exc)}") from exc
    if not (isinstance(out, tuple) and len(out) == 2):
        raise PluginError(f"{where}: forward must return (logits, value), got {type(out).__name__}")
    logits, value = out
    if not (isinstance(logits, Tensor) and isinstance(value, Tensor)):
        raise PluginError(f"{where}: forward must return two tensors (logits, value), got "
                          f"{type(logits).__name__} and {type(value).__name__}")
    if tuple(logits.shape) != (2, n_actions) or tuple(value.shape) != (2,):
        raise PluginError(
            f"{where}: forward(obs [2, {obs_dim}]) must return logits [2, {n_actions}] and value [2], "
            f"got {list(logits.shape)} and {list(value.shape)}"
        )
    if not (logits.dtype.is_floating_point and value.dtype.is_floating_point):
        raise PluginError(f"{where}: forward must return floating-point logits and value, got {logits.dtype} "
                          f"and {value.dtype}")


def check_policy_on(resolved: Any, obs: Tensor) -> None:
    """Build the experiment's policy (:func:`build_policy`, which checks its contract on a dummy
    batch) and pass ``obs``, real first observations, through it; raise
    :class:`PluginError` naming the policy and its plugin when either fails or the outputs are
    not finite. ``experiments check --build`` and a run's first-steps check call it, so a broken
    policy is refused before a run is recorded (a failed run is a trial). Draws from torch's
    global generator (the initialisation): a caller that must not shift it keeps its state."""
    from exitcore.actions import N_ACTIONS
    from exitcore.errors import ExitcoreError

    where = f"policy {resolved.policy.name!r} from {resolved.policy.origin}"
    policy = build_policy(resolved.policy, resolved.config.ppo, obs.shape[1], N_ACTIONS, resolved.policy_params)
    try:
        with torch.no_grad():
            logits, value = policy(obs[:256].to(next((p.device for p in policy.parameters()), obs.device)))
    except ExitcoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - the policy's own code failed on real observations
        raise PluginError(f"{where} failed on the first observations: {describe_exception(exc)}") from exc
    if not (bool(torch.isfinite(logits).all()) and bool(torch.isfinite(value).all())):
        raise PluginError(f"{where} returned NaN or inf for the first observations")


def _check_rows_independent(policy: nn.Module, obs_dim: int, device: torch.device, where: str) -> None:
    """Raise :class:`PluginError` when, in training mode, a row's output depends on the other
    rows of the batch (a BatchNorm in training mode): the update passes a minibatch through
    ``forward`` in parts (``ppo.micro_batch_size``), so such a policy would train silently on
    something else. Leaves no trace: registered buffers (running statistics), the mode and the
    global random state are restored (state a module keeps in plain attributes is not). A
    forward that is random (dropout) cannot be compared and passes.
    """
    obs = torch.randn(8, obs_dim, generator=torch.Generator().manual_seed(0)).to(device)
    buffers = [(b, b.detach().clone()) for b in policy.buffers()]
    training = policy.training
    policy.train()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            whole, again, half = policy(obs), policy(obs), policy(obs[:4])
    except Exception as exc:  # noqa: BLE001 - reported with the component's origin
        raise PluginError(f"{where}: forward failed in training mode on 8 and 4 rows: {describe_exception(exc)}") from exc
    finally:
        policy.train(training)
        for buffer, saved in buffers:
            buffer.copy_(saved)

    def same(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], rows: int) -> bool:
        # not bitwise: a matrix product may round differently for another batch size
        return all(torch.allclose(x[:rows], y[:rows], rtol=1e-4, atol=1e-5, equal_nan=True) for x, y in zip(a, b))

    if same(whole, again, 8) and not same(whole, half, 4):
        raise PluginError(
            f"{where}: in training mode its forward gives a row a different output when the other rows of "
            "the batch change (rows 0-3 of an 8-row batch differ from the same 4 rows alone): a BatchNorm or "
            "another statistic over the batch? Rows must be independent, because the update passes a "
            "minibatch through forward in parts (ppo.micro_batch_size); use LayerNorm instead"
        )
