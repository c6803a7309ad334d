"""The accelerator path: the environment, the trainer, resume and the CLI on a CUDA device.

They run on CUDA where a device is visible (``python -m pytest tests/test_device.py`` on a GPU
machine; ``benchmarks/gpu_session.sh`` does it) and otherwise on the CPU, which keeps the test
code itself working in CI between the rare GPU sessions (``EXITCORE_TEST_DEVICE`` picks the
device). The CUDA-graph test skips without CUDA.

What they prove on the device:
* the v4 environment gives the same masks, dones, observations and rewards as on the CPU for the
  same actions (trade draws come from a counter-based hash, not a device generator), eager and
  compiled;
* training is deterministic for a seed, and a resumed run reaches the parameters of an
  uninterrupted one;
* the trainer's CUDA graphs (policy step, update, env step) are captured and train like the
  eager path (bit-identical on an H100, 2026-11-27);
* ``exitcore run --device cuda`` trains, evaluates, audits and records a run, and ``exitcore
  audit --device cuda`` agrees with the run's verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from exitcore.experiments import SHIPPED_FILE

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("EXITCORE_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason=f"EXITCORE_TEST_DEVICE={DEVICE} but no CUDA device is visible")

# Small v4: its plugins, reward and masks, on two years of the embedded synthetic data.
V4_SMALL = ["data.params.years=2", "ppo.n_envs=64", "ppo.n_steps=32", "ppo.batch_size=512", "ppo.n_epochs=2",
            "ppo.hidden=[64, 64]", "ppo.checkpoint_every=1", "ppo.seed=5"]


def assembled(device: str, overrides: list[str] = ()):
    from exitcore.assembly import assemble
    from exitcore.data.pipeline import load_bars
    from exitcore.experiments import load_file, resolve
    from exitcore.plugins import PluginHost

    host = PluginHost.create()
    resolved = resolve(load_file(SHIPPED_FILE), "v4_no_lookahead", host, overrides=[*V4_SMALL, *overrides])
    asm = assemble(resolved, load_bars(resolved.config.data, host), device=device)
    return resolved, asm, torch.nonzero(asm.table.decidable).flatten()


@pytest.fixture(scope="module")
def v4_both():
    """v4 assembled on the CPU and on the device under test (same bars, same trades)."""
    return assembled("cpu"), assembled(DEVICE)


def allowed_random_actions(mask: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One allowed action per row, drawn on the host so both devices get the same ones."""
    m = mask.cpu().numpy()
    scores = np.where(m, rng.random(m.shape), -1.0)
    return torch.from_numpy(scores.argmax(axis=1))


def run_side_by_side(env_a, env_b, steps: int, seed: int = 0) -> int:
    """Step both envs with the same allowed actions; assert equal outputs; return exits seen."""
    rng = np.random.default_rng(seed)
    obs_a, mask_a = env_a.reset()
    obs_b, mask_b = env_b.reset()
    torch.testing.assert_close(obs_b.cpu(), obs_a.cpu())
    assert torch.equal(mask_b.cpu(), mask_a.cpu())
    dones = 0
    for k in range(steps):
        action = allowed_random_actions(mask_a, rng)
        out_a = env_a.step(action.to(env_a.device))
        out_b = env_b.step(action.to(env_b.device))
        (obs_a, mask_a, rew_a, done_a), (obs_b, mask_b, rew_b, done_b) = out_a, out_b
        assert torch.equal(mask_b.cpu(), mask_a.cpu()), f"masks differ at step {k}"
        assert torch.equal(done_b.cpu(), done_a.cpu()), f"dones differ at step {k}"
        torch.testing.assert_close(obs_b.cpu(), obs_a.cpu(), msg=lambda m: f"step {k} observations: {m}")
        torch.testing.assert_close(rew_b.cpu(), rew_a.cpu(), msg=lambda m: f"step {k} rewards: {m}")
        dones += int(done_a.sum())
    return dones


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_environment_on_the_device_matches_the_cpu(v4_both, compiled):
    (_, cpu, cpu_pool), (_, dev, dev_pool) = v4_both
    assert dev.device.type == torch.device(DEVICE).type
    assert torch.equal(cpu_pool, dev_pool.cpu())
    env_cpu = cpu.make_env(cpu_pool, n_envs=512, seed=3)
    env_dev = dev.make_env(dev_pool, n_envs=512, seed=3, compile=compiled)
    dones = run_side_by_side(env_cpu, env_dev, steps=60)
    assert dones > 512  # auto-reset was exercised: new trades were drawn on both devices alike
    stats_cpu, stats_dev = env_cpu.episode_stats(), env_dev.episode_stats()
    assert json.dumps(stats_dev, sort_keys=True, default=str) == json.dumps(stats_cpu, sort_keys=True, default=str)


