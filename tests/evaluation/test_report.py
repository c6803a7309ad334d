"""``exitcore report``: a run's results rendered from its directory, in text and Markdown."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner
from evalkit import one_torch_thread  # noqa: F401 - autouse fixture

from exitcore.cli import cli
from exitcore.evaluation.report import render_report, summary_text
from exitcore.evaluation.rundir import read_results
from exitcore.registry import Registry


def _run_dir(finished_run):
    return finished_run["results"].paths[0].parent


def test_text_report_shows_rl_vs_baselines_significance_audit_and_in_sample(finished_run):
    text = render_report(_run_dir(finished_run))
    results = read_results(_run_dir(finished_run))
    best = results["best_baseline"]["name"]
    assert "RL vs baselines on TEST (out-of-sample)" in text
    table = text[text.index("RL vs baselines"): text.index("Significance")]
    for policy in results["policies"]:
        assert f"\n{policy}" in table
    assert f"{best} *" in table and "Sharpe [CI]" in table and "best baseline, chosen on the training split" in table
    rl_sharpe = results["evaluators"]["significance"]["intervals"]["rl"]["sharpe"]
    assert f"{rl_sharpe['estimate']:.2f} [{rl_sharpe['low']:.2f}, {rl_sharpe['high']:.2f}]" in table
    assert "deflated Sharpe ratio" in text and "trials N" in text and "3 (test registry)" in text
    assert "RL - best baseline (chosen on train)" in text and f"{best}: Sharpe" in text
    assert "look-ahead audit of v4_no_lookahead on TEST (out-of-sample): PASS" in text
    in_sample = text[text.index("In-sample"):]
    assert "TRAIN (in-sample)" in in_sample and "rl [in-sample]" in in_sample and "baseline selection" in in_sample
    assert "[CI]" not in in_sample  # point values only: no title promises an interval
    assert "Significance: TEST (out-of-sample)" in text
    info = finished_run["info"]
    assert f"hash {info['data']['hash']}" in text and "timesteps    512" in text and "device       cpu" in text
    assert "price_window(window=16)" in text and "min_exit_bar(n=3)" in text and "train split" in text
    # one time format in the whole run section (it mixed "T" and " " ISO forms)
    run_section = text[: text.index("Look-ahead audit")]
    assert re.search(r"test split +\d{4}-\d\d-\d\d \d\d:\d\d UTC \.\. \d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+ trades, ", run_section)
    assert "+00:00" not in run_section


def test_the_report_counts_each_policy_s_ambiguous_exit_bars(finished_run):
    """design.md: a bar touching both stop and target takes the stop, and the number of such
    bars is reported; it was only in results.json and the ledgers (trial W)."""
    import pandas as pd

    text = render_report(_run_dir(finished_run))
    table = text[text.index("RL vs baselines"): text.index("Significance")]
    header = next(line for line in table.splitlines() if line.startswith("policy"))
    titles = re.split(r"\s{2,}", header.strip())
    assert "ambiguous" in titles and "booked at the stop (the worse of the two)" in table
    ledger = pd.read_csv(_run_dir(finished_run) / "ledger_test.csv")
    counts = ledger.groupby("policy")["ambiguous"].sum()
    assert counts.sum() > 0  # the check below must see a non-zero count
    column = titles.index("ambiguous")
    for line in table.splitlines():
        policy = line.split(" ")[0]
        if policy in counts.index and not line.startswith("policy"):
            cells = re.split(r"\s{2,}", line.replace(" *", "").strip())
            assert cells[column] == str(int(counts[policy])), line


def test_markdown_report(finished_run):
    md = render_report(_run_dir(finished_run), "markdown")
    assert md.startswith("# exitcore report: ") and "## RL vs baselines on TEST (out-of-sample)" in md
    assert "| policy | trades | win % [CI] |" in md and "|---|---:|" in md
    assert "```\nlook-ahead audit of" in md and "## In-sample: TRAIN (in-sample)" in md
    # the note that keys the table's `*` is a paragraph, not a list item that swallows the `*`
    assert "\n\\* best baseline, chosen on the training split" in md and "\n* best baseline" not in md
    assert "\n\n\n" not in md.split("```")[0]  # one blank line between blocks (trial AB: two after the title)


def test_report_command_by_run_id_writes_markdown_atomically(finished_run, tmp_path):
    runs = tmp_path / "runs"
    with Registry(runs) as registry:
        run_id = registry.create_run("v4_no_lookahead", "cfg", finished_run["info"]["data"]["hash"],
                                     run_dir=_run_dir(finished_run))
        registry.mark_running(run_id)
        registry.mark_done(run_id, {})
        running = registry.create_run("v4_no_lookahead", "cfg2", "data", run_dir=tmp_path / "elsewhere")
        registry.mark_running(running)
    runner = CliRunner()
    out = tmp_path / "out" / "report.md"
    out.parent.mkdir()  # report --out creates no folder, as data synth --out
    prefix = run_id[:-1] if not running.startswith(run_id[:-1]) else run_id  # a unique prefix names the run
    result = runner.invoke(cli, ["report", prefix, "--runs-dir", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# exitcore report") and [p.name for p in out.parent.iterdir()] == ["report.md"]
    printed = runner.invoke(cli, ["report", run_id, "--runs-dir", str(runs)])
    assert printed.exit_code == 0 and printed.output.startswith("exitcore report: ")
    refused = runner.invoke(cli, ["report", running, "--runs-dir", str(runs)])
    assert refused.exit_code == 75 and "still running" in refused.output


def test_the_report_recomputes_the_dsr_when_trials_were_added_later(finished_run, tmp_path):
    """Picking this run among runs recorded after it is a selection too: the report shows the
    DSR with the registry's trial count today beside the one computed at run time (N = 3)."""
    from exitcore.evaluation.significance import expected_max_sharpe, psr_from_moments

    dsr = read_results(_run_dir(finished_run))["evaluators"]["significance"]["dsr"]
    assert dsr["n_trials"] == 3 and "DSR with today's trials" not in render_report(_run_dir(finished_run), trials_now=3)
    text = render_report(_run_dir(finished_run), trials_now=9)
    expected = psr_from_moments(dsr["sharpe"], dsr["n_days"], dsr["skew"], dsr["kurtosis"],
                                expected_max_sharpe(9, dsr["trials_sharpe_variance"]))
    assert re.search(rf"DSR with today's trials +{expected:.3f} with N = 9", text) and "6 more trials on this data were recorded" in text
    assert expected < dsr["dsr"]  # more trials, a higher bar
    # the same formula as the run-time DSR: N = 3 reproduces the recorded value
    again = psr_from_moments(dsr["sharpe"], dsr["n_days"], dsr["skew"], dsr["kurtosis"],
                             expected_max_sharpe(3, dsr["trials_sharpe_variance"]))
    assert again == pytest.approx(dsr["dsr"], rel=1e-9)
    # the command reads today's count from the registry of the run's data
    runs = tmp_path / "runs"
    data_hash = finished_run["info"]["data"]["hash"]
    with Registry(runs) as registry:
        run_id = registry.create_run("v4_no_lookahead", "cfg", data_hash, run_dir=_run_dir(finished_run))
        registry.mark_running(run_id)
        registry.mark_done(run_id, {})
        for i in range(4):
            registry.create_run("v4_no_lookahead", f"later{i}", data_hash, run_dir=tmp_path / f"r{i}")
    result = CliRunner().invoke(cli, ["report", run_id, "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "with N = 5" in result.output, result.output


def test_the_dsr_with_todays_trials_takes_todays_trial_variance(finished_run, tmp_path):
    """It kept the variance of run time (the null when the run was the first) and only swapped
    in today's N, so two reports on the same data gave different bars for the same N."""
    import numpy as np

    from exitcore.evaluation.report import TrialsToday, current_trials
    from exitcore.evaluation.significance import expected_max_sharpe, psr_from_moments

    dsr = read_results(_run_dir(finished_run))["evaluators"]["significance"]["dsr"]
    others = (-0.4165, -0.1493)  # two later seeds' per-day Sharpes, dispersed as quick-budget ones are
    variance = max(1 / (dsr["n_days"] - 1), float(np.var([*others, dsr["sharpe"]], ddof=1)))
    assert variance > dsr["trials_sharpe_variance"]
    text = render_report(_run_dir(finished_run), trials_now=TrialsToday(5, others))
    expected = psr_from_moments(dsr["sharpe"], dsr["n_days"], dsr["skew"], dsr["kurtosis"], expected_max_sharpe(5, variance))
    sr0 = expected_max_sharpe(5, variance) * 252**0.5
    assert re.search(rf"DSR with today's trials +{expected:.3f} with N = 5 \(SR0 = {sr0:.2f} annualised, trial "
                     rf"variance {variance:.4g} per day: recorded: 3 trials\)", text), text
    # the command reads them from the registry: finished runs' Sharpes on the same data and split
    runs = tmp_path / "runs"
    data_hash = finished_run["info"]["data"]["hash"]
    with Registry(runs) as registry:
        registry.create_run("v4_no_lookahead", "mine", data_hash, run_dir=_run_dir(finished_run))
        for i, (sharpe, verdict) in enumerate(((-6.61, "PASS"), (-2.37, "PASS"), (10.7, "FAIL"))):
            run_id = registry.create_run("v4_no_lookahead", f"later{i}", data_hash, run_dir=tmp_path / f"r{i}")
            registry.mark_running(run_id)
            registry.mark_done(run_id, {"split": "test", "sharpe": sharpe, "audit_verdict": verdict})
    today = current_trials(_run_dir(finished_run), runs)
    assert today.count == 4 and today.sharpes == pytest.approx((-6.61 / 252**0.5, -2.37 / 252**0.5))  # FAIL left out


def test_the_report_says_where_the_dsr_trial_variance_came_from(finished_run, tmp_path):
    run_dir = tmp_path / "variance"
    shutil.copytree(_run_dir(finished_run), run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    dsr = results["evaluators"]["significance"]["dsr"]
    cases = (
        ({"variance_source": "recorded: 4 trials", "recorded_variance": 0.0495, "recorded_trials": 4}, "(recorded: 4 trials)"),
        ({"variance_source": "null 1/(T-1)", "recorded_variance": 0.0001, "recorded_trials": 3},
         "(null 1/(T-1), larger than the 3 recorded trials' 0.0001)"),
        ({"variance_source": "null 1/(T-1)", "recorded_variance": "NaN", "recorded_trials": 1}, "(null 1/(T-1))"),
        # a run recorded before variance_source existed
        ({"variance_source": None, "variance_default": True}, "(null default 1/(T-1))"),
    )
    for fields, words in cases:
        dsr.update(fields)
        (run_dir / "results.json").write_text(json.dumps(results))
        row = next(line for line in render_report(run_dir).splitlines() if line.startswith("trials' Sharpe variance"))
        assert words in row and " per day (" in row and "(non-excess: 3 for normal days)" in row, row
    text = render_report(run_dir)
    assert re.search(r"how to read it +SR0 is the Sharpe the best of N worthless trials would show by luck", text)
    dsr["n_trials"] = 1
    (run_dir / "results.json").write_text(json.dumps(results))
    assert "with N = 1 there is nothing to deflate (SR0 = 0): DSR = PSR" in render_report(run_dir)


def test_undefined_intervals_psr_and_dsr_are_shown_as_such_with_why(finished_run, tmp_path):
    """Too few active days: the intervals, the PSR and the DSR are NaN; the report and the
    summary say "undefined" and why, instead of printing nan as if it were a number."""
    run_dir = tmp_path / "sparse"
    shutil.copytree(_run_dir(finished_run), run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    sig = results["evaluators"]["significance"]
    sig["intervals"]["rl"]["sharpe"] = {"estimate": 0.897, "low": "NaN", "high": "NaN", "se": "NaN", "undefined": 712}
    why = "1 active day (days with an exit) < MIN_ACTIVE_DAYS = 30: too few for a probabilistic Sharpe ratio"
    sig["psr"].update(psr="NaN", active_days=1, undefined=why)
    sig["dsr"].update(dsr="NaN", psr="NaN", active_days=1, undefined=why)
    sig["rl_vs_best_baseline"]["sharpe"].update(low="NaN", high="NaN", p_le_zero="NaN", undefined=700)
    (run_dir / "results.json").write_text(json.dumps(results))
    text = render_report(run_dir, trials_now=9)
    table = text[text.index("RL vs baselines"): text.index("Significance")]
    assert re.search(r"\nrl .* 0\.90 \[undefined\] ", table) and "[undefined]: in some resamples" in table
    assert re.search(rf"PSR \(P\[true Sharpe > 0\]\) +undefined: {re.escape(why)}", text)
    assert re.search(rf"deflated Sharpe ratio +undefined: {re.escape(why)}", text)
    assert "DSR with today's trials" not in text  # no number to recompute
    diff = text[text.index("RL - best baseline (chosen on train)"):]
    assert ": Sharpe " in diff and "[undefined], p (H0: RL <= baseline) = undefined" in diff
    summary = summary_text(read_results(run_dir))
    assert f"deflated Sharpe ratio of RL undefined: {why}" in summary and "[undefined]: in some resamples" in summary
    assert re.search(r"\nrl .* 0\.90 \[undefined\]", summary)
    # returns of zero variance (one test trade): the summary dropped the line the report has (trial AA)
    sig["dsr"] = {"error": "returns have zero variance: the Sharpe ratio is undefined"}
    (run_dir / "results.json").write_text(json.dumps(results))
    summary = summary_text(read_results(run_dir))
    assert "deflated Sharpe ratio of RL undefined: returns have zero variance: the Sharpe ratio is undefined\n" in summary


def test_report_of_a_directory_without_results_is_a_user_error(tmp_path):
    run_dir = tmp_path / "half"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    result = CliRunner().invoke(cli, ["report", str(run_dir)])
    # 4, as for a recorded run that is not done: a script tells "stopped before its evaluation" from a typo
    assert result.exit_code == 4 and "no results" in result.output
    assert "runs --record" not in result.output  # run.json names no run id: nothing to record it under
    unknown = CliRunner().invoke(cli, ["report", "nope", "--runs-dir", str(tmp_path / "none")])
    assert unknown.exit_code == 2 and "no run registry in" in unknown.output and "does not exist" in unknown.output


def test_sections_whose_evaluator_did_not_run_say_so(finished_run, tmp_path):
    run_dir = tmp_path / "bare"
    shutil.copytree(_run_dir(finished_run), run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    results["evaluators"] = {}
    results["audit_verdict"] = None
    (run_dir / "results.json").write_text(json.dumps(results))
    text = render_report(run_dir)
    assert "not run (add `lookahead_audit` to eval.evaluators" in text and "not run (add `significance`" in text
    assert "baselines not shown" in text and "\nrl " in text  # the headline still gives RL's row
    assert "* best baseline" not in text  # no starred row, so no footnote for one


def test_walk_forward_section(finished_run, tmp_path):
    run_dir = tmp_path / "wf"
    shutil.copytree(_run_dir(finished_run), run_dir)
    m = {"n_trades": 10, "sharpe": 0.5}
    iv = {"estimate": 0.5, "low": -0.1, "high": 1.2}
    wf = {
        "windows": [{"window": i, "test_span": ["2015-03-01T00:00:00+00:00", "2015-04-01T00:00:00+00:00"], "n_test_trades": 10,
                     "best_baseline": "time_8bars", "metrics": {"rl": m, "best_baseline": {"sharpe": 0.25}}} for i in (1, 2)],
        "aggregate": {"windows": 2, "label": "TEST (out-of-sample)", "span": ["2015-03-01T00:00:00+00:00", "2015-05-01T00:00:00+00:00"],
                      "metrics": {"rl": {"n_trades": 20}}, "intervals": {"rl": {"sharpe": iv}, "best_baseline": {"sharpe": iv}},
                      "rl_vs_best_baseline": {"sharpe": {**iv, "p_le_zero": 0.2}}, "dsr": {"dsr": 0.61, "n_trials": 4}},
    }
    config = (run_dir / "config.toml").read_text()
    assert "walk_forward = 0\n" in config
    (run_dir / "config.toml").write_text(config.replace("walk_forward = 0\n", "walk_forward = 2\n"))
    (run_dir / "walk_forward.json").write_text(json.dumps(wf))
    text = render_report(run_dir)
    section = text[text.index("Walk-forward (2 windows"):]
    assert "time_8bars" in section and "0.50 [-0.10, 1.20]" in section and "(N = 4)" in section and "\nall " in section
    assert "DSR with today's trials" not in section and "!!" not in text


def _walk_forward_note(text):
    return next((line for line in text.splitlines() if line.startswith("!!") and "walk_forward.json" in line), None)


def test_walk_forward_results_not_the_run_s_are_not_shown(finished_run, tmp_path):
    """report showed any walk_forward.json in the run directory (one copied from a run on other
    bars, under a run without walk-forward), and a wrongly shaped one crashed it; a missing one
    went unmentioned (a walk-forward trial)."""
    run_dir = tmp_path / "wf"
    shutil.copytree(_run_dir(finished_run), run_dir)
    config = (run_dir / "config.toml").read_text()
    results = json.loads((run_dir / "results.json").read_text())
    one = {"window": 1, "test_span": ["2015-03-01T00:00:00+00:00", "2015-04-01T00:00:00+00:00"], "n_test_trades": 10,
           "best_baseline": "time_8bars", "metrics": {"rl": {"sharpe": 0.5}}}
    wf = {"experiment": results["experiment"], "config_hash": results["config_hash"], "seed": results["seed"],
          "windows": [one], "aggregate": {"windows": 1, "dsr": {"dsr": 0.61, "n_trials": 1}}}
    (run_dir / "walk_forward.json").write_text(json.dumps(wf))
    assert "run's eval.walk_forward is 0" in _walk_forward_note(render_report(run_dir))  # a run without walk-forward
    (run_dir / "config.toml").write_text(config.replace("walk_forward = 0\n", "walk_forward = 1\n"))
    assert _walk_forward_note(render_report(run_dir)) is None and "Walk-forward (1 windows" in render_report(run_dir)
    (run_dir / "walk_forward.json").write_text(json.dumps({**wf, "data_hash": "0123456789abcdef"}))
    assert "does not belong to this run: its data_hash is '0123456789abcdef'" in _walk_forward_note(render_report(run_dir))
    for damaged, why in (({"windows": 5, "aggregate": {}}, "not walk-forward results"), ([], "expected a JSON object"),
                         ({"windows": [one], "aggregate": None}, "not walk-forward results")):
        (run_dir / "walk_forward.json").write_text(json.dumps(damaged))
        assert why in _walk_forward_note(render_report(run_dir))
    (run_dir / "walk_forward.json").write_text(json.dumps({**wf, "windows": [{**one, "test_span": None}],
                                                           "aggregate": {"span": None, "dsr": 3}}))
    assert re.search(r"\n1 +- +10 +time_8bars +0.50", render_report(run_dir))  # inner damage: shown as missing, no traceback
    (run_dir / "walk_forward.json").unlink()
    assert "walk_forward.json: no such file, although the run's eval.walk_forward is set" in _walk_forward_note(
        render_report(run_dir))


def test_the_walk_forward_dsr_is_given_with_today_s_trials_too(finished_run, tmp_path):
    """The significance section recomputed the DSR with the trials recorded since the run, the
    walk-forward one did not (N = 1 beside N = 6 in one report; a walk-forward trial)."""
    from exitcore.evaluation.report import TrialsToday

    run_dir = tmp_path / "wf"
    shutil.copytree(_run_dir(finished_run), run_dir)
    config = (run_dir / "config.toml").read_text()
    (run_dir / "config.toml").write_text(config.replace("walk_forward = 0\n", "walk_forward = 1\n"))
    dsr = read_results(run_dir)["evaluators"]["significance"]["dsr"]  # a DSR dict as walk-forward writes one
    wf = {"windows": [{"window": 1, "test_span": ["2015-03-01T00:00:00+00:00", "2015-04-01T00:00:00+00:00"]}],
          "aggregate": {"windows": 1, "dsr": {**dsr, "n_trials": 1, "variance_source": "null 1/(T-1)"}}}
    (run_dir / "walk_forward.json").write_text(json.dumps(wf))
    section = render_report(run_dir, trials_now=TrialsToday(6, (-0.4, -0.1)))
    section = section[section.index("Walk-forward (1 windows"):]
    assert "(N = 1). DSR with today's trials: " in section and "with N = 6" in section
    assert "as at run time): 5 more trials on this data were recorded after this run." in section


def test_summary_for_the_end_of_a_run(finished_run):
    results = read_results(_run_dir(finished_run))
    text = finished_run["results"].summary
    assert text == summary_text(results)
    assert text.startswith("TEST (out-of-sample):") and "\nrl " in text and f"{results['best_baseline']['name']} *" in text
    assert "deflated Sharpe ratio" in text and "look-ahead audit: PASS\n" in text + "\n"
    # a failing audit names its culprits right in the summary
    failed = {**results, "audit_verdict": "FAIL", "evaluators": {**results["evaluators"], "lookahead_audit": {
        "verdict": "FAIL", "culprits": [{"kind": "feature", "component": "leaky_next_move.next_move_atr"}]}}}
    assert "look-ahead audit: FAIL (leak in feature leaky_next_move.next_move_atr;" in summary_text(failed)
    # and it is the first line, before any number (v3's summary opened with a DSR of 1.000)
    assert summary_text(failed).startswith("!! look-ahead audit FAIL (a leak was found): do not trust these numbers")
    assert not text.startswith("!!")


def test_a_report_of_a_finished_run_does_not_import_torch(finished_run):
    """`exitcore report RUN` took 3.3 s, 2 of them importing torch for the audit's text alone
    (trial V); the audit's findings and text live in a torch-free module (0.85 s)."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from exitcore.evaluation.report import render_report; "
            "text = render_report(Path(sys.argv[1])); print('look-ahead audit' in text, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(_run_dir(finished_run))], capture_output=True, text=True)
    assert out.stdout.split() == ["True", "False"], out.stdout + out.stderr


def test_without_the_significance_evaluator_no_column_says_ci(finished_run, tmp_path):
    """With eval.evaluators leaving out significance, the summary's and report's columns were
    still titled 'Sharpe [CI]' over point values (trial U)."""
    results = read_results(_run_dir(finished_run))
    assert "Sharpe [CI]" in summary_text(results)
    evaluators = {k: v for k, v in results["evaluators"].items() if k != "significance"}
    plain = summary_text({**results, "evaluators": evaluators})
    assert "[CI]" not in plain and "Sharpe" in plain.splitlines()[1]
    copy = tmp_path / "no_significance"
    shutil.copytree(_run_dir(finished_run), copy)
    (copy / "results.json").write_text(json.dumps({**results, "evaluators": evaluators}))
    report = render_report(copy)
    assert "Sharpe [CI]" not in report and "Sharpe" in report


def test_intervals_over_few_days_are_said_to_cover_less_than_their_level(finished_run):
    """A run on an 8-day test split printed 'RL - fixed_stop_target: Sharpe -4.04 [-14.02, -0.21]
    95%', which read as significant; its PSR was refused for few days, its intervals were not
    (trial S: a nominal 95 % covered about 85 % there). The summary and the report say so."""
    import copy

    from exitcore.evaluation.report import render, report_blocks

    results = read_results(_run_dir(finished_run))
    sig = results["evaluators"]["significance"]
    for days, warned in ((8, True), (59, True), (60, False), (313, False)):
        changed = copy.deepcopy(results)
        for part in ("rl_vs_best_baseline", "rl_vs_best_on_split"):
            if part in sig:
                changed["evaluators"]["significance"][part]["n_days"] = days
        for policy in changed["evaluators"]["significance"]["intervals"].values():
            policy["n_days"] = days
        words = f"only {days} days evaluated: on fewer than 60 days the bootstrap intervals cover less than their level"
        assert (f"\nnote: {words}" in summary_text(changed)) is warned, summary_text(changed)
        report = render(report_blocks(changed, {"run_id": "x"}, None, None), "text")
        assert (words in report) is warned
        assert (report.count("cover less than their level") == 2) is warned  # under the table and the significance


def test_a_verdict_from_a_plugin_evaluator_is_named_and_its_result_shown(finished_run, tmp_path):
    """Any evaluator may return a verdict; when a plugin's own check fails the run, the summary
    and the report name that evaluator instead of calling it a leak found by the look-ahead
    audit (which passed, and which `exitcore audit RUN` would show passing)."""
    run_dir = tmp_path / "plugin_fail"
    shutil.copytree(_run_dir(finished_run), run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    results["evaluators"]["exit_stats"] = {"verdict": "FAIL", "why": "too few exits", "counts": {"EXIT": 3, "stop": 11},
                                           "per_trade": list(range(30))}
    results["audit_verdict"], results["audit_verdict_from"] = "FAIL", ["exit_stats"]
    (run_dir / "results.json").write_text(json.dumps(results))
    summary = summary_text(results)
    assert "audit verdict FAIL from evaluator 'exit_stats' (`exitcore report` shows its result)" in summary
    assert "look-ahead audit: FAIL" not in summary
    text = render_report(run_dir)
    audit = text[text.index("Look-ahead audit"): text.index("RL vs baselines")]
    assert ": PASS" in audit and "The run's audit verdict FAIL from evaluator 'exit_stats'" in audit
    assert "did not pass the audit: do not trust them" in audit
    other = text[text.index("Other evaluators"):]
    for row in ("verdict", "why", "too few exits", "counts/EXIT", "counts/stop", "[30 items]"):
        assert row in other
    # an older run (no audit_verdict_from) and a look-ahead FAIL keep the look-ahead wording
    del results["audit_verdict_from"]
    assert "look-ahead audit: FAIL" in summary_text(results)


def test_both_losing_is_flagged_because_a_steadier_loser_has_the_lower_sharpe(finished_run, tmp_path):
    """A trial on real data: RL lost 55,032 against the baseline's 66,011, with the better mean
    return, drawdown and mean daily PnL, and the report called it significantly worse, since its
    steadier losses gave the more negative Sharpe (-4.12 against -2.64)."""
    run_dir = tmp_path / "losing"
    shutil.copytree(_run_dir(finished_run), run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    best = results["best_baseline"]["name"]
    policies = results["evaluators"]["trade_metrics"]["policies"]
    baselines = results["evaluators"]["baselines"]["policies"]
    for sharpes, flagged in (((-4.12, -2.64), True), ((0.5, -2.64), False)):
        policies["rl"]["sharpe"], baselines[best]["sharpe"] = sharpes
        (run_dir / "results.json").write_text(json.dumps(results))
        text = render_report(run_dir)
        assert ("Both RL and the best baseline lose on this split" in text) is flagged
        assert ("(both lose: a steadier loser" in summary_text(results)) is flagged
    summary = summary_text(results)
    assert re.search(rf"\nRL - {best}: Sharpe -?\d+\.\d\d \[.*\] 95%, p \(H0: RL <= baseline\) = \d\.\d{{3}}; mean daily PnL", summary)
    # every interval comes with its level, and what it does not cover
    assert "\n[CI] = 95% bootstrap intervals over the days, for this one trained policy (they do not cover another " \
           "training seed)\n" in summary
    assert "win % counts trades with PnL > 0" in text
    results["best_baseline"]["train_sharpes"] = {k: -1.0 for k in results["best_baseline"]["train_sharpes"]}
    (run_dir / "results.json").write_text(json.dumps(results))
    assert "Every baseline lost on the training split" in render_report(run_dir)


# --------------------------------------------------------------------------- the real data


@pytest.mark.slow
@pytest.mark.needs_shared_data
def test_short_v4_run_on_real_eurusd_2018_2020_reports_rl_vs_baselines(shared_data, full_scale, tmp_path):
    """The acceptance case: `exitcore run v4` on the real 2018-2020 EURUSD bars, then `exitcore report`.

    Reduced by default (one tiny PPO update, a small audit sample); --full runs the `quick` budget.
    """
    pytest.importorskip("exitcore.runner", reason="exitcore run (exitcore.runner) is not available yet")
    data = shared_data / "eurusd_m15_dukascopy_2018_2020"
    evaluators = 'eval.evaluators=[{ name = "trade_metrics" }, { name = "baselines" }, { name = "significance" }, { name = "lookahead_audit" }]'
    size = (["--budget", "quick"] if full_scale else
            ["--timesteps", "2048", "--set", "ppo.n_envs=64", "--set", "ppo.n_steps=32", "--set", "ppo.batch_size=1024",
             "--set", "eval.audit_decisions=8", "--set", "eval.bootstrap_samples=500"])
    runs = tmp_path / "runs"
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", "v4", "--data", str(data), "--set", evaluators, *size, "--runs-dir", str(runs),
                              "--device", "cpu", "--no-progress", "-q"])
    assert ran.exit_code == 0, ran.output
    with Registry(runs, create=False) as registry:
        (record,) = registry.list()
        run_dir = registry.path_of(record)
    assert record.status == "done" and record.metrics["label"] == "TEST (out-of-sample)"
    report = runner.invoke(cli, ["report", record.id, "--runs-dir", str(runs)])
    assert report.exit_code == 0, report.output
    text = report.output
    assert "RL vs baselines on TEST (out-of-sample)" in text and "fixed_stop_target" in text and "trailing_2.0atr" in text
    assert "Sharpe [CI]" in text and "deflated Sharpe ratio" in text and "trials N" in text
    assert "look-ahead audit of v4_no_lookahead on TEST (out-of-sample): PASS" in text
    assert "dukascopy" in text and record.data_hash in text
    # a budget or --timesteps run says its numbers are a shortened training's
    assert re.search(r"budget +(quick|none) \(a shortened run: its numbers are not the experiment's full training\)", text)
    spans = read_results(run_dir)["spans"]
    assert spans["test"][0].startswith("2019") and spans["test"][1].startswith("2020-02")


def test_a_frozen_config_that_is_not_utf8_is_one_error_naming_the_file(tmp_path):
    # report, audit, compare and resume all read config.toml through read_config
    from exitcore.evaluation.rundir import RunDirError, read_config

    (tmp_path / "config.toml").write_bytes(b'\xff\xfe[experiment]\nname = "v4"\n')
    with pytest.raises(RunDirError, match=r"config\.toml: cannot be read: 'utf-8' codec can't decode byte 0xff"):
        read_config(tmp_path)


def test_a_run_evaluated_before_the_breakeven_fix_is_flagged(finished_run, tmp_path):
    # a copy of the run whose test ledger nets float64 rounding at its breakeven exits, as
    # ledgers written before exitcore wrote such pnl as exactly 0 did
    import pandas as pd

    source = _run_dir(finished_run)
    assert "!!" not in render_report(source)
    old = tmp_path / source.name
    shutil.copytree(source, old)
    results = read_results(old)
    ledger_path = old / results["ledgers"][results["split"]]
    ledger = pd.read_csv(ledger_path)
    ledger.loc[ledger.index[:3], "pnl"] = [1.7763568394002505e-16, -2.2e-16, 4e-16]
    ledger.to_csv(ledger_path, index=False)
    text = render_report(old)
    assert "!! 3 trades of this run's test ledger net float64 rounding around 0" in text
    assert "`exitcore compare` recomputes both from the ledger" in text


def test_costs_too_cheap_for_the_market_are_flagged(finished_run, tmp_path):
    """Gold at a pip of 0.01 and the default 1-pip spread: 0.07 bp a round trip, a tenth of a real spread."""
    source = _run_dir(finished_run)
    plain = render_report(source)
    assert "costs look too low" not in plain
    gold = tmp_path / source.name
    shutil.copytree(source, gold)
    info = json.loads((gold / "run.json").read_text())
    info["costs"] = {"round_trip": 0.01, "round_trip_bp": 0.0709, "median_price": 1410.0, "pip_size": 0.01}
    (gold / "run.json").write_text(json.dumps(info))
    text = render_report(gold)
    assert "!! costs look too low: a round trip 1 pip = 0.01 = 0.071 bp of the median close 1,410 (pip size 0.01)" in text
    assert "round trip 0.01 = 0.071 bp of the median close 1,410" in text  # the Run section's costs row
    info["costs"] = {"round_trip": 1e-4, "round_trip_bp": 0.86, "median_price": 1.16, "pip_size": 1e-4}
    (gold / "run.json").write_text(json.dumps(info))
    fx = render_report(gold)
    assert "!!" not in fx and "round trip 0.0001 = 0.86 bp of the median close 1.16" in fx


def test_a_run_whose_plugin_is_not_installed_says_which(finished_run, tmp_path):
    """Auditing, reporting or resuming a run made with a plugin no longer installed said only
    "unknown feature 'x' (did you mean ...)": it names the distribution run.json recorded."""
    from evalkit import host

    from exitcore.errors import ConfigError
    from exitcore.evaluation.rundir import resolve_run

    source = _run_dir(finished_run)
    gone = tmp_path / source.name
    shutil.copytree(source, gone)
    config = (gone / "config.toml").read_text()
    assert 'policy = "mlp"' in config
    config = config.replace('name = "time_of_day"', 'name = "gone_feature"', 1).replace('policy = "mlp"', 'policy = "gone_net"', 1)
    (gone / "config.toml").write_text(config)
    info = json.loads((gone / "run.json").read_text())
    info["plugins"] = [*info.get("plugins", []),
                       {"name": "gone", "distribution": "gone-plugins", "version": "1.2",
                        "components": ["feature:gone_feature", "reward:unused_here", "policy:gone_net"]},
                       {"name": "other", "distribution": "other-plugins", "version": "2.0", "components": ["mask:unused"]}]
    (gone / "run.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError) as exc:
        resolve_run(gone, host())
    text = str(exc.value)
    # at the paths of the run's own config.toml ([experiment]), not experiments.NAME
    assert re.search(r"experiment\.features\[\d\]\.name: unknown feature 'gone_feature'", text), text
    assert "experiment.ppo.policy: unknown policy 'gone_net'" in text and "experiments." not in text
    # every component the run uses and no other, nor a distribution it does not use
    assert ("the run was made with plugins that are not installed now: gone-plugins 1.2 (feature:gone_feature, "
            "policy:gone_net); install them") in text


def test_the_scratch_rate_is_shown_beside_the_win_rate(finished_run):
    """On real data 48 % of RL's trades closed at exactly 0 (breakeven stops): a column of its
    own in the report and the run's summary, not a footnote."""
    results = read_results(_run_dir(finished_run))
    rl = results["evaluators"]["trade_metrics"]["policies"]["rl"]
    shown = f"{100 * rl['scratch_rate']:.1f}"
    text = render_report(_run_dir(finished_run))
    table = text[text.index("RL vs baselines"): text.index("Significance")].splitlines()
    header = next(line for line in table if line.startswith("policy"))
    assert "win % [CI]  scratch %" in header
    rl_row = next(line for line in table if line.startswith("rl "))
    assert re.search(rf"\] +{re.escape(shown)} +-?\d", rl_row)  # right after the win rate's interval
    assert "scratch % those closed at exactly 0" in text
    summary = summary_text(results).splitlines()
    assert "scratch %" in summary[1] and shown in next(line for line in summary if line.startswith("rl "))
    assert "Sharpe [CI]" in summary[1]  # still there


def test_the_pnl_columns_name_the_account_currency(finished_run, tmp_path):
    """`PnL ccy` named no currency: the columns say the run's costs.account_currency, and say
    honestly that it is the account's when the configuration is missing."""
    run_dir = tmp_path / "eur"
    shutil.copytree(_run_dir(finished_run), run_dir)
    text = render_report(run_dir)
    for heading in ("RL vs baselines", "In-sample"):
        header = next(line for line in text[text.index(heading):].splitlines() if line.startswith("policy"))
        assert header.endswith("  PnL USD") and "ccy" not in header, header
    assert "PnL USD: the net PnL summed over trades, each of a notional of 100,000 USD (costs.notional)." in text
    config = run_dir / "config.toml"
    config.write_text(config.read_text().replace('account_currency = "USD"', 'account_currency = "EUR"'))
    assert "  PnL EUR\n" in render_report(run_dir)
    config.unlink()
    assert "  PnL (account ccy)\n" in render_report(run_dir)


def test_a_suspect_summary_says_which_plausibility_rules_the_results_break(finished_run):
    """The end of `exitcore run` said `look-ahead audit: SUSPECT` and nothing more: the rules
    broken are listed, one short line each (the why is in the report)."""
    from exitcore.evaluation.audit import suspect_reasons

    results = read_results(_run_dir(finished_run))
    rl = {**results["evaluators"]["trade_metrics"]["policies"]["rl"], "sharpe": 10.76, "profit_factor": 7.3}
    rules, _ = suspect_reasons(rl)
    suspect = {**results, "audit_verdict": "SUSPECT", "evaluators": {**results["evaluators"], "lookahead_audit": {
        **results["evaluators"]["lookahead_audit"], "verdict": "SUSPECT", "culprits": [], "suspect": rules}}}
    tail = summary_text(suspect).splitlines()[-3:]
    assert tail == ["look-ahead audit: SUSPECT: no leak found in the sampled decisions, but the results break "
                    "2 plausibility rules (`exitcore report` has the details):",
                    "  - annualised daily Sharpe > 4 (Sharpe 10.76)",
                    "  - profit factor > 5 (profit factor 7.30)"]


def test_the_report_shows_the_setup_the_run_trained_with(finished_run, tmp_path):
    """Torch version, threads and device decide a run's numbers to the last bit with its seed
    (docs/ppo.md); run.json recorded them, the report showed none (a reproducibility trial)."""
    run_dir = tmp_path / "setup"
    shutil.copytree(_run_dir(finished_run), run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info.update(versions={"python": "3.11.7", "torch": "2.13.0+cpu"}, threads=1,
                resumes=[{"at": "2026-11-28T01:41:42+00:00", "threads": 2, "versions": {"torch": "2.13.0+cpu"}}])
    (run_dir / "run.json").write_text(json.dumps(info))
    row = next(line for line in render_report(run_dir).splitlines() if line.startswith("setup "))
    assert row.split(None, 1)[1] == "torch 2.13.0+cpu, 1 thread, cpu (resumed with 2 threads)"
