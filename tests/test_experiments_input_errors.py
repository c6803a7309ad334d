"""Bad experiments files and overrides found in a user walkthrough: each is one located
``error:`` line with exit status 2, naming what the user wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.errors import ConfigError
from exitcore.experiments import SHIPPED_FILE, check_all, load_experiments, load_file, resolve
from exitcore.plugins import PluginHost

PROJECT_FILE = SHIPPED_FILE


@pytest.fixture(scope="module")
def host():
    return PluginHost.create()


@pytest.mark.parametrize(
    "content, where",
    [
        (b"\xff\xfe x", "byte 0xff at offset 0 (line 1) is invalid; it looks like UTF-16: save it as UTF-8"),
        (b"[defaults]\n# caf\xe9\n", "byte 0xe9 at offset 16 (line 2) is invalid"),
    ],
)
def test_a_file_that_is_not_utf8_is_one_error_line_with_the_offset(tmp_path, content, where):
    path = tmp_path / "e9.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="not UTF-8 text") as exc:
        load_file(path)
    assert str(exc.value) == f"{path}: not UTF-8 text: {where}"
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: not UTF-8 text: ") and "Traceback" not in result.output


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    # what Windows Notepad writes at the start of a UTF-8 file; tomllib itself rejects it
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + PROJECT_FILE.read_bytes())
    assert load_file(path).names == load_file(PROJECT_FILE).names


@pytest.mark.parametrize("content", ["", "[defaults]\nppo = { n_envs = 8 }\n", "[budgets.smoke]\nppo = { n_envs = 8 }\n"])
def test_a_file_without_experiments_fails_the_check(tmp_path, host, content):
    path = tmp_path / "experiments.toml"
    path.write_text(content)
    ok, problems = check_all(load_file(path), host)
    assert ok == [] and problems == [("", "defines no experiments: add an [experiments.NAME] table (see docs/experiments.md)")]
    # the command line reads it layered over exitcore's shipped experiments, checked under it
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check"])
    assert result.exit_code == 0 and result.output.startswith(f"{path} (layered over exitcore's shipped "), result.output
    assert "4 experiments OK (v1, v2_exit_guards, v3, v4_no_lookahead)" in result.output


def test_a_split_broken_by_set_blames_the_override_and_names_each_value_s_origin(host):
    file = load_file(PROJECT_FILE)
    with pytest.raises(ConfigError) as exc:
        resolve(file, "v4", host, budget="smoke", overrides=["split.train=0.9"])
    assert exc.value.problems == [(
        "--set split.train",
        "expected train + validation + test <= 1, got 1.3 (train 0.9, validation 0, test 0.4); "
        "train from --set split.train=0.9, validation from defaults.split.validation, test from defaults.split.test",
    )]


def test_a_rule_across_fields_blames_the_value_written_last(tmp_path, host):
    path = tmp_path / "experiments.toml"
    path.write_text(
        "[defaults]\nsplit = { train = 0.7, test = 0.4 }\n"
        "[experiments.a]\nentry = { name = 'donchian' }\nfeatures = [{ name = 'position' }]\nrewards = [{ name = 'pnl' }]\n"
        "[experiments.b]\nextends = 'a'\nsplit = { validation = 0.1 }\nppo = { n_envs = 2, n_steps = 8, batch_size = 16 }\n"
    )
    file = load_file(path)
    with pytest.raises(ConfigError) as exc:
        resolve(file, "a", host)
    # every value from the same layer: the rule's own field, with the unset one named a default
    assert exc.value.problems == [("defaults.split.test", "expected train + validation + test <= 1, got 1.1 "
                                   "(train 0.7, validation 0, test 0.4); train from defaults.split.train, "
                                   "validation by default, test from defaults.split.test")]
    with pytest.raises(ConfigError) as exc:
        resolve(file, "b", host, overrides=["ppo.n_steps=4"])
    assert [p for p, _ in exc.value.problems] == ["--set ppo.n_steps", "experiments.b.split.validation"]
    assert "expected at most n_envs x n_steps = 2 x 4 = 8, got 16; batch_size from experiments.b.ppo.batch_size, " \
           "n_envs from experiments.b.ppo.n_envs, n_steps from --set ppo.n_steps=4" in str(exc.value)


def test_values_written_together_are_blamed_on_the_rule_s_own_field(tmp_path, host):
    path = tmp_path / "experiments.toml"
    path.write_text("[experiments.a]\nentry = { name = 'donchian' }\nfeatures = [{ name = 'position' }]\n"
                    "rewards = [{ name = 'pnl' }]\nppo = { n_steps = 8, n_envs = 2, batch_size = 32 }\n")
    with pytest.raises(ConfigError) as exc:
        resolve(load_file(path), "a", host)
    assert [p for p, _ in exc.value.problems] == ["experiments.a.ppo.batch_size"]


def test_list_marks_an_experiment_whose_extends_is_broken_and_exits_2(tmp_path):
    """`list` exited 0 and listed an experiment extending an unknown one, which `show` and
    `check` refuse: it now marks it, says why on stderr and exits 2, as they do."""
    path = tmp_path / "experiments.toml"
    path.write_text('[experiments.fine]\ndescription = "ok"\n[experiments.mine]\nextends = "v4_no_lookahed"\n'
                    '[experiments.x]\nextends = "y"\n[experiments.y]\nextends = "x"\n')
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "list"])
    assert result.exit_code == 2, result.output
    rows = {line[3:].split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}  # "!! " or "   " first
    assert rows["mine"].startswith("!! mine") and rows["x"].startswith("!! x") and rows["fine"].startswith("   fine")
    assert f"{path}:4: experiments.mine.extends: unknown experiment 'v4_no_lookahed'" in result.stderr
    assert result.stderr.count("extends cycle") == 1  # met from x and from y: reported once


def test_every_bad_budget_is_reported_not_only_the_first(tmp_path):
    """check stopped at the first bad budget: bbb's and ccc's problems were never shown."""
    mine = tmp_path / "experiments.toml"
    mine.write_text("[budgets.aaa]\nppo = {n_env = 4}\n[budgets.bbb]\nppo = {gamma = 5}\n"
                    "[budgets.ccc]\neval = {confidence = 2}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--experiments", str(mine), "experiments", "check"])
    assert result.exit_code == 2, result.output
    for where in ("budgets.aaa.ppo.n_env (with budget 'aaa'): unknown key 'n_env'",
                  "budgets.bbb.ppo.gamma (with budget 'bbb'): expected a number between 0 and 1",
                  "budgets.ccc.eval.confidence (with budget 'ccc'): expected a number strictly between 0 and 1"):
        assert result.output.count(where) == 1, result.output  # once, though every experiment meets it


def test_a_budget_is_checked_even_when_the_defaults_are_broken(tmp_path):
    mine = tmp_path / "experiments.toml"
    mine.write_text("[defaults.ppo]\nn_epochs = 0\n[budgets.bbb]\nppo = {gamma = 5}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--experiments", str(mine), "experiments", "check"])
    assert result.exit_code == 2
    assert "defaults.ppo.n_epochs: expected a positive integer" in result.output
    assert "budgets.bbb.ppo.gamma (with budget 'bbb')" in result.output
    # the defaults' problem is not repeated once per budget
    assert "n_epochs (with budget" not in result.output


@pytest.mark.parametrize("table", ['[experiments.""]\nextends = "v1"\n', '[experiments."  "]\nextends = "v1"\n'])
def test_an_experiment_without_a_name_is_one_error_line(tmp_path, table):
    """`experiments check` and `show ""` crashed with a FieldError traceback."""
    mine = tmp_path / "experiments.toml"
    mine.write_text(table, encoding="utf-8")
    for args in (["experiments", "check"], ["experiments", "list"], ["experiments", "show", ""]):
        result = CliRunner().invoke(cli, ["--experiments", str(mine), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "an experiment needs a name that is not empty or blank" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args", [["run", "v4", "--seed", str(2**63)], ["audit", "v4", "--seed", str(2**64)],
                                  ["experiments", "show", "v4", "--set", f"ppo.seed={2**64}"]])
def test_a_seed_beyond_64_bits_is_refused_before_anything_starts(tmp_path, args):
    """`run --seed 2**63` crashed in the registry (SQLite INTEGER), 2**64 in torch.manual_seed."""
    result = CliRunner().invoke(cli, [*args, *(["--runs-dir", str(tmp_path / "runs")] if args[0] == "run" else [])])
    assert result.exit_code == 2, result.output
    assert "9223372036854775807" in result.output or "[0, 2**63 - 1]" in result.output
    assert not (tmp_path / "runs").exists()


def test_the_largest_seed_is_accepted(host):
    from exitcore.experiments import load_experiments

    resolved = resolve(load_experiments(PROJECT_FILE), "v4_no_lookahead", host, overrides=[f"ppo.seed={2**63 - 1}"])
    assert resolved.config.ppo.seed == 2**63 - 1


@pytest.mark.parametrize("key, meant", [("lr", "learning_rate"), ("ent_coef", "entropy_coef_start"),
                                        ("clip_range", "clip_coef"), ("learning_rat", "learning_rate")])
def test_a_set_error_names_the_command_line_and_suggests_the_key_meant(key, meant):
    """`--set ppo.learning_rat=...` was blamed on the shipped experiments.toml, and sb3's names
    (`lr`, `ent_coef`) got no suggestion or a wrong one (`vf_coef`)."""
    result = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", f"ppo.{key}=0.1"])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --set ppo.{key}: unknown key {key!r} (did you mean {meant!r}?)"), result.output


def test_a_time_stop_longer_than_any_trade_could_be_is_refused_at_its_key():
    """env.max_bars=99999999999 failed in the regret reward's build (800 GB), naming the reward."""
    result = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "env.max_bars=99999999999"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --set env.max_bars: expected an integer from 1 to 100,000, got 99999999999")