def train_small(run_dir: Path | None, stop_after: int | None = None, resume_from: Path | None = None,
                graphs: bool = True, timesteps: int = 8192, keep: list | None = None):
    """A short v4 training on the device (4 updates of 64 envs x 32 steps by default):
    ``(result, parameters on the CPU, [(update, loss_policy, loss_value)])``. ``graphs=False``
    turns the CUDA graphs off (the eager policy step and update, the compiled env step);
    ``keep`` receives the trainer."""
    from exitcore.ppo.policy import build_policy
    from exitcore.ppo.rng import seed_everything
    from exitcore.ppo.trainer import PPOTrainer

    resolved, asm, pool = assembled(DEVICE, [f"ppo.total_timesteps={timesteps}"])
    ppo = resolved.config.ppo
    seed_everything(ppo.seed if resume_from is None else 999)  # a resumed process starts from other weights
    env = asm.make_env(pool, n_envs=ppo.n_envs, seed=ppo.seed, compile=DEVICE.startswith("cuda"))
    policy = build_policy(resolved.policy, ppo, env.obs_dim, env.n_actions, resolved.policy_params)
    losses = []

    def on_update(update, metrics):
        losses.append((update, metrics["loss_policy"], metrics["loss_value"]))
        if update == stop_after:
            raise KeyboardInterrupt

    kw = dict(run_dir=run_dir, on_update=on_update, progress=False)
    if resume_from is None:
        trainer = PPOTrainer(env, policy, ppo, **kw)
    else:
        trainer = PPOTrainer.resume(resume_from, env, policy, ppo, **kw)
    if not graphs:
        trainer.graphs = dict.fromkeys(trainer.graphs, "off")
        env.use_cuda_graph(False)
    if keep is not None:
        keep.append(trainer)
    result = trainer.train()
    params = {k: v.detach().cpu().clone() for k, v in trainer.policy.state_dict().items()}
    return result, params, losses


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """An uninterrupted short v4 training on the device: (result, parameters, losses)."""
    return train_small(tmp_path_factory.mktemp("straight"))


def test_training_on_the_device_is_deterministic(straight_run):
    done, params, losses = straight_run
    assert done.status == "done" and done.updates == 4
    assert next(iter(params.values())).device.type == "cpu"  # copied back for comparison
    assert all(np.isfinite(x) for _, a, b in losses for x in (a, b))
    _, params_again, losses_again = train_small(None)
    assert losses_again == losses, "same seed, same device: the losses differ"
    assert all(torch.equal(params[k], params_again[k]) for k in params), "same seed, same device: parameters differ"


def test_training_on_the_device_resumes_exactly(straight_run, tmp_path):
    _, params, losses = straight_run
    stopped, _, _ = train_small(tmp_path, stop_after=2)
    assert stopped.status == "interrupted" and stopped.updates == 2
    ckpt = torch.load(stopped.checkpoint_path, weights_only=False, map_location="cpu")
    if DEVICE.startswith("cuda"):
        assert "cuda" in ckpt["rng"], "the checkpoint lacks the CUDA generator state"
    resumed, params_resumed, losses_resumed = train_small(tmp_path, resume_from=stopped.checkpoint_path)
    assert resumed.status == "done" and resumed.updates == 4
    assert losses_resumed == losses[2:]
    assert all(torch.equal(params[k], params_resumed[k]) for k in params), "resume did not reach the same parameters"


def test_cuda_graphs_are_captured_and_train_like_the_eager_path():
    """On CUDA the policy step, the minibatch update and the env step replay CUDA graphs
    (exitcore/ppo/graphs.py, exitcore/env/step_graph.py); one update with them must match one
    without them (same rollout, same minibatches) up to float rounding."""
    if not DEVICE.startswith("cuda"):
        pytest.skip("CUDA graphs exist on CUDA only (no CUDA device visible)")
    kept: list = []
    _, with_graphs, losses_graphs = train_small(None, timesteps=2048, keep=kept)
    trainer = kept[0]
    assert trainer.graphs == {"policy_step": "on", "update": "on", "env_step": "on"}, trainer.graphs
    assert trainer._policy_graph is not None and trainer._update_graph.graph is not None
    assert trainer.env._step_graph is not None
    _, without, losses_eager = train_small(None, timesteps=2048, graphs=False)
    same = all(torch.equal(with_graphs[k], without[k]) for k in with_graphs)
    print(f"graphs vs eager after one update: {'bit-identical' if same else 'close, not identical'}; "
          f"losses {losses_graphs} vs {losses_eager}")
    for k in with_graphs:
        torch.testing.assert_close(with_graphs[k], without[k], rtol=1e-4, atol=1e-6, msg=lambda m: f"{k}: {m}")
    (_, lp_g, lv_g), (_, lp_e, lv_e) = losses_graphs[0], losses_eager[0]
    assert lp_g == pytest.approx(lp_e, rel=1e-4, abs=1e-7) and lv_g == pytest.approx(lv_e, rel=1e-4)


def exitcore(*args: str, runs: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "exitcore", *args, "--runs-dir", str(runs)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_run_and_audit_on_the_device_from_the_cli(tmp_path):
    runs = tmp_path / "runs"
    out = exitcore("run", "v4", "--budget", "smoke", "--device", DEVICE.split(":")[0], "--seed", "2", runs=runs)
    assert out.returncode == 0, out.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    assert f'device = "{DEVICE.split(":")[0]}"' in (run_dir / "config.toml").read_text()
    assert results["audit_verdict"] == "PASS", out.stdout
    assert results["headline"]["policy"] == "rl" and results["headline"]["n_trades"] > 100
    assert json.loads((run_dir / "run.json").read_text())["device"] == DEVICE.split(":")[0]
    audit = exitcore("audit", run_dir.name, "--device", DEVICE, runs=runs)
    assert audit.returncode == 0 and "PASS" in audit.stdout, audit.stdout + audit.stderr
