"""A user's experiments file is layered over exitcore's shipped one: `extends = "v4_no_lookahead"`
and `--budget quick` work from the user's own directory (the user's file used to replace the
project's: `unknown experiment 'v4_no_lookahead'`, and the budgets were gone)."""

from __future__ import annotations

import os

from pathlib import Path

import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.errors import ConfigError
from exitcore.experiments import SHIPPED_FILE, load_experiments, load_file, resolve
from exitcore.plugins import PluginHost

MINE = '[experiments.mine]\nextends = "v4_no_lookahead"\ndescription = "my own"\nmasks = []\n'


@pytest.fixture(scope="module")
def host():
    return PluginHost.create()


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A plugin author's directory with their own experiments.toml, as the current directory."""
    (tmp_path / "experiments.toml").write_text(MINE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXITCORE_EXPERIMENTS", raising=False)
    return tmp_path


def test_a_user_file_extends_the_shipped_experiments_and_budgets(user_dir):
    result = CliRunner().invoke(cli, ["experiments", "show", "mine", "--budget", "quick"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# mine from {user_dir / 'experiments.toml'}, config hash")
    assert "total_timesteps = 262144" in result.output and 'name = "min_profit_for_exit"' in result.output
    listed = CliRunner().invoke(cli, ["experiments", "list"])
    assert listed.exit_code == 0 and "v4_no_lookahead" in listed.output and "budgets (--budget): quick, smoke" in listed.output
    assert f"from {user_dir / 'experiments.toml'}: mine; the others are exitcore's shipped ones ({SHIPPED_FILE})" in listed.output
    checked = CliRunner().invoke(cli, ["--experiments", str(user_dir / "experiments.toml"), "experiments", "check"])
    assert checked.exit_code == 0 and "5 experiments OK" in checked.output, checked.output
    # before, between (the docs: "before or after the command") and after the subcommand alike,
    # from a directory without an experiments.toml
    elsewhere = user_dir / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    for args in (["experiments", "--experiments", str(user_dir / "experiments.toml"), "list"],
                 ["experiments", "list", "--experiments", str(user_dir / "experiments.toml")],
                 ["data", "--experiments", str(user_dir / "experiments.toml"), "inspect", "--experiment", "mine"]):
        out = CliRunner().invoke(cli, args)
        assert out.exit_code == 0 and "mine" in out.output, (args, out.output)


def test_load_experiments_layers_in_python_and_load_file_says_how(user_dir, host):
    resolved = resolve(load_experiments("experiments.toml"), "mine", host, budget="smoke")
    assert resolved.config.lineage == ["v1", "v2_exit_guards", "v4_no_lookahead", "mine"]
    with pytest.raises(ConfigError) as exc:
        resolve(load_file("experiments.toml"), "mine", host)  # one file only
    assert "experiments.mine.extends: unknown experiment 'v4_no_lookahead'" in str(exc.value)
    assert "load_experiments(path), which layers it over them" in str(exc.value)
    for shipped in ("v4_no_lookahead", "v4"):  # asked for directly, by name or prefix (the docs say so)
        with pytest.raises(ConfigError) as exc:
            resolve(load_file("experiments.toml"), shipped, host)
        assert f"unknown experiment '{shipped}'" in str(exc.value) and "load_experiments(path)" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        resolve(load_file("experiments.toml"), "nothing_shipped", host)
    assert "load_experiments" not in str(exc.value)


def _line(file, needle: str, after: str = "") -> int:
    """The 1-based line of ``file`` holding ``needle`` (the first one after the line holding ``after``)."""
    rows = file.read_text().splitlines()
    start = next(i for i, row in enumerate(rows) if after in row) if after else 0
    return next(i for i, row in enumerate(rows) if i >= start and needle in row) + 1


def test_the_user_s_definitions_win_and_errors_name_the_file_they_were_written_in(user_dir, host):
    path = user_dir / "experiments.toml"
    path.write_text(MINE + '[experiments.v2_exit_guards]\nextends = "v1"\nppo = { n_steps = 0 }\n'
                    '[defaults.costs]\nspread_pips = 2.5\n[budgets.quick]\nppo = { total_timesteps = 4096 }\n')
    file = load_experiments(path)
    assert file.replaced == ("experiments.v2_exit_guards", "budgets.quick")
    # the shipped defaults stay, key by key under the user's
    assert file.defaults["costs"]["spread_pips"] == 2.5 and file.defaults["entry"] == {"name": "donchian"}
    # a shipped experiment extending a replaced one inherits the user's: the error is the user's key
    with pytest.raises(ConfigError) as exc:
        resolve(file, "v4_no_lookahead", host)
    assert str(exc.value).startswith(f"{path}:{_line(path, 'ppo = { n_steps = 0 }')}: experiments.v2_exit_guards.ppo.n_steps: "
                                      "expected a positive integer")
    # what the shipped file wrote is located in the shipped file
    assert file.file_of("experiments.v4_no_lookahead.ppo.n_envs") == SHIPPED_FILE
    assert file.file_of("budgets.smoke") == SHIPPED_FILE and file.file_of("budgets.quick") == path
    assert file.file_of("defaults.costs.spread_pips") == path and file.file_of("defaults.ppo.n_steps") == SHIPPED_FILE
    err = file.error([("experiments.v3.ppo.n_envs", "bad"), ("experiments.mine.masks", "bad")])
    v3_n_envs = _line(SHIPPED_FILE, "n_envs", after="[experiments.v3.ppo]")
    assert str(err).splitlines() == [f"{SHIPPED_FILE}:{v3_n_envs}: experiments.v3.ppo.n_envs: bad",
                                     f"{path}:{_line(path, 'masks')}: experiments.mine.masks: bad"]
    listed = CliRunner().invoke(cli, ["experiments", "list"])
    assert f"note: {path} replaces the shipped experiments.v2_exit_guards, budgets.quick (its definitions win)" in listed.output


def test_the_shipped_file_alone_is_not_layered_over_itself(monkeypatch):
    monkeypatch.chdir(SHIPPED_FILE.parent)
    file = load_experiments()
    assert file.base is None and file.path.samefile(SHIPPED_FILE)
    assert load_experiments(SHIPPED_FILE).base is None


def test_an_error_in_the_users_defaults_array_names_the_users_file(user_dir):
    """Arrays are replaced whole, so an element of the user's [[defaults.features]] is the
    user's: it was blamed on the shipped file."""
    (user_dir / "experiments.toml").write_text(
        '[[defaults.features]]\nname = "position"\n[[defaults.features]]\nname = "price_window"\n'
        'params = { window = -3 }\n' + MINE)
    result = CliRunner().invoke(cli, ["experiments", "show", "v1"])
    assert result.exit_code == 2
    assert f"{user_dir / 'experiments.toml'}:5: defaults.features[1].params.window" in result.output, result.output


def test_the_user_s_defaults_are_said_to_change_the_shipped_experiments(user_dir):
    """Trial AB 8: a user's `[defaults.costs] spread_pips = 2.0` changed the shipped v4 with no
    word: `experiments show v4` said it came from the shipped file."""
    path = user_dir / "experiments.toml"
    path.write_text("[defaults.costs]\nspread_pips = 2.0\n[defaults.ppo]\nseed = 3\n" + MINE)
    listed = CliRunner().invoke(cli, ["experiments", "list"])
    assert (f"note: {path}'s [defaults] (costs.spread_pips, ppo.seed) apply to the shipped experiments too, where "
            "they do not set the key themselves") in listed.output
    shown = CliRunner().invoke(cli, ["experiments", "show", "v4"]).output.splitlines()
    assert shown[1] == f"# with the [defaults] of {path}: costs.spread_pips, ppo.seed" and "spread_pips = 2.0" in shown
    own = CliRunner().invoke(cli, ["experiments", "show", "mine"]).output  # the user's own: they know
    assert "# with the [defaults]" not in own
    path.write_text(MINE)
    assert "[defaults]" not in CliRunner().invoke(cli, ["experiments", "list"]).output


def test_a_budget_of_the_user_s_file_too_short_for_a_few_updates_is_noted(user_dir):
    """Trial AB 13: `budgets.tiny = { ppo = { total_timesteps = 1000 } }` passed `experiments check`
    without a word; each run of it trained one update of v4's 524,288 steps."""
    path = user_dir / "experiments.toml"
    path.write_text(MINE + "[budgets.tiny]\nppo = { total_timesteps = 1000 }\n"
                    "[budgets.fits]\nppo = { total_timesteps = 4096, n_envs = 16, n_steps = 64, batch_size = 256 }\n")
    out = CliRunner().invoke(cli, ["experiments", "check"])
    assert out.exit_code == 0, out.output
    notes = [line for line in out.output.splitlines() if line.startswith("note: budget")]
    assert len(notes) == 1 and notes[0].startswith("note: budget tiny trains fewer than 4 PPO updates")
    assert "v4_no_lookahead: 1 update (524,288 steps for the 1,000 asked)" in notes[0]
