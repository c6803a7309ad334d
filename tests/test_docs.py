"""docs/plugins.md stays true: its assembly example runs, and its tables cover every field and action."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_assembly_example_runs(monkeypatch):
    block = next(b for b in _python_blocks(PLUGINS_DOC.read_text()) if "assemble(experiment, bars)" in b)
    monkeypatch.chdir(ROOT)  # it reads ./experiments.toml
    scope: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), scope)
    env, obs, mask, reward = scope["env"], scope["obs"], scope["mask"], scope["reward"]
    assert env.n_envs > 100 and obs.shape == (env.n_envs, env.obs_dim) and mask.shape == (env.n_envs, 5)
    assert reward.shape == (env.n_envs,) and scope["ctx"].market is not None


def test_the_state_table_lists_every_field():
    from exitcore.env.state import EnvState

    documented = set(re.findall(r"^\| `(\w+)` \| \w+ \|", PLUGINS_DOC.read_text(), re.M))
    missing = [f.name for f in dataclasses.fields(EnvState) if f.name not in documented]
    assert not missing, f"EnvState fields missing from docs/plugins.md: {missing}"


@pytest.mark.parametrize("name", ["HOLD", "EXIT", "TIGHTEN_SL", "TRAIL_BE", "PARTIAL_EXIT"])
def test_the_action_table_gives_each_id(name):
    from exitcore.actions import Action

    assert f"| {getattr(Action, name)} | `{name}` |" in PLUGINS_DOC.read_text()


def test_the_parameter_validators_listed_are_exitcore_params():
    """docs/plugins.md lists the validators a plugin's params class can use: exactly the public
    ones of exitcore.params (a renamed or new one shows up here)."""
    import exitcore.params as params

    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text[text.index("* **Parameters**"):text.index("* **Errors**")]
    listed = set(re.findall(r"`(\w+)(?:\([^`]*\))?`", section)) - {"params", "exitcore", "None", "build", "nan", "inf"}
    public = {n for n, v in vars(params).items() if callable(v) and not n.startswith("_") and v.__module__ == params.__name__
              and n not in ("FieldError",)}
    public |= {n for n, v in vars(params).items() if typing.get_origin(v) is typing.Annotated}  # AnyFloat
    assert listed == public, (listed ^ public)
