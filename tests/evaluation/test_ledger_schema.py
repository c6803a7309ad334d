"""The ledger contract: columns, validation messages, action letters, file round trips."""

from __future__ import annotations

import pandas as pd
import pytest

from exitcore.actions import Action
from exitcore.errors import DataError, ExitcoreError
from exitcore.evaluation.ledger_schema import (
    ACTION_LETTERS,
    LEDGER_COLUMNS,
    LEDGER_EXIT_REASONS,
    LedgerError,
    decode_actions,
    empty_ledger,
    encode_actions,
    read_ledger,
    validate_ledger,
    write_ledger,
)
from exitcore.timeline import ExitReason


def test_action_letters_cover_the_action_enum_with_distinct_letters():
    assert set(ACTION_LETTERS) == set(Action)
    assert len(set(ACTION_LETTERS.values())) == len(Action)
    assert encode_actions([Action.HOLD, Action.HOLD, Action.TRAIL_BE, Action.EXIT]) == "HHBE"
    assert encode_actions([2, 4]) == "TP"
    expected = [Action.HOLD, Action.TIGHTEN_SL, Action.TRAIL_BE, Action.PARTIAL_EXIT, Action.EXIT]
    assert decode_actions("HTBPE") == expected
    assert decode_actions("") == []
    with pytest.raises(ValueError, match="not an action letter: 'X'"):
        decode_actions("HX")
    with pytest.raises(ValueError, match="not an action id"):
        encode_actions([7])


def test_exit_reasons_are_the_timeline_names_without_open():
    assert set(LEDGER_EXIT_REASONS) == {name.lower() for name in ExitReason.names} - {"open"}


def test_valid_ledger_passes_and_errors_are_user_errors(make_ledger):
    validate_ledger(make_ledger([0.01, -0.02]))
    validate_ledger(empty_ledger())
    assert issubclass(LedgerError, DataError) and issubclass(LedgerError, ExitcoreError)


def test_missing_and_mistyped_columns_are_named(make_ledger):
    df = make_ledger([0.01, -0.02]).drop(columns=["pnl_ccy", "actions"])
    df["bars_held"] = df["bars_held"].astype(float)
    df["exit_time"] = df["exit_time"].dt.tz_localize(None)
    with pytest.raises(LedgerError) as err:
        validate_ledger(df)
    msg = str(err.value)
    assert "missing columns: actions, pnl_ccy" in msg
    assert "'bars_held' has dtype float64, expected integers" in msg
    assert "'exit_time'" in msg and "UTC timestamps" in msg


def test_non_utc_timestamps_are_rejected(make_ledger):
    df = make_ledger([0.01])
    df["entry_time"] = df["entry_time"].dt.tz_convert("Europe/London")
    with pytest.raises(LedgerError, match="'entry_time'"):
        validate_ledger(df)


def test_not_a_dataframe():
    with pytest.raises(LedgerError, match="pandas DataFrame, got dict"):
        validate_ledger({})


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("split", "holdout", "split must be one of train, validation, test"),
        ("exit_reason", "open", "exit_reason must be one of agent"),
        ("direction", 0, "direction must be +1 or -1"),
        ("bars_held", 0, "bars_held must be >= 1"),
        ("blocked", 4, "blocked must lie in [0, n_decisions]"),
        ("actions", "HHX", "actions may contain only the letters HETBP"),
        ("actions", "HH", "len(actions) must equal n_decisions"),
        ("pnl", 0.5, "pnl must equal pnl_gross - cost"),
        ("pnl_ccy", float("nan"), "pnl_ccy must be finite"),
        ("partials", -1, "stop_moves and partials must be >= 0"),
    ],
)
def test_value_problems_name_the_rule_and_the_row(make_ledger, column, value, message):
    df = make_ledger([0.01, -0.02, 0.003])
    df.loc[1, column] = value
    with pytest.raises(LedgerError) as err:
        validate_ledger(df)
    assert message in str(err.value)
    assert "rows [1]" in str(err.value)


def test_exit_before_entry_is_rejected(make_ledger):
    df = make_ledger([0.01])
    df["exit_time"] = df["entry_time"] - pd.Timedelta(minutes=1)
    with pytest.raises(LedgerError, match="exit_time must not precede entry_time"):
        validate_ledger(df)


