"""The report's Run section says how the run was made: steps trained (and requested), the
budget and command-line overrides, the PPO settings and the costs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import tomli_w

from exitcore.evaluation.report import render_report, trained_steps

PPO = {"total_timesteps": 1, "n_envs": 16, "n_steps": 32, "batch_size": 256, "n_epochs": 2, "learning_rate": 0.001,
       "anneal_lr": False, "hidden": [32, 32], "precision": "fp32", "seed": 0, "device": "auto"}
ENV = {"max_bars": 96, "tighten_factor": 0.5, "partial_fraction": 0.5, "reward_scale": 100.0, "atr_period": 14,
       "data_holes": "hold"}
COSTS = {"spread_pips": 1.0, "commission_pips": 0.5, "slippage_pips": 0.2, "notional": 100000.0, "account_currency": "USD"}


def _run_dir(tmp_path: Path, log: list[dict], request: dict | None) -> Path:
    """A minimal finished run directory: what `exitcore run --timesteps 1` records."""
    run_dir = tmp_path / "20260101-000000-v4_no_lookahead-abcd"
    run_dir.mkdir()
    info = {"run_id": run_dir.name, "experiment": "v4_no_lookahead", "seed": 0, "device": "cpu", "timesteps": 1}
    if request is not None:
        info["request"] = request
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "results.json").write_text(json.dumps({"experiment": "v4_no_lookahead", "label": "TEST (out-of-sample)"}))
    config = {"experiment": {"name": "v4_no_lookahead", "ppo": PPO, "costs": COSTS, "env": ENV}}
    (run_dir / "config.toml").write_text(tomli_w.dumps(config))
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return run_dir


def _run_section(text: str) -> dict[str, str]:
    section = text[text.index("Run\n---\n") + 8:].split("\n\n")[0]
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in section.splitlines())


def test_the_run_section_shows_trained_steps_overrides_ppo_and_costs(tmp_path):
    request = {"experiment": "v4", "budget": "smoke", "overrides": ["ppo.learning_rate=0.001"], "data": None,
               "timesteps": 1, "device": None, "seed": None}
    run_dir = _run_dir(tmp_path, [{"update": 1, "global_step": 512}], request)
    rows = _run_section(render_report(run_dir))
    assert rows["timesteps"] == "512 trained (1 requested: whole updates of n_envs x n_steps = 512)"
    assert rows["device"] == "cpu (ppo.device auto)"
    assert rows["budget"] == "smoke (a shortened run: its numbers are not the experiment's full training)"
    assert rows["overrides"] == "--set ppo.learning_rate=0.001 --timesteps 1"
    assert rows["ppo"] == ("n_envs=16, n_steps=32, batch_size=256, n_epochs=2, learning_rate=0.001, "
                           "hidden=[32, 32], precision=fp32")
    assert rows["costs"] == "in pips: spread 1, slippage 0.2 per side, commission 0.5; notional 100,000 USD"
    assert rows["episode"] == ("max_bars 96, tighten_factor 0.5, partial_fraction 0.5; trades stay open across "
                               "holes in the data (env.data_holes = hold)")
    md = render_report(run_dir, "markdown")
    for row in ("| timesteps | 512 trained (1 requested", "| budget | smoke (a shortened run: its numbers are not the experiment's full training) |", "| ppo | n_envs=16,", "| costs | in pips: spread 1,"):
        assert row in md


def test_the_code_that_trained_the_run_is_named_and_a_resume_by_another_version_too(tmp_path):
    """A run started by one exitcore and resumed by another said nothing of it (only run.json
    kept it, under resumes[].git): an upgrade trial."""
    run_dir = _run_dir(tmp_path, [{"update": 1, "global_step": 512}], None)
    info = json.loads((run_dir / "run.json").read_text())
    first = {"commit": "34b7cef71a5901288f2c9f386bd3d32a4a9543d7", "dirty": False}
    (run_dir / "run.json").write_text(json.dumps({**info, "git": first}))
    assert _run_section(render_report(run_dir))["code"] == "exitcore at git commit 34b7cef71a"
    resumes = [{"at": "2026-11-27T23:20:56+00:00", "git": first},  # the same code: not repeated
               {"at": "2026-11-28T01:02:03+00:00", "git": {"commit": "d6e72f0b92014c69b50b", "dirty": True}}]
    (run_dir / "run.json").write_text(json.dumps({**info, "git": first, "resumes": resumes}))
    assert _run_section(render_report(run_dir))["code"] == (
        "exitcore at git commit 34b7cef71a; resumed 2026-11-28 01:02 UTC at d6e72f0b92 (uncommitted changes)")
    (run_dir / "run.json").write_text(json.dumps({**info, "git": None}))  # installed from a wheel: no row
    assert "code" not in _run_section(render_report(run_dir))


def test_fewer_steps_than_requested_are_an_early_stop_not_rounding(tmp_path):
    """A plugin's iteration_end stopped training after 1,536 of 8,192 steps: the report said
    'whole updates of n_envs x n_steps', as if rounding had taken the rest (a docs trial)."""
    run_dir = _run_dir(tmp_path, [{"update": 3, "global_step": 1536}], None)
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "timesteps": 8192}))
    rows = _run_section(render_report(run_dir))
    assert rows["timesteps"] == "1536 trained (8192 requested: stopped early by a plugin's iteration_end hook)"
    (run_dir / "run.json").write_text(json.dumps({**info, "timesteps": 8192, "stopped_early": "entropy below 0.05"}))
    rows = _run_section(render_report(run_dir))
    assert rows["timesteps"] == "1536 trained (8192 requested: stopped early by a plugin: entropy below 0.05)"


def test_trained_steps_equal_to_the_request_show_once_and_a_run_without_request_shows_no_overrides(tmp_path):
    # a resumed run appends to its log; a torn last line (a killed run) is skipped
    log = [{"update": 1, "global_step": 256}, {"update": 2, "global_step": 512}]
    run_dir = _run_dir(tmp_path, log, None)
    (run_dir / "train_log.jsonl").write_text((run_dir / "train_log.jsonl").read_text() + '{"update": 3, "glob')
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "timesteps": 512}))
    assert trained_steps(run_dir) == 512
    rows = _run_section(render_report(run_dir))
    assert rows["timesteps"] == "512" and "budget" not in rows and "overrides" not in rows
    (run_dir / "train_log.jsonl").unlink()
    assert trained_steps(run_dir) is None
    assert _run_section(render_report(run_dir))["timesteps"] == "512 requested (no training log)"


def test_a_plugin_policy_is_shown_with_its_own_parameters_not_the_mlps_hidden(tmp_path):
    run_dir = _run_dir(tmp_path, [], None)
    config = {"experiment": {"name": "v4_no_lookahead", "costs": COSTS,
                             "ppo": {**PPO, "policy": "two_head", "policy_params": {"hidden": [16]}}}}
    (run_dir / "config.toml").write_text(tomli_w.dumps(config))
    rows = _run_section(render_report(run_dir))
    assert rows["ppo"].endswith("learning_rate=0.001, policy=two_head(hidden=[16]), precision=fp32")
    assert "[32, 32]" not in rows["ppo"]  # ppo.hidden belongs to the built-in mlp, unused here


def test_a_run_frozen_before_data_holes_existed_reports_that_it_closed_at_holes(tmp_path):
    run_dir = _run_dir(tmp_path, [{"update": 1, "global_step": 512}], None)
    config = {"experiment": {"name": "v4_no_lookahead", "ppo": PPO, "costs": COSTS,
                             "env": {k: v for k, v in ENV.items() if k != "data_holes"}}}
    (run_dir / "config.toml").write_text(tomli_w.dumps(config))
    rows = _run_section(render_report(run_dir))
    assert rows["episode"].endswith("trades close at the last bar before a hole in the data, exit reason gap "
                                    "(env.data_holes = close)")