# --------------------------------------------------------------------------- a user trial's findings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


def test_check_build_cuts_the_splits_as_run_does(tmp_path):
    """`check --build` said OK for an experiment whose test split is empty (train_end after the
    data), which `run` refused at once: it now cuts the splits as a run does, names the key
    where it was written and exits 2."""
    path = _write(tmp_path, '[experiments.late]\nextends = "v4_no_lookahead"\n'
                            'data = { source = "synthetic", params = { years = 0.1 } }\n'
                            '[experiments.late.split]\ntrain_end = "2100-01-01"\n')
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check", "--build"])
    assert result.exit_code == 2, result.output
    assert "experiments OK" not in result.output
    assert result.output.splitlines()[-1] == (
        f"error: {path}:5: experiments.late.split.train_end: the test split is empty: 2100-01-01 is after the last "
        "bar (2015-02-10 12:30 UTC; the data has 2,547 bars, from 2015-01-05 00:00); use an earlier date or more data")


def test_too_few_trades_says_when_most_closed_on_their_entry_bar(tmp_path):
    """Trial Y: an entry whose stops sit inside the entry bar's range left "0 usable trades" and
    advice about more data, with no word that every trade closed on its entry bar."""
    result = CliRunner().invoke(cli, ["run", "v4", "--budget", "smoke", "--set", "entry.params.stop_atr=0.0001",
                                      "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 2, result.output
    assert ("split.train: 0 usable trades, but at least 16 are needed (ppo.n_envs = 16; 3,645 of its 3,645 trades "
            "closed on their entry bar, leaving no decision: a stop or target inside the entry bar's range (too "
            "tight for these bars?))") in result.output, result.output


def test_check_build_names_a_key_written_elsewhere_once_and_keeps_a_hint_on_its_error(tmp_path):
    """A split date from [defaults] read 'FILE: experiments.v1: FILE: defaults.split.train_end: ...'
    (two files), and the trade-count error's hint line came out as an error of its own (review Z)."""
    path = _write(tmp_path, '[defaults]\nsplit = { train_end = "2100-01-01" }\n[experiments.late]\nextends = "v4_no_lookahead"\n'
                            'data = { source = "synthetic", params = { years = 0.1 } }\n')
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check", "--build"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert errors[-1] == (
        f"error: {path}:2: defaults.split.train_end: the test split is empty: 2100-01-01 is after the last bar "
        "(2015-02-10 12:30 UTC; the data has 2,547 bars, from 2015-01-05 00:00); use an earlier date or more data "
        "(experiment late)")
    assert all(line.count(".toml:") == 1 for line in errors), errors
    path = _write(tmp_path, '[experiments.few]\nextends = "v4_no_lookahead"\n'
                            'data = { source = "synthetic", params = { years = 0.1 } }\n')
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check", "--build"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-2:] == [
        f"error: {path}:1: experiments.few: split.train: 118 usable trades, but at least 256 are needed (ppo.n_envs = 256)",
        # trial AB: the quickest fix, fewer environments, was not offered
        "use more data, give the split a larger share, fewer environments (--set ppo.n_envs=64), or an entry strategy "
        "that trades more often than entry strategy 'donchian' from entries (exitcore-entries 0.1.0)"]