def test_executed_column_must_differ_only_where_blocked(make_ledger):
    df = make_ledger([0.01, 0.02], actions=["EHE", "HHP"], blocked=[1, 0], executed=["HHE", "HHP"])
    validate_ledger(df)
    bad = df.copy()
    bad.loc[1, "executed"] = "HHE"  # P executed as E: a guard never does that
    with pytest.raises(LedgerError, match="executed must equal actions"):
        validate_ledger(bad)
    uncounted = df.copy()
    uncounted.loc[0, "blocked"] = 0  # the difference is not counted in `blocked`
    with pytest.raises(LedgerError, match="executed must equal actions"):
        validate_ledger(uncounted)
    # executed as sampled, yet counted blocked: the rows compared at once must still catch it
    phantom = df.copy()
    phantom.loc[1, "blocked"] = 1
    with pytest.raises(LedgerError, match=r"executed must equal actions .*rows \[1\]"):
        validate_ledger(phantom)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip_keeps_types_and_empty_action_strings(make_ledger, tmp_path, suffix):
    df = make_ledger(
        [0.01, -0.02, 0.0],
        actions=["", "HB", "T"],
        bars_held=[1, 3, 2],
        ambiguous=[True, False, False],
        executed=["", "HB", "T"],
    )
    df.loc[1, "exit_time"] = df.loc[1, "exit_time"] + pd.Timedelta(microseconds=5)
    path = write_ledger(df, tmp_path / f"ledger{suffix}")
    back = read_ledger(path)
    assert list(back.columns) == list(df.columns)
    assert back["actions"].tolist() == ["", "HB", "T"]
    assert back["exit_time"].tolist() == df["exit_time"].tolist()
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    # dtypes too: under pandas 3 a CSV's times came back in microseconds ([us, UTC], not [ns, UTC])
    assert back.equals(df) and all(back[c].dtype == df[c].dtype for c in df.columns), back.dtypes
    for name, col in LEDGER_COLUMNS.items():
        assert (col.kind == "time") == isinstance(back[name].dtype, pd.DatetimeTZDtype), name


def test_csv_times_are_written_as_pandas_writes_them(make_ledger, tmp_path):
    """The CSV's times are formatted by numpy (pandas formats each value in Python: 10-15 s of
    a 230,000-row M1 ledger); the bytes are pandas' own, nanoseconds cut to microseconds,
    a missing time empty, a column in another zone with its own offset."""
    df = make_ledger([0.01, -0.02, 0.0, 0.03], bars_held=[1, 3, 2, 4])
    df.loc[1, "exit_time"] = df.loc[1, "exit_time"] + pd.Timedelta(nanoseconds=123_456_789)
    df["review_time"] = df["entry_time"].dt.tz_convert("Europe/Berlin")  # an extra column, not UTC
    df["checked_at"] = df["exit_time"].where(df.index != 2)  # NaT in an extra column
    path = write_ledger(df, tmp_path / "ledger.csv")
    assert path.read_bytes() == df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%f%z").encode()
    assert "+0100" in path.read_text() or "+0200" in path.read_text()


def test_reading_a_broken_file_names_the_file(tmp_path, make_ledger):
    path = tmp_path / "ledger.csv"
    make_ledger([0.01]).drop(columns=["cost"]).to_csv(path, index=False)
    with pytest.raises(LedgerError, match=r"ledger\.csv: invalid ledger: missing columns: cost"):
        read_ledger(path)
    with pytest.raises(LedgerError, match="cannot read ledger"):
        read_ledger(tmp_path / "absent.csv")


def test_writing_an_invalid_ledger_is_refused(tmp_path, make_ledger):
    df = make_ledger([0.01])
    df.loc[0, "bars_held"] = 0
    with pytest.raises(LedgerError):
        write_ledger(df, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_missing_strings_in_a_file_are_reported_not_turned_into_text(tmp_path, make_ledger):
    path = tmp_path / "ledger.csv"
    df = make_ledger([0.01, 0.02])
    df.loc[1, "policy"] = None
    df.to_csv(path, index=False)
    with pytest.raises(LedgerError, match="column 'policy' has dtype .*strings \\(no missing values\\)"):
        read_ledger(path)
