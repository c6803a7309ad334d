"""Built-in policy networks (registered through the ``exitcore`` entry-point group).

The default ``mlp`` actor-critic is registered through :func:`register_policies` exactly as a
third-party policy would be. torch is imported inside ``build`` so that loading this module
(done for every CLI command, ``--help`` included) stays light.
"""

from __future__ import annotations

from typing import Any

from exitcore.hookspecs import hookimpl


def build_mlp(params: Any, ppo: Any, obs_dim: int, n_actions: int) -> Any:
    """The ``mlp`` policy: :class:`exitcore.ppo.policy.MLPActorCritic` sized by ``[ppo]``
    (``hidden``, ``shared_trunk``, ``activation``). ``params`` is always ``None``."""
    from exitcore.ppo.policy import MLPActorCritic

    return MLPActorCritic.from_config(ppo, obs_dim, n_actions)


@hookimpl
def register_policies(register: Any) -> None:
    register(
        "mlp",
        build_mlp,
        description="MLP actor-critic, orthogonal init; ppo.hidden, ppo.shared_trunk, ppo.activation",
    )