@pytest.mark.parametrize("date, words", [
    ("2100-01-01", "the test split is empty: 2100-01-01 is after the last bar (2015-01-23 06:15 UTC; "
                   "the data has 1,370 bars, from 2015-01-05 00:00); use an earlier date or more data"),
    ("2014-06-01", "the train split is empty: 2014-06-01 is before the first bar (2015-01-05 00:00 UTC; "
                   "the data has 1,370 bars, to 2015-01-23 06:15); use a later date or more data"),
])
def test_a_split_date_outside_the_data_says_so_at_its_origin(date, words):
    """`split.train_end` outside the data was `the split would cover bars 52023..51910` (or
    `0..-1`), named `split.train_end` whatever set it: now where it lies against the bars, at
    `--set split.train_end` as any other error of a --set value."""
    result = CliRunner().invoke(cli, ["data", "inspect", "synthetic?years=0.05", "-e", "v4",
                                      "--set", f"split.train_end={date}"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == f"error: --set split.train_end: {words}"


def test_a_split_date_in_the_file_is_named_at_its_toml_path(tmp_path, host):
    from exitcore.data.splits import make_splits
    from exitcore.errors import DataError
    from exitcore.experiments import load_experiments
    import pandas as pd

    path = _write(tmp_path, '[experiments.late]\nextends = "v4_no_lookahead"\nsplit = { train_end = "2100-01-01" }\n')
    resolved = resolve(load_experiments(path), "late", host)
    index = pd.date_range("2015-01-05", periods=1000, freq="15min", tz="UTC")
    with pytest.raises(DataError) as exc:
        make_splits(index, resolved.config.split, 112, origins=resolved.split_origins)
    assert str(exc.value).startswith(f"{path}:3: experiments.late.split.train_end: the test split is empty: "
                                     "2100-01-01 is after the last bar (2015-01-15 09:45 UTC;")
    # without the origins (a split no experiment resolved, a test's own) the bare key
    from exitcore.config import SplitConfig

    with pytest.raises(DataError, match=r"^split\.train_end: the test split is empty: 2100-01-01 is after"):
        make_splits(index, SplitConfig(train_end="2100-01-01"), 112)


def _checked(tmp_path, text: str) -> tuple[Path, str]:
    """``experiments check`` of a file holding ``text``, refused (exit 2): the file and the output."""
    path = _write(tmp_path, text)
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check"])
    assert result.exit_code == 2, result.output
    return path, result.output


def test_a_misspelt_extends_is_suggested_without_its_knock_on_errors(tmp_path):
    """`extend = "v4_no_lookahead"` listed the allowed keys without `extends`, gave no "did you
    mean", and went on to say the experiment had no reward term (it inherited none)."""
    path, output = _checked(tmp_path, '[experiments.x]\nextend = "v4_no_lookahead"\n')
    assert output == (
        f"error: {path}:2: experiments.x.extend: unknown key 'extend' (did you mean 'extends'?); allowed: description, "
        "assumptions, extends, data, env, costs, ppo, split, eval, entry, features, rewards, guards, masks\n")


def test_another_unknown_key_keeps_its_knock_on_errors(tmp_path):
    path, output = _checked(tmp_path, '[experiments.x]\nfoo = 1\n')
    assert output == (
        f"error: {path}:2: experiments.x.foo: unknown key 'foo'; allowed: description, assumptions, extends, data, env, "
        "costs, ppo, split, eval, entry, features, rewards, guards, masks\n"
        f"error: {path}:1: experiments.x.rewards: an experiment needs at least one reward term\n")  # each line an error


def test_a_shipped_name_redefined_to_change_one_value_says_it_replaces_the_whole(tmp_path):
    """`[experiments.v4_no_lookahead.costs]` alone, meant as one override, only said the
    experiment had no reward term."""
    path, output = _checked(tmp_path, "[experiments.v4_no_lookahead.costs]\nspread_pips = 1.5\n")
    assert output == (
        f"error: {path}:1: experiments.v4_no_lookahead.rewards: an experiment needs at least one reward term; "
        "experiments.v4_no_lookahead replaces the shipped v4_no_lookahead whole (nothing is inherited): to change "
        'one value, define a new experiment with extends = "v4_no_lookahead"\n')


def test_a_wrong_value_a_budget_replaces_is_still_an_error_where_it_is_written(tmp_path, host):
    """`n_envs = "64"` in an experiment run with a budget setting n_envs trained and recorded a
    trial; the typo surfaced only on the first full run (trial W): every value a table writes
    is checked, replaced or not, and the run leaves nothing behind."""
    path = tmp_path / "experiments.toml"
    path.write_text('[experiments.x]\nextends = "v4_no_lookahead"\n'
                    '[experiments.x.ppo]\nn_envs = "64"\nhidden = "big"\ntotal_timesteps = -5\n')
    with pytest.raises(ConfigError) as exc:
        resolve(load_experiments(path), "x", host, budget="smoke")
    replaced = " (overridden by a later table, but wrong wherever it takes effect)"
    assert exc.value.problems == [
        ("experiments.x.ppo.n_envs", "expected an integer, got '64'" + replaced),
        ("experiments.x.ppo.hidden", "expected an array, got 'big'" + replaced),
        ("experiments.x.ppo.total_timesteps", "expected a positive integer, got -5" + replaced),
    ]
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["--experiments", str(path), "run", "x", "--budget", "smoke", "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.output
    assert f"error: {path}:4: experiments.x.ppo.n_envs: expected an integer, got '64'{replaced}" in result.output
    assert not runs.exists()


def test_a_wrong_default_every_experiment_replaces_is_reported_once(tmp_path):
    """A bad `[defaults]` value that every experiment sets again: `experiments check` said the
    file was fine (trial W); reported once, at the defaults."""
    path = tmp_path / "experiments.toml"
    path.write_text('[defaults.ppo]\nn_envs = "lots"\n\n[experiments.a]\nextends = "v4_no_lookahead"\n')
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check"])
    assert result.exit_code == 2, result.output
    assert result.output.count("defaults.ppo.n_envs") == 1
    # once too where one experiment replaces it and another takes it (review AG: twice, with and
    # without the note)
    path.write_text('[defaults.ppo]\nn_envs = "lots"\n\n[experiments.a]\nextends = "v4_no_lookahead"\n\n'
                    '[experiments.b]\nrewards = [{ name = "pnl" }]\nfeatures = [{ name = "position" }]\n')
    result = CliRunner().invoke(cli, ["--experiments", str(path), "experiments", "check"])
    assert result.exit_code == 2 and result.output.count("defaults.ppo.n_envs") == 1, result.output
    assert (f"error: {path}:2: defaults.ppo.n_envs: expected an integer, got 'lots' (overridden by a later table, but "
            "wrong wherever it takes effect)") in result.output


def test_a_replaced_value_is_checked_on_its_own_not_against_the_keys_beside_it(tmp_path, host):
    """Rules across keys hold for the merged configuration only: an experiment's n_steps = 1
    (with v4's 256 envs and batches of 8,192 it breaks batch_size <= n_envs x n_steps) is fine
    under a budget that sets n_steps, n_envs and batch_size again."""
    path = tmp_path / "experiments.toml"
    path.write_text('[experiments.y]\nextends = "v4_no_lookahead"\nppo = { n_steps = 1 }\n')
    assert resolve(load_experiments(path), "y", host, budget="smoke").config.ppo.n_steps == 32
    with pytest.raises(ConfigError, match="batch_size"):
        resolve(load_experiments(path), "y", host)
    # nor against the defaults beside it: [defaults] test = 0.7 breaks train + validation + test <= 1
    # with the default train of 0.6, but every experiment sets train again
    path.write_text('[defaults.split]\ntest = 0.7\nbatch = 1\n[defaults.ppo]\nbatch_size = 200000\n'
                    '[experiments.z]\nextends = "v4_no_lookahead"\nsplit = { train = 0.3, test = 0.7 }\n'
                    'ppo = { batch_size = 8192 }\n')
    with pytest.raises(ConfigError) as exc:  # the one real problem: an unknown key, where it is written
        resolve(load_experiments(path), "z", host)
    assert [p for p, _ in exc.value.problems] == ["defaults.split.batch"]


def test_common_value_slips_say_how_to_write_the_value(tmp_path):
    """Trial AB 13: `--set ppo.hidden=64,64`, `--set ppo.total_timesteps=1e6` and a reward's
    parameter written beside its name were refused without the spelling that works."""
    hidden = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "ppo.hidden=64,64"])
    assert hidden.exit_code == 2
    assert "error: --set ppo.hidden: expected an array, got '64,64'; write an array in brackets: [64,64]" in hidden.output
    steps = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "ppo.total_timesteps=1e6"])
    assert ("error: --set ppo.total_timesteps: expected an integer, got 1000000.0; write a whole number as 1_000_000 "
            "(TOML reads a number with an exponent or a point as a float)") in steps.output
    path, output = _checked(tmp_path, '[experiments.x]\nextends = "v4_no_lookahead"\n'
                                      'rewards = [{ name = "time_penalty", time_coef = 0.004 }]\n')
    assert output == (f"error: {path}:3: experiments.x.rewards[0].time_coef: unknown key 'time_coef'; allowed: name, "
                      "params, weight; a component's own parameters go in its params table: params = { time_coef = ... }\n")


