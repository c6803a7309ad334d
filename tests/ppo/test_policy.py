"""The MLP actor-critic, its registration through register_policies, and device selection."""

from __future__ import annotations

import subprocess
import sys

import attrs
import pytest
import torch
from torch import nn

from exitcore.components import ComponentKind
from exitcore.config import PPOConfig
from exitcore.errors import ExitcoreError, PluginError
from exitcore.hookspecs import hookimpl
from exitcore.ppo.policy import MLPActorCritic, build_policy


def test_shapes_and_orthogonal_init():
    torch.manual_seed(0)
    net = MLPActorCritic(obs_dim=7, n_actions=5, hidden=[16, 8])
    logits, value = net(torch.randn(3, 7))
    assert logits.shape == (3, 5) and value.shape == (3,)
    w = net.actor_trunk[0].weight  # [16, 7]: orthonormal columns scaled by sqrt(2)
    assert torch.allclose(w.T @ w, 2.0 * torch.eye(7), atol=1e-5)
    head = net.policy_head.weight  # [5, 8]: orthonormal rows scaled by 0.01
    assert torch.allclose(head @ head.T, 1e-4 * torch.eye(5), atol=1e-8)
    assert (net.actor_trunk[0].bias == 0).all()


def test_shared_trunk_has_one_trunk():
    separate = MLPActorCritic(4, 3, hidden=[32, 32], shared_trunk=False)
    shared = MLPActorCritic(4, 3, hidden=[32, 32], shared_trunk=True, activation="relu")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    trunk = 4 * 32 + 32 + 32 * 32 + 32
    assert count(separate) - count(shared) == trunk
    assert isinstance(shared.trunk[1], nn.ReLU)


def test_mlp_is_registered_through_the_policy_hook(make_host):
    import exitcore.builtin.policies as builtin_policies

    host = make_host(builtin_policies)
    component = host.get(ComponentKind.POLICY, "mlp")
    policy = build_policy(component, PPOConfig(hidden=[64, 32], shared_trunk=True), obs_dim=6, n_actions=5)
    assert isinstance(policy, MLPActorCritic) and policy.shared_trunk
    assert policy.policy_head.in_features == 32


class _BadPlugin:
    @hookimpl
    def register_policies(self, register):
        register("bad_shape", lambda params, ppo, obs_dim, n_actions: _WrongShape())
        register("not_module", lambda params, ppo, obs_dim, n_actions: object())


class _WrongShape(nn.Module):
    def forward(self, obs):
        return torch.zeros(obs.shape[0], 2), torch.zeros(obs.shape[0], 1)


class _WidthPlugin:
    @hookimpl
    def register_policies(self, register):
        register("sized", lambda params, ppo, obs_dim, n_actions: MLPActorCritic(obs_dim, n_actions, [params.width]),
                 params=_Width)


@attrs.frozen
class _Width:
    width: int = 8


def test_a_policy_gets_its_params(make_host):
    host = make_host(_WidthPlugin())
    policy = build_policy(host.get(ComponentKind.POLICY, "sized"), PPOConfig(), 4, 5, _Width(width=24))
    assert policy.policy_head.in_features == 24


def test_a_policy_breaking_the_contract_is_named(make_host):
    host = make_host(_BadPlugin())
    with pytest.raises(PluginError, match="bad_shape.*logits \\[2, 5\\] and value \\[2\\]"):
        build_policy(host.get(ComponentKind.POLICY, "bad_shape"), PPOConfig(), 4, 5)
    with pytest.raises(PluginError, match="not_module.*expected a torch.nn.Module"):
        build_policy(host.get(ComponentKind.POLICY, "not_module"), PPOConfig(), 4, 5)


def test_builtin_policy_module_does_not_import_torch():
    code = "import sys, exitcore.builtin.policies; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_select_device():
    from exitcore.device import select_device

    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ExitcoreError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ExitcoreError, match="CUDA is not available"):
            select_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", torch.device("cuda"), "gpu"])
def test_assemble_checks_its_device_as_the_command_line_does(device):
    """assemble(..., device="cuda") without CUDA raised torch's "Torch not compiled with CUDA
    enabled" AssertionError, and "gpu" its list of every device type."""
    from exitcore.assembly import assemble

    with pytest.raises(ExitcoreError, match="CUDA is not available" if "cuda" in str(device) else "unknown device 'gpu'"):
        assemble(None, None, device=device)  # the device is checked first, before anything is built


class _NormPlugin:
    @hookimpl
    def register_policies(self, register):
        register("batch_norm", lambda params, ppo, obs_dim, n_actions: _Normed(obs_dim, n_actions, nn.BatchNorm1d(obs_dim)))
        register("layer_norm", lambda params, ppo, obs_dim, n_actions: _Normed(obs_dim, n_actions, nn.LayerNorm(obs_dim)))
        register("dropout", lambda params, ppo, obs_dim, n_actions: _Normed(obs_dim, n_actions, nn.Dropout(0.5)))


class _Normed(nn.Module):
    def __init__(self, obs_dim, n_actions, norm):
        super().__init__()
        self.norm, self.out = norm, nn.Linear(obs_dim, n_actions + 1)

    def forward(self, obs):
        out = self.out(self.norm(obs))
        return out[:, :-1], out[:, -1]


def test_a_policy_whose_rows_depend_on_the_batch_is_named(make_host):
    """A BatchNorm in training mode trained silently although the update splits minibatches."""
    host = make_host(_NormPlugin())
    with pytest.raises(PluginError, match="policy .batch_norm. from .*Rows must be independent.*LayerNorm"):
        build_policy(host.get(ComponentKind.POLICY, "batch_norm"), PPOConfig(), 4, 5)
    for name in ("layer_norm", "dropout"):  # independent rows; a random forward is not compared
        assert build_policy(host.get(ComponentKind.POLICY, name), PPOConfig(), 4, 5).training
    # loading a recorded run's policy to evaluate it skips the check: runs recorded before it still load
    assert build_policy(host.get(ComponentKind.POLICY, "batch_norm"), PPOConfig(), 4, 5, check_rows=False)


def test_a_forward_failing_in_the_row_check_names_the_policy():
    class ShapeBound(nn.Module):  # works on 2 rows, fails on others
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(4, 6)

        def forward(self, obs):
            out = self.out(obs).reshape(2, 6)
            return out[:, :-1], out[:, -1]

    from exitcore.ppo.policy import _check_rows_independent

    with pytest.raises(PluginError, match="policy 'x': forward failed in training mode on 8 and 4 rows: RuntimeError"):
        _check_rows_independent(ShapeBound(), 4, torch.device("cpu"), "policy 'x'")


def test_the_row_check_draws_nothing_from_the_global_generator():
    from exitcore.ppo.policy import _check_rows_independent

    net = _Normed(4, 5, nn.Dropout(0.5))
    rng = torch.get_rng_state()
    _check_rows_independent(net, 4, torch.device("cpu"), "policy 'x'")
    assert torch.equal(torch.get_rng_state(), rng)  # a run's random stream is the same with or without it


def test_the_row_check_leaves_the_running_statistics_alone():
    from exitcore.ppo.policy import _check_rows_independent

    net = _Normed(4, 5, nn.BatchNorm1d(4)).eval()
    before = [b.clone() for b in net.buffers()]
    with pytest.raises(PluginError):
        _check_rows_independent(net, 4, torch.device("cpu"), "policy 'x'")
    assert not net.training and all(torch.equal(a, b) for a, b in zip(before, net.buffers()))
