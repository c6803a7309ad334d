"""Configuration errors name the line of the key they are about (exitcore.toml_lines)."""

from __future__ import annotations

import tomllib

import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.experiments import SHIPPED_FILE
from exitcore.toml_lines import key_lines, line_of, parse_path

TRICKY = '''\
# [not.a.table] in a comment, key = 1
title = """
[inside.a.string]
fake = 1
"""  # and a comment after it
literal = \'\'\'
[also.inside] = "x" \'\'\'
"quoted.key" = 'it s'
escaped = "a \\" [b] = c"

[experiments.v5]
extends = "v4_no_lookahead"
rewards = [
  { name = "pnl" },  # first
  { name = "time_penalty", params = { time_coef = 0.005, nested = { deep = [1, 2] } } },
]

[experiments.v5.ppo]
n_envs = 64
hidden = [
  64,
  64,
]
env.max_bars = 12

[[defaults.features]]
name = "position"
[[defaults.features]]
name = "price_window"
params = { window = 16 }
'''


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_every_key_of_a_tricky_file_is_placed_and_nothing_inside_strings_is():
    tomllib.loads(TRICKY)  # valid TOML: the scanner is only used on such files
    lines = key_lines(TRICKY)
    expect = {
        "title": 'title = """', "literal": "literal = ", '"quoted.key"': '"quoted.key"', "escaped": "escaped = ",
        "experiments.v5": "[experiments.v5]", "experiments.v5.extends": "extends = ",
        "experiments.v5.rewards": "rewards = [", "experiments.v5.rewards[0].name": '{ name = "pnl" }',
        "experiments.v5.rewards[1]": '{ name = "time_penalty"', "experiments.v5.rewards[1].params.time_coef": "time_coef",
        "experiments.v5.rewards[1].params.nested.deep": "deep", "experiments.v5.ppo.n_envs": "n_envs",
        "experiments.v5.ppo.hidden[1]": "  64,\n  64,", "experiments.v5.ppo.env.max_bars": "env.max_bars",
        "defaults.features[0].name": 'name = "position"', "defaults.features[1].params.window": "window = 16",
    }
    for path, needle in expect.items():
        want = _line(TRICKY, needle.split("\n")[0]) + needle.count("\n")
        assert lines.get(parse_path(path)) == want, path
    assert not any(part in ("inside", "also", "not", "fake", "b") for key in lines for part in key)


def test_every_leaf_of_the_shipped_experiments_is_placed_on_a_line_naming_it():
    text = SHIPPED_FILE.read_text(encoding="utf-8")
    rows = text.splitlines()
    lines = key_lines(text)

    def leaves(value, path):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from leaves(v, (*path, k))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, v in enumerate(value):
                yield from leaves(v, (*path, i))
        else:
            yield path

    found = list(leaves(tomllib.loads(text), ()))
    assert len(found) > 50
    for path in found:
        assert path in lines, path
        assert str(path[-1]) in rows[lines[path] - 1], (path, rows[lines[path] - 1])


def test_a_missing_key_points_at_its_table_and_unknown_places_at_nothing(tmp_path):
    file = tmp_path / "experiments.toml"
    file.write_text(TRICKY)
    assert line_of(file, "experiments.v5.guards") == _line(TRICKY, "[experiments.v5]")
    assert line_of(file, "experiments.v9.ppo.n_envs") is None  # not the first word alone
    assert line_of(tmp_path / "gone.toml", "experiments.v5") is None


@pytest.mark.parametrize("layered", [False, True])
def test_a_configuration_error_names_file_line_and_key(tmp_path, layered):
    file = tmp_path / "experiments.toml"
    file.write_text('[experiments.v5]\nextends = "v4_no_lookahead"\n\n[experiments.v5.ppo]\nn_envs = 64\n'
                    'learning_rate = "fast"\n')
    args = ["--experiments", str(file), "experiments", "check"] if layered else ["experiments", "check"]
    out = CliRunner().invoke(cli, args, env={"EXITCORE_EXPERIMENTS": str(file)})
    assert out.exit_code == 2
    assert f"{file}:6: experiments.v5.ppo.learning_rate: expected a number, got 'fast'" in out.output, out.output


def test_a_key_under_a_located_table_gets_its_own_line(tmp_path):
    """Errors found when the data is read start at the data table (`FILE:1: defaults.data`) and
    add the key (`.params.timezone`): the line is the key's, where it is written."""
    from exitcore.toml_lines import deeper, file_key

    file = tmp_path / "mine.toml"
    file.write_text("[defaults.data]\nsource = 'auto'\nparams = { path = 'x.csv' }\n")
    table = file_key(file, "defaults.data")
    assert table == f"{file}:1: defaults.data"
    assert deeper(table, "params.path") == f"{file}:3: defaults.data.params.path"
    assert deeper(table, "params.timezone") == f"{file}:3: defaults.data.params.timezone"  # left out: its table
    assert deeper("SOURCE", "timezone") == "SOURCE.timezone" and deeper("data", "params.path") == "data.params.path"


def test_quoted_dotted_names_arrays_of_tables_and_late_headers_get_their_own_lines(tmp_path):
    """Review AJ 4-5: `experiments."v5.1"` was placed at `[experiments.v5]` (error paths do not
    quote names); `[a.b]` under `[[a]]` at the `[[a]]` line; `[x]` after `[x.y]` at `[x.y]`."""
    text = ('[experiments.v5]\nextends = "v4"\n\n'                                   # 1-3
            '[experiments."v5.1".ppo]\nn_envs = "x"\n\n'                            # 4-6
            '[[experiments.v6.features]]\nname = "position"\n'                      # 7-8
            '[[experiments.v6.features]]\nname = "price_window"\n'                  # 9-10
            '[experiments.v6.features.params]\nwindow = -3\n'                       # 11-12
            '[[f]]\n[[f.v]]\na = 1\n[[f]]\n[[f.v]]\nb = 2\n'                        # 13-18
            '[x.y]\nz = 1\n[x]\nw = 2\n')                                           # 19-22
    tomllib.loads(text)
    file = tmp_path / "e.toml"
    file.write_text(text)
    assert line_of(file, "experiments.v5.1.ppo.n_envs") == 5
    assert line_of(file, "experiments.v6.features[1].params.window") == 12
    assert line_of(file, "experiments.v6.features[1].params") == 11
    assert line_of(file, "experiments.v6.features[0].name") == 8
    lines = key_lines(text)
    assert lines[parse_path("f[0].v[0].a")] == 15 and lines[parse_path("f[1].v[0].b")] == 18  # counted per parent
    assert line_of(file, "x.w") == 22 and line_of(file, "x") == 21 and line_of(file, "x.y.z") == 20


def test_a_pipe_is_not_read_again_for_a_line(tmp_path, monkeypatch):
    """Review AJ 10: `--experiments /dev/stdin` (or a named pipe) was read again to find a line:
    nothing there, or a block where no writer is."""
    import os

    import exitcore.toml_lines as toml_lines

    def no_read(*args):  # a read of the pipe would block here: fail instead
        raise AssertionError("the pipe was read again")

    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    monkeypatch.setattr(toml_lines, "_lines_of_file", no_read)
    assert line_of(fifo, "experiments.v5.ppo") is None