def test_the_fewer_environments_advice_is_a_setting_that_validates():
    """Review AJ 7: with the smoke budget (32 steps, batch 256) `--set ppo.n_envs=4` alone was
    refused at once (batch_size > n_envs x n_steps)."""
    from exitcore.config import PPOConfig
    from exitcore.data.splits import require_trades
    from exitcore.errors import DataError

    smoke = PPOConfig(n_envs=16, n_steps=32, batch_size=256)
    with pytest.raises(DataError) as exc:
        require_trades({"train": 5}, {"train": 16}, {"train": "ppo.n_envs = 16"}, ppo=smoke)
    assert "fewer environments (--set ppo.n_envs=4 --set ppo.batch_size=128), or an entry strategy" in str(exc.value)
    shown = CliRunner().invoke(cli, ["experiments", "show", "v4", "--budget", "smoke", "--set", "ppo.n_envs=4",
                                     "--set", "ppo.batch_size=128"])
    assert shown.exit_code == 0, shown.output
    with pytest.raises(DataError, match=r"fewer environments \(--set ppo.n_envs=64\), or"):  # the batch fits
        require_trades({"train": 118}, {"train": 256}, {"train": "ppo.n_envs = 256"},
                       ppo=PPOConfig(n_envs=256, n_steps=2048, batch_size=8192))


