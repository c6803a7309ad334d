"""``exitcore audit --split S`` where the experiment makes no split S: said so, before any data
is loaded, with the splits it does make (it used to read "no trades to audit")."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.config import SplitConfig
from exitcore.data.splits import split_names


@pytest.mark.parametrize(
    "split, names",
    [
        (SplitConfig(), ("train", "test")),
        (SplitConfig(train=0.6, validation=0.2, test=0.2), ("train", "validation", "test")),
        # dates win over fractions: validation exists only with validation_end
        (SplitConfig(validation=0.2, test=0.2, train_end="2016-01-01"), ("train", "test")),
        (SplitConfig(train_end="2016-01-01", validation_end="2016-06-01"), ("train", "validation", "test")),
    ],
)
def test_split_names(split, names):
    assert split_names(split) == names


def test_auditing_a_split_the_experiment_does_not_make_says_so(tmp_path):
    result = CliRunner().invoke(cli, ["audit", "v4", "--split", "validation"])
    assert result.exit_code == 2, result.output
    assert result.output == ("error: --split validation: the validation split is empty in this experiment "
                             "(split.validation = 0); its splits are train and test\n")
    dated = CliRunner().invoke(cli, ["audit", "v4", "--split", "validation", "--set", "split.train_end=2016-06-01"])
    assert dated.exit_code == 2 and "(split.validation_end is not set); its splits are train and test" in dated.output


def test_auditing_a_run_on_a_split_it_does_not_make_says_so(finished_run):
    run_dir = finished_run["results"].paths[0].parent
    result = CliRunner().invoke(cli, ["audit", str(run_dir), "--split", "validation"])
    assert result.exit_code == 2, result.output
    assert "the validation split is empty in this experiment (split.validation = 0); its splits are train and test" in result.output