def test_overrides_from_python_take_a_dict_and_refuse_a_lone_string(host):
    """Trial AC 7: `overrides="ppo.n_envs=8"` was read one character at a time (`--set p: expected
    KEY=VALUE`) and a dict by its keys alone."""
    file = load_experiments(SHIPPED_FILE)
    resolved = resolve(file, "v4", host, budget="smoke",
                       overrides={"ppo.n_envs": 8, "ppo.hidden": [64, 64], "costs.spread_pips": 1.5, "ppo.device": "cpu"})
    assert (resolved.config.ppo.n_envs, resolved.config.ppo.hidden, resolved.config.costs.spread_pips) == (8, [64, 64], 1.5)
    with pytest.raises(TypeError, match="got the string 'ppo.n_envs=8': wrap it in a list"):
        resolve(file, "v4", host, overrides="ppo.n_envs=8")
    with pytest.raises(TypeError, match=r"overrides\['ppo'\]: .* give a table's keys one by one \(ppo.KEY\)"):
        resolve(file, "v4", host, overrides={"ppo": {"n_envs": 8}})
    # and a run's request from Python the same way (review AK)
    from exitcore.runner import RunRequest

    assert RunRequest(overrides={"ppo.n_envs": 8, "ppo.hidden": [64, 64], "ppo.device": "cpu", "ppo.norm_adv": False}
                      ).overrides == ("ppo.n_envs=8", "ppo.hidden=[64, 64]", 'ppo.device="cpu"', "ppo.norm_adv=false")
    with pytest.raises(TypeError, match="wrap it in a list"):
        RunRequest(overrides="ppo.n_envs=8")
