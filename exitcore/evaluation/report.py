"""A run's report: RL against the baselines, significance, the audit, in text or Markdown.

Built from what the run directory holds (:mod:`exitcore.evaluation.rundir`): ``results.json``
(written by :func:`exitcore.evaluation.evaluate.evaluate`), ``run.json`` (the run's metadata),
``config.toml`` (the frozen experiment) and, when the run used walk-forward evaluation,
``walk_forward.json``. Sections:

1. the run: experiment, data, split boundaries, seed, device, steps trained (and requested),
   budget and overrides, PPO settings, costs, components;
2. the look-ahead audit's verdict, with every leak it named;
3. RL beside every baseline on the evaluated split (out of sample), with bootstrap intervals;
4. significance: PSR, the deflated Sharpe ratio with its number of trials and where that came
   from, RL minus the best baseline (chosen on the training split) with its interval;
5. in-sample figures (the training split), under their own heading and label;
6. walk-forward windows and their aggregate, when present.

Sections whose evaluator did not run say so instead of disappearing silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from exitcore.config import DATA_HOLES_WORDS
from exitcore.costs import account_currency
from exitcore.evaluation.rundir import (
    TRAIN_LOG_FILE,
    WALK_FORWARD_FILE,
    RunDirError,
    read_config,
    read_json,
    read_results,
    read_run_info,
    read_walk_forward,
    training_setup,
)
from exitcore.evaluation.verdicts import LOOKAHEAD, audit_why, describe_verdict
from exitcore.words import plural, statistic

FORMATS = ("text", "markdown")

Block = tuple  # ("h", title) | ("kv", [(key, value)]) | ("table", header, rows) | ("p", text)


# --------------------------------------------------------------------------- number formatting


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def interval(iv: Mapping[str, Any] | None, fmt: str = ".2f", scale: float = 1.0) -> str:
    """``estimate [low, high]`` of a bootstrap interval dict; ``estimate [undefined]`` when some
    resamples had no defined value (see :data:`UNDEFINED_NOTE`)."""
    if not iv:
        return "-"
    e, lo, hi = (iv.get(k) for k in ("estimate", "low", "high"))
    s = (lambda x: x * scale if _finite(x) else x)
    if _undefined_resamples(iv):
        return f"{statistic(s(e), fmt)} [undefined]"
    return f"{statistic(s(e), fmt)} [{statistic(s(lo), fmt)}, {statistic(s(hi), fmt)}]"


#: what ``[undefined]`` in an interval means
UNDEFINED_NOTE = ("[undefined]: in some resamples the statistic had no value (no trade drawn, or a flat daily "
                  "series: too few active days), so no interval is given rather than one from the other resamples.")


def _undefined_resamples(iv: Mapping[str, Any]) -> int:
    """How many resamples of an interval were undefined (0 for a run recorded before they were counted)."""
    k = iv.get("undefined")
    return k if isinstance(k, int) and not isinstance(k, bool) else 0


def _has_undefined(tree: Any) -> bool:
    """Whether any interval dict in a nested result had undefined resamples."""
    if not isinstance(tree, Mapping):
        return False
    return _undefined_resamples(tree) > 0 or any(_has_undefined(v) for v in tree.values())


def _undefined_stat(d: Mapping[str, Any], key: str) -> str | None:
    """``undefined: why`` for a PSR or DSR result that is NaN with a stated reason, or an error."""
    if key not in d:
        return f"undefined: {d.get('error', '-')}"
    if isinstance(d.get("undefined"), str):
        return f"undefined: {d['undefined']}"
    return None


# --------------------------------------------------------------------------- sections


def _get(d: Mapping[str, Any] | None, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return default
        d = d[k]
    return d


def _cost_summary(info: Mapping[str, Any]) -> Any:
    """The run's :class:`exitcore.costs.CostSummary` from run.json (runs before it recorded costs: None)."""
    from exitcore.costs import CostSummary

    return CostSummary.from_dict(info.get("costs"))


def _round_trip(info: Mapping[str, Any]) -> str:
    """``; round trip 0.0001 = 0.86 bp of the median close 1.16`` (empty when not recorded)."""
    from exitcore.costs import bp_words

    c = _cost_summary(info)
    if c is None or not _finite(c.round_trip_bp):
        return ""
    return f"; round trip {statistic(c.round_trip, '.6g')} = {bp_words(c.round_trip_bp)} bp of the median close {statistic(c.median_price, ',.6g')}"


def _run_section(results: Mapping[str, Any], info: Mapping[str, Any], config: Mapping[str, Any] | None,
                 trained_steps: int | None = None) -> list[Block]:
    data = info.get("data") if isinstance(info.get("data"), Mapping) else {}
    source = data.get("source") or info.get("data_source") or _get(config, "data", "source") or "-"
    spec = data.get("spec") or data.get("path") or _get(config, "data", "params", "path")
    rows: list[tuple[str, str]] = [
        ("run", str(info.get("run_id") or info.get("id") or "-")),
        ("experiment", f"{results.get('experiment', info.get('experiment', '-'))} (config hash {results.get('config_hash') or info.get('config_hash') or '-'})"),
        ("data", f"{source}{f' ({spec})' if spec and str(spec) not in str(source) else ''}, "
                 f"hash {data.get('hash') or info.get('data_hash') or '-'}"),
    ]
    if data.get("start") or data.get("n_bars"):
        n_bars = data.get("n_bars", "-")
        rows.append(("bars", f"{f'{n_bars:,}' if isinstance(n_bars, int) else n_bars} {data.get('timeframe', '')} bars, opening "
                             f"{_when(data.get('start'))} .. {_when(data.get('end'))}"))
    for name, (a, b) in (results.get("spans") or {}).items():
        n = _get(results, "n_trades", name)
        trades = f"{statistic(n, ',d') if isinstance(n, int) else n} trades, " if n is not None else ""
        rows.append((f"{name} split", f"{_when(a)} .. {_when(b)} ({trades}first bar's open .. last bar's close)"))
    ppo = _get(config, "ppo") or {}
    device = str(info.get("device", ppo.get("device", "-")))
    if ppo.get("device") and ppo["device"] != device:
        device += f" (ppo.device {ppo['device']})"
    rows += [
        ("seed", str(results.get("seed", info.get("seed", "-")))),
        ("device", device),
        ("timesteps", _timesteps(info, ppo, trained_steps)),
    ]
    request = info.get("request") if isinstance(info.get("request"), Mapping) else None
    if request is not None:  # what the command line changed (runs before run.json recorded it show nothing)
        # run --from: the configuration of another run, its budget and --timesteps included
        source = info.get("from_run") if isinstance(info.get("from_run"), Mapping) else {}
        asked = source.get("request") if isinstance(source.get("request"), Mapping) else {}
        budget = request.get("budget") or asked.get("budget")
        shortened = budget or request.get("timesteps") is not None or asked.get("timesteps") is not None
        # a budget or --timesteps shortens the experiment's training: its numbers are a short run's
        short = " (a shortened run: its numbers are not the experiment's full training)" if shortened else ""
        origin = f" (the configuration of run {source.get('run_id')})" if source else ""
        rows.append(("budget", str(budget or "none") + origin + short))
        overrides = _overrides(request)
        if source and _overrides(asked) != "none":  # what that run's own command line changed
            overrides = (overrides if overrides != "none" else "") + f" (on run {source.get('run_id')}'s: {_overrides(asked)})"
        rows.append(("overrides", overrides.strip()))
    if ppo:
        rows.append(("ppo", _ppo_settings(ppo)))
    env = _get(config, "env")
    if env:
        rows.append(("episode", _episode_settings(env)))
    costs = _get(config, "costs")
    if costs:
        rows.append(("costs", f"in pips: spread {statistic(costs.get('spread_pips'), 'g')}, slippage {statistic(costs.get('slippage_pips'), 'g')} "
                              f"per side, commission {statistic(costs.get('commission_pips'), 'g')}; notional "
                              f"{statistic(costs.get('notional'), ',.0f')} {costs.get('account_currency', '')}".rstrip()
                              + _round_trip(info)))
    if config:
        for kind in ("features", "guards", "masks", "rewards"):
            items = config.get(kind) or []
            rows.append((kind, ", ".join(_component(i) for i in items) or "-"))
        rows.append(("entry", _component(config.get("entry") or {})))
    code = _code_words(info)
    if code:
        rows.append(("code", code))
    setup = training_setup(info)
    if setup:  # with the seed and config, what decides the numbers to the last bit (docs/ppo.md)
        rows.append(("setup", setup))
    if info.get("status"):
        rows.append(("status", f"{info['status']} ({_when(info.get('started_at'))} .. {_when(info.get('ended_at'))})"))
    return [("h", "Run"), ("kv", rows)]


def _code_words(info: Mapping[str, Any]) -> str:
    """The exitcore code that ran: the git commit of the start and of each resume where it
    differs (a run trained partly by two versions says so), from run.json."""
    def commit(entry: Any) -> str | None:
        git = entry.get("git") if isinstance(entry, Mapping) else None
        if not isinstance(git, Mapping) or not isinstance(git.get("commit"), str):
            return None
        return git["commit"][:10] + (" (uncommitted changes)" if git.get("dirty") else "")

    first = commit(info)
    resumes = [r for r in info.get("resumes") or [] if isinstance(r, Mapping)]
    words = f"exitcore at git commit {first}" if first else ""
    other = [f"resumed {_when(r.get('at'))} at {commit(r) or 'an unknown commit'}" for r in resumes if commit(r) != first]
    if other:
        words = "; ".join(filter(None, [words or "started at an unknown commit", *other]))
    return words


def _episode_settings(env: Mapping[str, Any]) -> str:
    """The trade episode's settings (``[env]``) that change what a PnL means. A run frozen before
    ``env.data_holes`` existed closed its trades at every hole."""
    holes = env.get("data_holes", "close")
    return (f"max_bars {env.get('max_bars', '-')}, tighten_factor {env.get('tighten_factor', '-')}, partial_fraction "
            f"{env.get('partial_fraction', '-')}; {DATA_HOLES_WORDS.get(holes, holes)} (env.data_holes = {holes})")


def _timesteps(info: Mapping[str, Any], ppo: Mapping[str, Any], trained: int | None) -> str:
    """Steps trained, and the requested number when it differs: training runs whole updates of
    n_envs x n_steps, so ``--timesteps 1`` trains one full update."""
    requested = info.get("timesteps") if info.get("timesteps") is not None else ppo.get("total_timesteps")
    if isinstance(requested, Mapping):
        requested = f"{requested.get('done', '-')} of {requested.get('total', '-')}"
    if trained is None:
        return f"{requested} requested (no training log)" if requested is not None else "-"
    if requested is None or str(requested) == str(trained):
        return str(trained)
    per_update = ""
    if isinstance(requested, int) and trained < requested:  # training rounds up: fewer is a stop
        reason = info.get("stopped_early")
        per_update = f": stopped early by a plugin: {reason}" if reason else ": stopped early by a plugin's iteration_end hook"
    elif ppo.get("n_envs") and ppo.get("n_steps"):
        per_update = f": whole updates of n_envs x n_steps = {ppo['n_envs'] * ppo['n_steps']}"
    return f"{trained} trained ({requested} requested{per_update})"


def _overrides(request: Mapping[str, Any]) -> str:
    """The run's command-line changes to its experiment, as typed (``--set k=v``, ``--seed 3``)."""
    parts = [f"--set {o}" for o in request.get("overrides") or []]
    parts += [f"--{key} {request[key]}" for key in ("timesteps", "seed", "device", "data") if request.get(key) is not None]
    return " ".join(parts) or "none"


def _ppo_settings(ppo: Mapping[str, Any]) -> str:
    """The PPO settings a reader needs to judge the training, by their config keys."""
    hidden = ppo.get("hidden")
    shown = [f"{key}={ppo[key]}" for key in ("n_envs", "n_steps", "batch_size", "n_epochs", "learning_rate") if key in ppo]
    if ppo.get("anneal_lr"):
        shown[-1] += " (annealed)"
    policy = ppo.get("policy") or "mlp"
    if policy != "mlp":  # ppo.hidden is the built-in mlp's: another policy has its own parameters
        shown.append(f"policy={_component({'name': policy, 'params': ppo.get('policy_params') or {}})}")
    elif hidden is not None:
        shown.append(f"hidden={list(hidden)}")
    if "precision" in ppo:
        shown.append(f"precision={ppo['precision']}")
    return ", ".join(shown)


def _component(c: Mapping[str, Any]) -> str:
    params = c.get("params") or {}
    inner = ", ".join(f"{k}={v}" for k, v in params.items())
    weight = f" x{c['weight']}" if "weight" in c and c["weight"] != 1.0 else ""
    return f"{c.get('name', '?')}{f'({inner})' if inner else ''}{weight}"


def _when(value: Any) -> str:
    """An ISO timestamp (either separator) as ``YYYY-MM-DD HH:MM UTC``, one format for the whole report."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return "-" if value is None else str(value)
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _audit_section(results: Mapping[str, Any]) -> list[Block]:
    audit = _get(results, "evaluators", "lookahead_audit")
    blocks: list[Block] = [("h", "Look-ahead audit")]
    verdict = results.get("audit_verdict")
    if audit:
        from exitcore.evaluation.audit_text import format_audit

        blocks.append(("pre", format_audit(audit)))
    else:
        blocks.append(("p", "not run (add `lookahead_audit` to eval.evaluators, or run `exitcore audit RUN`)"))
    others = [s for s in results.get("audit_verdict_from") or () if s != LOOKAHEAD]
    if verdict and others:  # a plugin's own check set the run's verdict: say which (its result is below)
        blocks.append(("p", f"The run's {describe_verdict(verdict, results.get('audit_verdict_from'))} "
                            "(its result is under \"Other evaluators\")."))
    if verdict in ("FAIL", "SUSPECT"):
        blocks.append(("p", "The numbers below come from an experiment that did not pass the audit: do not trust them."))
    return blocks


#: evaluators the report renders in sections of their own
_RENDERED = ("trade_metrics", "baselines", "significance", LOOKAHEAD)
_MAX_EVALUATOR_ROWS = 40


def _other_evaluators_section(results: Mapping[str, Any]) -> list[Block]:
    """Every other evaluator's result (a plugin's), flattened to ``key/sub-key: value`` rows."""
    blocks: list[Block] = []
    for name, result in (results.get("evaluators") or {}).items():
        if name in _RENDERED or not isinstance(result, Mapping):
            continue
        rows = list(_flat_rows(result))
        if not blocks:
            blocks.append(("h", "Other evaluators"))
        blocks.append(("p", f"{name}:" if rows else f"{name}: returned no values"))
        if len(rows) > _MAX_EVALUATOR_ROWS:
            rows = rows[:_MAX_EVALUATOR_ROWS] + [("...", f"{len(rows) - _MAX_EVALUATOR_ROWS} more in results.json")]
        if rows:
            blocks.append(("kv", rows))
    return blocks


def _culprit_words(c: Mapping[str, Any]) -> str:
    """One of the audit's culprits in a few words, for the run's summary."""
    kind, component = c.get("kind"), c.get("component")
    if kind == "lookback":
        return f"feature reading past its lookback {component}"
    if kind == "unstable":
        return f"not reproducible, so untested: {component}"
    return f"leak in {kind} {component}"


#: plausibility rules a SUSPECT run's summary lists (there are three)
_MAX_SUMMARY_RULES = 3


def _rule_words(reason: Any) -> str:
    """A broken plausibility rule in one short line: the audit's ``rule (values): why`` without
    the why (``annualised daily Sharpe > 4 (Sharpe 10.76)``); the report has it in full."""
    rule, sep, _why = str(reason).partition("): ")
    return rule + ")" if sep else rule


def _flat_rows(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(key path, shown value)`` of a JSON value; short lists of scalars inline, long ones counted."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flat_rows(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        if len(value) <= 8 and all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            yield prefix, "[" + ", ".join(_scalar(v) for v in value) + "]"
        else:
            yield prefix, f"[{len(value)} items]"
    else:
        yield prefix, _scalar(value)


def _scalar(v: Any) -> str:
    return statistic(v, ".4g") if isinstance(v, float) else str(v)


_PNL = "PnL"  # titled with the account currency by _titles
_COLUMNS = (
    ("trades", lambda m, iv: statistic(m.get("n_trades"), "d")),
    ("win % [CI]", lambda m, iv: interval(iv.get("win_rate"), ".1f", 100) if iv else statistic(_scale(m.get("win_rate"), 100), ".1f")),
    ("scratch %", lambda m, iv: statistic(_scale(m.get("scratch_rate"), 100), ".1f")),
    ("mean ret bp [CI]", lambda m, iv: interval(iv.get("mean_return"), ".2f", 1e4) if iv else statistic(_scale(m.get("mean_return"), 1e4), ".2f")),
    ("Sharpe [CI]", lambda m, iv: interval(iv.get("sharpe"), ".2f") if iv else statistic(m.get("sharpe"), ".2f")),
    ("Sortino", lambda m, iv: statistic(m.get("sortino"), ".2f")),
    ("PF", lambda m, iv: statistic(m.get("profit_factor"), ".2f")),
    ("max DD", lambda m, iv: statistic(m.get("max_drawdown"), ".4f")),
    ("avg bars", lambda m, iv: statistic(m.get("avg_bars"), ".1f")),
    # design.md: a bar touching both stop and target takes the stop, and their number is reported
    ("ambiguous", lambda m, iv: statistic(m.get("ambiguous"), "d")),
    (_PNL, lambda m, iv: statistic(m.get("total_pnl_ccy"), ",.0f")),
)


def _pnl_title(config: Mapping[str, Any] | None) -> str:
    """The PnL column's title, naming the account currency of the ledger's ``pnl_ccy`` (``PnL USD``)."""
    currency = account_currency(config)
    return f"PnL {currency}" if currency else "PnL (account ccy)"


def _titles(config: Mapping[str, Any] | None) -> list[str]:
    """The column titles of :data:`_COLUMNS` (the PnL column's from the run's configuration)."""
    return [_pnl_title(config) if title == _PNL else title for title, _ in _COLUMNS]


#: the columns of the run's summary (``exitcore run`` prints it at the end)
_SUMMARY_COLUMNS = ("trades", "win % [CI]", "scratch %", "mean ret bp [CI]", "Sharpe [CI]")


def _ci_titles(titles: list[str], intervals: Mapping[str, Any]) -> list[str]:
    """``titles`` without their ``[CI]`` where no policy has intervals (the significance
    evaluator off): the columns then hold point values only."""
    return titles if intervals else [t.replace(" [CI]", "") for t in titles]


def _scale(v: Any, k: float) -> Any:
    return v * k if _finite(v) else v


def _policy_metrics(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every policy's metrics on the evaluated split, RL first, from whichever evaluators ran."""
    out: dict[str, Mapping[str, Any]] = {}
    out.update(_get(results, "evaluators", "trade_metrics", "policies") or {})
    if "rl" not in out and results.get("headline"):
        out["rl"] = results["headline"]
    out.update(_get(results, "evaluators", "baselines", "policies") or {})
    # a damaged results.json may hold anything here: a row per policy needs its metrics object
    return {name: m for name, m in out.items() if isinstance(m, Mapping)}


def _comparison_section(results: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Block]:
    label = results.get("label", results.get("split", "?"))
    metrics = _policy_metrics(results)
    intervals = _get(results, "evaluators", "significance", "intervals") or {}
    best = _get(results, "best_baseline", "name")
    conf = _get(results, "evaluators", "significance", "confidence")
    header = ["policy", *_ci_titles(_titles(config), intervals)]
    rows = []
    for name, m in metrics.items():
        shown = name + (" *" if name == best else "")
        rows.append([shown, *(fn(m, intervals.get(name) or {}) for _, fn in _COLUMNS)])
    blocks: list[Block] = [("h", f"RL vs baselines on {label}"), ("table", header, rows)]
    notes = []
    if best in metrics:  # no starred row (the baselines evaluator off): no footnote for it
        notes.append(f"* best baseline, chosen on the training split (highest daily Sharpe there): {best}.")
        train = [v for v in (_get(results, "best_baseline", "train_sharpes") or {}).values() if isinstance(v, (int, float))]
        if train and all(_finite(v) and v < 0 for v in train):
            notes.append("Every baseline lost on the training split: the highest Sharpe there is the steadiest "
                         "loser, not necessarily the one that lost least.")
    if conf:
        notes.append(f"[CI] = {100 * conf:.0f}% block-bootstrap interval over days "
                     f"({_get(results, 'evaluators', 'significance', 'n_samples')} resamples, "
                     f"{_get(results, 'evaluators', 'significance', 'method')}), for this one trained policy: "
                     "another training seed is not covered.")
        short = _short_span(results)
        if short:
            notes.append(f"{short}.")
        if _has_undefined(intervals):
            notes.append(UNDEFINED_NOTE)
    else:
        notes.append("no intervals: the `significance` evaluator did not run.")
    if not _get(results, "evaluators", "baselines"):
        notes.append("baselines not shown: the `baselines` evaluator did not run.")
    notional = _get(config, "costs", "notional")
    if _finite(notional):
        sized = f"{statistic(notional, ',.0f')} {account_currency(config) or ''}".rstrip()
        notes.append(f"{_pnl_title(config)}: the net PnL summed over trades, each of a notional of {sized} "
                     "(costs.notional).")
    notes.append("Sharpe and Sortino are annualised from the daily PnL over every trading day of the split; "
                 "mean return is per trade in basis points of the entry price; max DD in PnL fractions (of the "
                 "entry price, summed over trades); win % counts trades with PnL > 0, scratch % those closed at "
                 "exactly 0 (a breakeven stop or exit: neither a win nor a loss); ambiguous counts trades whose exit "
                 "bar touched both stop and target, booked at the stop (the worse of the two).")
    blocks.append(("p", " ".join(notes)))
    return blocks


def _significance_section(results: Mapping[str, Any], trials_now: int | TrialsToday | None = None) -> list[Block]:
    sig = _get(results, "evaluators", "significance")
    blocks: list[Block] = [("h", f"Significance: {results.get('label', '')}")]
    if not sig:
        return blocks + [("p", "not run (add `significance` to eval.evaluators)")]
    rows: list[tuple[str, str]] = []
    psr = sig.get("psr") or {}
    rows.append(("PSR (P[true Sharpe > 0])", _undefined_stat(psr, "psr") or statistic(psr.get("psr"), ".3f")))
    dsr = sig.get("dsr") or {}
    if "dsr" in dsr:
        rows.append(("deflated Sharpe ratio", _undefined_stat(dsr, "dsr") or f"{statistic(dsr['dsr'], '.3f')}  (P[true Sharpe > SR0 = {statistic(dsr.get('sr0_annualised'), '.2f')} annualised])"))
        rows.append(("trials N", f"{dsr.get('n_trials')} ({dsr.get('n_trials_source') or results.get('trials_source') or 'source not recorded'})"))
        var = _variance_words(dsr)
        rows.append(("trials' Sharpe variance", f"{statistic(dsr.get('trials_sharpe_variance'), '.4g')} per day ({var}); skew "
                                                f"{statistic(dsr.get('skew'), '.2f')}, kurtosis {statistic(dsr.get('kurtosis'), '.2f')} "
                                                f"(non-excess: 3 for normal days), {dsr.get('n_days')} days"))
        later = _dsr_with_more_trials(dsr, trials_now)
        if later:
            rows.append(later)
        rows.append(("how to read it", "SR0 is the Sharpe the best of N worthless trials would show by luck, from N and "
                                       "V, the larger of the null 1/(T-1) and the recorded trials' dispersion; "
                                       + ("with N = 1 there is nothing to deflate (SR0 = 0): DSR = PSR"
                                          if dsr.get("n_trials") == 1 else "a DSR above 0.95 survives that selection")))
    else:
        rows.append(("deflated Sharpe ratio", f"undefined: {dsr.get('error', '-')}"))
    conf = sig.get("confidence")
    level = f" {100 * conf:.0f}%" if isinstance(conf, (int, float)) else ""
    for key, title in (("rl_vs_best_baseline", "RL - best baseline (chosen on train)"),
                       ("rl_vs_best_on_split", "RL - best baseline on this split (conservative)")):
        d = sig.get(key)
        if not d:
            continue
        rows.append((title, f"{d.get('baseline')}: Sharpe {_leveled(interval(d.get('sharpe')), level)}, p (H0: RL <= "
                            f"baseline) = {statistic(_get(d, 'sharpe', 'p_le_zero'), '.3f')}; mean daily PnL "
                            f"{_leveled(interval(d.get('mean_daily_pnl'), '.2f', 1e4), level)} bp of the entry price"))
    blocks.append(("kv", rows))
    short = _short_span(results)
    if short:
        blocks.append(("p", f"Note: {short}."))
    if any(_has_undefined(sig.get(k)) for k in ("rl_vs_best_baseline", "rl_vs_best_on_split")):
        blocks.append(("p", UNDEFINED_NOTE))
    caveat = _negative_sharpe_caveat(results)
    if caveat:
        blocks.append(("p", caveat))
    return blocks


def _short_span(results: Mapping[str, Any]) -> str | None:
    """Why the run's intervals cover less than their level (a span of few days), or None."""
    from exitcore.evaluation.significance import short_span_words

    sig = _get(results, "evaluators", "significance") or {}
    for key in ("rl_vs_best_baseline", "rl_vs_best_on_split"):
        if isinstance(sig.get(key), Mapping) and "n_days" in sig[key]:
            return short_span_words(sig[key]["n_days"])
    rl = _get(sig, "intervals", "rl")
    return short_span_words(rl.get("n_days")) if isinstance(rl, Mapping) else None


def _leveled(text: str, level: str) -> str:
    """An interval's text with its confidence level (`` 95%``) after it, where it has bounds."""
    return text if "undefined" in text or "[" not in text else text + level


def _variance_words(dsr: Mapping[str, Any]) -> str:
    """Where the DSR's trial variance came from: the null, or the recorded trials' dispersion
    (a run from before ``variance_source`` was recorded says only null or recorded)."""
    source = dsr.get("variance_source")
    if not isinstance(source, str):
        return "null default 1/(T-1)" if dsr.get("variance_default") else "recorded trials"
    recorded, k = dsr.get("recorded_variance"), dsr.get("recorded_trials")
    if source.startswith("null") and isinstance(k, int) and k >= 2 and _finite(recorded):
        return f"{source}, larger than the {k} recorded trials' {statistic(recorded, '.4g')}"
    return source


def _negative_sharpe_caveat(results: Mapping[str, Any]) -> str | None:
    """A warning when RL and the best baseline both lose: a negative Sharpe is more negative the
    steadier the losses, so the Sharpe ranks a policy losing less, but more steadily, lower."""
    metrics = _policy_metrics(results)
    best = _get(results, "best_baseline", "name")
    sharpes = [_get(metrics, p, "sharpe") for p in ("rl", best)]
    if not all(isinstance(s, (int, float)) and _finite(s) and s < 0 for s in sharpes):
        return None
    return ("Both RL and the best baseline lose on this split (Sharpe < 0). A negative Sharpe is the more "
            "negative the steadier the losses, so it can rank the policy that loses less money lower: read "
            "the mean daily PnL difference beside the Sharpe difference.")


@attrs.frozen
class TrialsToday:
    """The registry's trials on a run's data today: ``count`` (``N``) and ``sharpes``, the
    per-day headline Sharpes of the *other* trials the DSR's variance is taken over
    (:func:`exitcore.evaluation.significance.recorded_trial_sharpes`)."""

    count: int
    sharpes: tuple[float, ...] = ()
    #: the runs directory whose registry counted them (None: given by the caller)
    registry: Path | None = None


@attrs.frozen
class DsrToday:
    """A run's deflated Sharpe ratio recomputed with today's trials (:func:`dsr_with_trials_today`)."""

    value: float
    n_trials: int  #: today's N
    n_at_run_time: int  #: the N it was deflated for when it ran
    sr0: float  #: per day
    variance: float  #: the trials' Sharpe variance per day
    variance_source: str


def dsr_with_trials_today(dsr: Mapping[str, Any], trials_now: int | TrialsToday | None) -> DsrToday | None:
    """The DSR recomputed with the registry's trials today, when runs were added on the same
    data after this one: choosing this run among them is a selection the DSR must count. Its
    trial variance is recomputed by the run-time rule, ``max(1/(T-1), V_rec)`` over today's
    recorded trials and this run, when the run used that rule and today's Sharpes are known;
    else the run's own ``V`` is kept. None when no trial was added (the recorded DSR stands),
    or the recorded one is undefined or incomplete. ``dsr``: results.json's significance
    ``dsr`` table."""
    from exitcore.evaluation.significance import (
        GIVEN_BY_CALLER,
        conservative_trials_variance,
        expected_max_sharpe,
        psr_from_moments,
    )

    today = trials_now if isinstance(trials_now, TrialsToday) else TrialsToday(trials_now or 0)
    n = dsr.get("n_trials")
    if not today.count or not isinstance(n, int) or today.count <= n or _undefined_stat(dsr, "dsr"):
        return None
    try:
        variance, source = float(dsr["trials_sharpe_variance"]), "as at run time"
        if isinstance(trials_now, TrialsToday) and isinstance(dsr.get("variance_source"), str) \
                and dsr["variance_source"] != GIVEN_BY_CALLER:
            choice = conservative_trials_variance(int(dsr["n_days"]), [*today.sharpes, float(dsr["sharpe"])])
            # never below the run's own V: a dispersed trial replaced by a steadier rerun must not
            # lower the bar the run was held to
            if choice["trials_sharpe_variance"] > variance:
                variance, source = choice["trials_sharpe_variance"], choice["variance_source"]
        sr0 = expected_max_sharpe(today.count, variance)
        value = psr_from_moments(float(dsr["sharpe"]), int(dsr["n_days"]), float(dsr["skew"]), float(dsr["kurtosis"]), sr0)
    except (KeyError, TypeError, ValueError):
        return None
    return DsrToday(float(value), today.count, n, float(sr0), float(variance), source)


def _dsr_with_more_trials(dsr: Mapping[str, Any], trials_now: int | TrialsToday | None) -> tuple[str, str] | None:
    """The report's row for :func:`dsr_with_trials_today`, if any."""
    from exitcore.evaluation.significance import ANNUALISATION

    today = dsr_with_trials_today(dsr, trials_now)
    if today is None:
        return None
    added = today.n_trials - today.n_at_run_time
    more = f"{plural(added, 'more trial')} on this data {'was' if added == 1 else 'were'}"
    return ("DSR with today's trials", f"{statistic(today.value, '.3f')} with N = {today.n_trials} (SR0 = "
                                       f"{statistic(today.sr0 * ANNUALISATION, '.2f')} annualised, trial variance "
                                       f"{statistic(today.variance, '.4g')} per day: {today.variance_source}): "
                                       f"{more} recorded after this run")


def not_recorded_words(run_id: str, run_dir: Path) -> str:
    """What a run directory that no registry records (copied in, or its registry lost) means for
    its deflated Sharpe ratio, and the command that records it."""
    from exitcore.words import command

    try:
        source = read_results(run_dir).get("trials_source")
    except RunDirError:  # no results (or unreadable ones): no deflated Sharpe to speak of
        source = False
    then = f" ({source})" if isinstance(source, str) and source else ""
    here = Path(run_dir).resolve()
    from exitcore.registry import runs_dir_words

    record = (f"`{command()} runs --record{runs_dir_words(here.parent)}` records it there" if here.name == run_id else
              f"`{command()} runs --record` records a run directory named by its run id ({run_id})")
    dsr = "" if source is False else f", and its deflated Sharpe counted the trials recorded where it ran{then}"
    return (f"{run_id} is read from {run_dir}, which no registry here records (a copy, or its registry was lost): "
            f"no registry here counts it as a trial{dsr}; compare it in the runs directory that recorded it, or "
            f"record it where the study's runs are: {record}")


def current_trials(run_dir: Path, runs_dir: Any = None, split: str | None = None) -> TrialsToday | None:
    """The registry's trials today on the data the run in ``run_dir`` used: their count and the
    other trials' per-day Sharpes on ``split`` (default: the split the run was evaluated on;
    ``None`` when no registry that recorded the run is found, or it cannot be read). The
    registry is the one of the run directory's parent, else of ``runs_dir``; it is only read."""
    from exitcore.evaluation.significance import recorded_trial_sharpes
    from exitcore.registry import Registry, RegistryError, resolve_runs_dir

    try:
        info = read_run_info(run_dir)
        data_hash = (info.get("data") or {}).get("hash")
        split = split or str(read_results(run_dir).get("split") or "test")
    except RunDirError:
        return None
    if not data_hash:
        return None
    here = Path(run_dir).resolve()
    names = {here.name, info.get("run_id")}  # a copy kept under another name is still the run its run.json names
    for directory in (here.parent, resolve_runs_dir(runs_dir)):
        if not Registry.exists(directory):
            continue
        try:  # read-only: a report must work on an archived, read-only runs directory too
            with Registry(directory, read_only=True) as registry:
                records = registry.list(data_hash=data_hash)
                own = next((r for r in records if r.id in names or registry.path_of(r).resolve() == here), None)
                if own is None:
                    continue  # this registry did not record the run
                count = registry.trial_count(data_hash)
        except RegistryError:
            continue
        return TrialsToday(count, tuple(recorded_trial_sharpes(records, split, exclude=own.trial)),
                           Path(directory).resolve())
    return None


def _in_sample_section(results: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Block]:
    metrics: dict[str, Mapping[str, Any]] = {}
    metrics.update(_get(results, "evaluators", "trade_metrics", "train", "policies") or {})
    metrics.update(_get(results, "evaluators", "baselines", "train", "policies") or {})
    selection = _get(results, "best_baseline", "train_sharpes") or {}
    blocks: list[Block] = [("h", "In-sample: TRAIN (in-sample), training data, not an out-of-sample result")]
    if metrics:
        # point values only (no intervals in-sample): the titles say no [CI]
        header = ["policy (TRAIN, in-sample)", *(t.replace(" [CI]", "") for t in _titles(config))]
        blocks.append(("table", header, [[f"{n} [in-sample]", *(fn(m, {}) for _, fn in _COLUMNS)] for n, m in metrics.items()]))
    if selection:
        blocks.append(("p", "baseline selection, daily Sharpe on the training split (in-sample): "
                            + ", ".join(f"{k} {statistic(v, '.2f')}" for k, v in selection.items())))
    if len(blocks) == 1:
        blocks.append(("p", "no in-sample figures recorded"))
    return blocks


def _span_days(span: Any) -> str:
    """``2019-01-02 .. 2019-06-28`` of a ``[start, end]`` pair of ISO times (``-`` if it is not one)."""
    if isinstance(span, list) and len(span) == 2 and all(isinstance(t, str) for t in span):
        return " .. ".join(t[:10] for t in span)
    return "-"


def _walk_forward_section(wf: Mapping[str, Any], trials_now: int | TrialsToday | None = None) -> list[Block]:
    agg = wf.get("aggregate") or {}
    header = ["window", "test span", "trades", "best baseline (train)", "RL Sharpe", "best baseline Sharpe"]
    rows = []
    for w in wf.get("windows") or []:
        m = w.get("metrics") if isinstance(w.get("metrics"), Mapping) else {}
        rows.append([str(w.get("window")), _span_days(w.get("test_span")), str(w.get("n_test_trades")),
                     str(w.get("best_baseline")), statistic(_get(m, "rl", "sharpe"), ".2f"), statistic(_get(m, "best_baseline", "sharpe"), ".2f")])
    am = agg.get("metrics") if isinstance(agg.get("metrics"), Mapping) else {}
    rows.append(["all", _span_days(agg.get("span")), statistic(_get(am, "rl", "n_trades"), "d"),
                 "per window", interval(_get(agg, "intervals", "rl", "sharpe")), interval(_get(agg, "intervals", "best_baseline", "sharpe"))])
    blocks: list[Block] = [("h", f"Walk-forward ({agg.get('windows', len(rows) - 1)} windows, {agg.get('label', 'TEST (out-of-sample)')})"),
                           ("table", header, rows)]
    diff = agg.get("rl_vs_best_baseline") if isinstance(agg.get("rl_vs_best_baseline"), Mapping) else None
    dsr = agg.get("dsr") if isinstance(agg.get("dsr"), Mapping) else {}
    text = []
    if diff:
        text.append(f"RL - walk-forward best baseline: Sharpe {interval(diff.get('sharpe'))}, p (H0: RL <= baseline) = {statistic(_get(diff, 'sharpe', 'p_le_zero'), '.3f')}.")
    if "dsr" in dsr:
        text.append(f"Deflated Sharpe ratio of the concatenated RL ledger: {_undefined_stat(dsr, 'dsr') or statistic(dsr['dsr'], '.3f')} "
                    f"(N = {dsr.get('n_trials')}).")
        # with the trials recorded since (their count only: their Sharpes are the test split's, and
        # this DSR's trial variance is the null's, as at run time)
        count = trials_now.count if isinstance(trials_now, TrialsToday) else trials_now
        later = _dsr_with_more_trials(dsr, count)
        if later:
            text.append(f"{later[0]}: {later[1]}.")
    if text:
        blocks.append(("p", " ".join(text)))
    return blocks


def report_blocks(results: Mapping[str, Any], info: Mapping[str, Any], config: Mapping[str, Any] | None = None,
                  walk_forward: Mapping[str, Any] | None = None, trials_now: int | TrialsToday | None = None,
                  trained_steps: int | None = None) -> list[Block]:
    """The report's content, independent of the output format (``trials_now``: the registry's
    trials on the run's data today, their count or :func:`current_trials`; ``trained_steps``:
    the steps training ran, see :func:`trained_steps`)."""
    title = f"exitcore report: {info.get('run_id') or info.get('id') or results.get('experiment', '?')}"
    blocks: list[Block] = [("title", title)]
    blocks += _run_section(results, info, config, trained_steps)
    blocks += _audit_section(results)
    blocks += _comparison_section(results, config)
    blocks += _significance_section(results, trials_now)
    blocks += _in_sample_section(results, config)
    blocks += _other_evaluators_section(results)
    if walk_forward:
        blocks += _walk_forward_section(walk_forward, trials_now)
    return blocks


def summary_text(results: Mapping[str, Any]) -> str:
    """A short text summary of ``results.json``: RL, the best and the fixed baseline, DSR, audit."""
    metrics = _policy_metrics(results)
    intervals = _get(results, "evaluators", "significance", "intervals") or {}
    best = _get(results, "best_baseline", "name")
    keep = [p for p in ("rl", best, "fixed_stop_target") if p in metrics]
    columns = [c for c in _COLUMNS if c[0] in _SUMMARY_COLUMNS]
    header = ["policy", *_ci_titles([c[0] for c in columns], intervals)]
    rows = [[p + (" *" if p == best else ""), *(fn(metrics[p], intervals.get(p) or {}) for _, fn in columns)]
            for p in dict.fromkeys(keep)]
    lines = [f"{results.get('label', '')}:", *_text_table(header, rows)]
    conf = _get(results, "evaluators", "significance", "confidence")
    level = f" {100 * conf:.0f}%" if isinstance(conf, (int, float)) else ""
    if level:  # an interval without its level reads as 95% whatever it is
        lines.append(f"[CI] = {level.strip()} bootstrap intervals over the days, for this one trained policy (they do not "
                     "cover another training seed)")
        short = _short_span(results)
        if short:
            lines.append(f"note: {short}")
    verdict = results.get("audit_verdict")
    if verdict in ("FAIL", "SUSPECT"):  # first, as show and report put it: the numbers below are not to be trusted
        why = audit_why(results.get("evaluators") or {})
        lines.insert(0, f"!! {describe_verdict(verdict, results.get('audit_verdict_from'), why)}: do not trust "
                        "these numbers (details at the end and in `exitcore report`)")
    dsr = _get(results, "evaluators", "significance", "dsr") or {}
    if dsr:  # undefined too (returns of zero variance: trial AA), as the report says it
        n = dsr.get("n_trials")
        trials = f" (N = {plural(n, 'trial') if isinstance(n, int) else f'{n} trials'})" if n is not None else ""
        lines.append(f"deflated Sharpe ratio of RL {_undefined_stat(dsr, 'dsr') or statistic(dsr['dsr'], '.3f')}{trials}")
    diff = _get(results, "evaluators", "significance", "rl_vs_best_baseline") or {}
    if diff.get("sharpe"):  # the verdict a reader came for, without opening the report
        lines.append(f"RL - {diff.get('baseline')}: Sharpe {_leveled(interval(diff.get('sharpe')), level)}, p (H0: RL <= "
                     f"baseline) = {statistic(_get(diff, 'sharpe', 'p_le_zero'), '.3f')}; mean daily PnL "
                     f"{_leveled(interval(diff.get('mean_daily_pnl'), '.2f', 1e4), level)} bp")
        if _negative_sharpe_caveat(results):
            lines.append("  (both lose: a steadier loser has the more negative Sharpe; `exitcore report` explains)")
    if best in keep:
        lines.append(f"* best baseline, chosen on the training split: {best}")
    if _has_undefined({p: intervals.get(p) for p in keep}) or _has_undefined(diff):
        lines.append(UNDEFINED_NOTE)
    if results.get("audit_verdict"):
        sources = results.get("audit_verdict_from")
        if any(s != LOOKAHEAD for s in sources or ()):
            lines.append(f"{describe_verdict(results['audit_verdict'], sources)} (`exitcore report` shows its result)")
        else:
            culprits = _get(results, "evaluators", "lookahead_audit", "culprits") or []
            named = "; ".join(_culprit_words(c) for c in culprits[:3])
            rules = _get(results, "evaluators", "lookahead_audit", "suspect")
            if results["audit_verdict"] == "SUSPECT" and isinstance(rules, list) and rules and not named:
                # why, in the summary too: the rules the results break, one short line each
                lines.append(f"look-ahead audit: SUSPECT: no leak found in the sampled decisions, but the results "
                             f"break {plural(len(rules), 'plausibility rule')} (`exitcore report` has the details):")
                lines += [f"  - {_rule_words(r)}" for r in rules[:_MAX_SUMMARY_RULES]]
            else:
                lines.append(f"look-ahead audit: {results['audit_verdict']}" + (f" ({named}; `exitcore report` has the details)" if named else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------- rendering


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for k, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(blocks: Sequence[Block], fmt: str = "text") -> str:
    """Render report blocks as plain text or Markdown."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    md = fmt == "markdown"
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "title":
            out += [f"# {block[1]}" if md else block[1], "" if md else "=" * len(block[1])]
        elif kind == "h":
            gap = [] if md and out and out[-1] == "" else [""]  # one blank line, not a second after a title's
            out += gap + [f"## {block[1]}" if md else block[1], "" if md else "-" * len(block[1])]
        elif kind == "kv":
            if md:
                out += ["| | |", "|---|---|", *(f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in block[1])]
            else:
                width = max((len(k) for k, _ in block[1]), default=0)
                out += [f"{k.ljust(width)}  {v}" for k, v in block[1]]
        elif kind == "table":
            header, rows = block[1], block[2]
            if md:
                out += ["| " + " | ".join(map(_md_cell, header)) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
                out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in rows]
            else:
                out += _text_table(header, rows)
        elif kind == "pre":
            out += ["```", block[1], "```"] if md else [block[1]]
        elif kind == "p":
            out += ([] if out and out[-1] == "" else [""]) + [_md_paragraph(block[1])] if md else [block[1]]
    return "\n".join(out).strip() + "\n"


def _md_paragraph(text: str) -> str:
    """A paragraph as Markdown shows it verbatim: a leading ``*``, ``-``, ``+`` or ``#`` (the
    best-baseline note's ``* best baseline ...``) would otherwise start a list or a heading."""
    return "\\" + text if text[:1] in "*-+#" and text else text


def render_report(run_dir: str | Path, fmt: str = "text", trials_now: int | TrialsToday | None = None, record: Any = None) -> str:
    """The report of the run in ``run_dir`` (see the module docstring).

    results.json is required, and refused when it is not this run's (see
    :func:`~exitcore.evaluation.rundir.check_results_belong`; ``record``: the run's registry row,
    else looked up in the registry of the directory holding ``run_dir``). Any other file that is
    missing or damaged is named in a line at the top, with what is not shown because of it.
    """
    from exitcore.evaluation.rundir import RUN_FILE, check_results_belong, config_edited, holder_record_or_none

    run_dir = Path(run_dir)
    results = read_results(run_dir)
    missing: list[str] = []
    try:
        info = read_run_info(run_dir)
        if not info:
            missing.append(f"{run_dir / RUN_FILE}: no such file; the run id, data, split boundaries, device and "
                           "timesteps are not shown")
    except RunDirError as exc:
        info = {}
        missing.append(f"{exc}; the run id, data, split boundaries, device and timesteps are not shown")
    check_results_belong(run_dir, results, info, record if record is not None else holder_record_or_none(run_dir))
    try:
        config = read_config(run_dir)
    except RunDirError as exc:  # the configuration summary is optional in a report, but its absence is said
        config = None
        missing.append(f"{exc}; the PPO settings, costs and components are not shown")
    walk_forward, why = read_walk_forward(run_dir, results, config)
    if why:
        missing.append(f"{why}; the walk-forward section is not shown")
    missing += _missing_artefacts(run_dir, results)
    blocks = report_blocks(results, info, config, walk_forward, trials_now, trained_steps(run_dir))
    for line in reversed(data_findings_lines(info, results)):  # the bars the figures stand on
        blocks.insert(1, ("p", line))
    cheap = _cost_warning(info)
    if cheap:
        blocks.insert(1, ("p", f"!! {cheap}"))
    edited = config_edited(run_dir, info)
    if edited:
        blocks.insert(1, ("p", f"!! {edited}"))
    stale = breakeven_rounding_trades(run_dir, results)
    if stale:
        blocks.insert(1, ("p", f"!! {stale} trades of this run's {results.get('split', 'test')} ledger net float64 rounding "
                               "around 0 (breakeven stops): it was evaluated before exitcore counted them as zero, so "
                               "its win rate and profit factor below count them as wins or losses. `exitcore compare` "
                               "recomputes both from the ledger; run the experiment again for a corrected report."))
    for note in reversed(missing):  # first: what the rest of the report is missing
        blocks.insert(1, ("p", f"!! incomplete run directory: {note}"))
    return render(blocks, fmt)


def _missing_artefacts(run_dir: Path, results: Mapping[str, Any]) -> list[str]:
    """The ledgers results.json names and the trained policy, when missing or unreadable: the
    report does not need them, but ``compare`` and ``audit`` do, and a reader should know."""
    import zipfile

    from exitcore.evaluation.rundir import CHECKPOINT_FILES

    notes = []
    evaluated = results.get("split", "test")
    for split, name in (results.get("ledgers") or {}).items():
        if isinstance(name, str) and not (run_dir / name).is_file():
            needed = "; `exitcore compare` needs it" if split == evaluated else ""
            notes.append(f"{run_dir / name} (the {split} ledger) is missing{needed}")
        elif isinstance(name, str) and split == evaluated:  # what compare refuses, said here too
            damage = _ledger_damage(run_dir / name, results, split)
            if damage:
                notes.append(f"{damage}; `exitcore compare` refuses the run")
    checkpoint = next((run_dir / rel for rel in CHECKPOINT_FILES if (run_dir / rel).is_file()), None)
    if checkpoint is None:
        notes.append(f"{run_dir}: no trained policy ({' or '.join(CHECKPOINT_FILES)}); `exitcore audit` of the run "
                     "is not possible")
    else:
        try:  # torch saves a zip archive: a truncated one fails its directory or CRC check, cheaply
            with zipfile.ZipFile(checkpoint) as archive:
                bad = archive.testzip()
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            bad = str(exc) or type(exc).__name__
        if bad:
            notes.append(f"{checkpoint} is damaged ({bad}); `exitcore audit` of the run is not possible")
    return notes


def _ledger_damage(path: Path, results: Mapping[str, Any], split: str) -> str:
    """Why the evaluated split's ledger is not the one the run's evaluation wrote (another file,
    truncated, unreadable: trial Z found report silent where compare refused), else ``""``.
    Where results.json records the ledger's sha256 that alone tells any change (a report need
    not parse an M1 run's ledger of 100 MB and more); else the ledger is read and its trades
    counted, as compare does."""
    from exitcore.evaluation.ledger_schema import LedgerError, read_ledger
    from exitcore.evaluation.rundir import check_ledger_complete, check_ledger_file

    digests = results.get("ledger_sha256")
    try:
        if isinstance(digests, Mapping) and isinstance(digests.get(split), str):
            check_ledger_file(path, results, split)
            return ""
        check_ledger_complete(path, read_ledger(path), dict(results), split)
    except (RunDirError, LedgerError) as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read ({exc})"
    return ""


def _cost_warning(info: Mapping[str, Any]) -> str | None:
    """The run's implausibly-cheap-costs warning, from the cost summary in run.json (if recorded)."""
    summary = _cost_summary(info)
    return summary.warning() if summary else None


#: the data findings a report or compare lists for a run (the rest are counted)
SHOW_DATA_FINDINGS = 3
#: levels of a recorded data finding that are not warnings, and are not repeated
_QUIET_LEVELS = ("info", "note")
#: the dates either side of a long hole, in the words of exitcore.data.validate.long_hole_findings
_HOLE = re.compile(r"a hole of [\d,.]+ days in the data, between the bars of (\d{4}-\d{2}-\d{2})[ \d:]* and "
                   r"(\d{4}-\d{2}-\d{2})")


@attrs.frozen
class DataFindings:
    """The data warnings a run recorded when it read its bars (run.json's ``data.findings``):
    ``shown`` the first :data:`SHOW_DATA_FINDINGS` (without their ``warning:`` level), ``more``
    how many others, ``holes`` whether one is a hole longer than a week, ``hole_days`` the
    weekdays of the evaluated split (``split``) inside such holes (None: not worked out)."""

    shown: tuple[str, ...]
    more: int
    holes: bool
    hole_days: int | None
    split: str

    def listed(self) -> list[str]:
        """The findings shown, and ``... and N more`` where some are not."""
        more = [f"... and {self.more} more (run.json's data.findings lists them)"] if self.more else []
        return [*self.shown, *more]

    def zero_days(self, whose: str = "the") -> str:
        """What a hole does to the daily figures, for a clause (empty without a hole)."""
        if not self.holes:
            return ""
        if self.hole_days is None:
            here = ""
        elif self.hole_days:
            here = f" (here {self.hole_days:,} weekdays of {whose} {self.split} split)"
        else:
            here = f" (none lies in {whose} {self.split} split)"
        return (f"days without bars inside a hole count as zero days in {whose} daily Sharpe, Sharpe interval and "
                f"deflated Sharpe{here}")


def data_findings(info: Mapping[str, Any], results: Mapping[str, Any] | None = None) -> DataFindings | None:
    """The data findings run.json recorded (``info``: :func:`read_run_info`), None where it
    recorded none (a run made before run.json held them, or clean data). ``results``: its
    results.json, to count the weekdays of the evaluated split inside a long hole."""
    data = info.get("data")
    recorded = data.get("findings") if isinstance(data, Mapping) else None
    if not isinstance(recorded, list):
        return None
    warnings_ = []
    for f in recorded:
        text = str(f).strip()
        level, sep, rest = text.partition(": ")
        if sep and level in _QUIET_LEVELS:
            continue
        if text:
            warnings_.append(rest if sep and level == "warning" else text)
    if not warnings_:
        return None
    holes = [m for m in map(_HOLE.search, warnings_) if m]
    unnamed = any("more hole(s) longer than" in w for w in warnings_)  # holes beyond those named: not counted
    split = str((results or {}).get("split") or "test")
    spans = (results or {}).get("spans")
    days = None if unnamed or not isinstance(spans, Mapping) else _weekdays_in_holes(holes, spans.get(split))
    return DataFindings(tuple(warnings_[:SHOW_DATA_FINDINGS]), max(0, len(warnings_) - SHOW_DATA_FINDINGS),
                        bool(holes) or unnamed, days, split.upper())


def _weekdays_in_holes(holes: Sequence[Any], span: Any) -> int | None:
    """The weekdays strictly between the two dates of each hole (``_HOLE`` matches) that lie in
    ``span`` (``[start, end]``): days of the daily series without a bar, hence zero days."""
    if not holes or not (isinstance(span, (list, tuple)) and len(span) == 2):
        return None
    import numpy as np
    import pandas as pd

    try:
        first, last = (pd.Timestamp(str(t)[:10]) for t in span)
        days = 0
        for m in holes:
            after, before = pd.Timestamp(m.group(1)) + pd.Timedelta(days=1), pd.Timestamp(m.group(2))
            lo, hi = max(after, first), min(before, last + pd.Timedelta(days=1))
            if lo < hi:
                days += int(np.busday_count(lo.date(), hi.date()))
    except (ValueError, TypeError):
        return None
    return days


def data_findings_lines(info: Mapping[str, Any], results: Mapping[str, Any] | None = None) -> list[str]:
    """The report's ``!!`` lines for the run's recorded data findings (none without any)."""
    found = data_findings(info, results)
    if found is None:
        return []
    why = found.zero_days() or "`exitcore run` warned about them once"
    head = f"!! the data's findings, recorded when this run read its bars: {why}:"
    return [head, *(f"!!   - {f}" for f in found.listed())]


def breakeven_rounding_trades(run_dir: str | Path, results: Mapping[str, Any]) -> int:
    """Trades of the evaluated split's ledger whose net pnl is float64 rounding around zero
    (0 < |pnl| <= PNL_ZERO_TOLERANCE). Only ledgers written before exitcore wrote such pnl as
    exactly 0 have them, and their stored win rate counted them as wins (0 when unreadable)."""
    import numpy as np
    import pandas as pd

    from exitcore.evaluation.ledger_schema import PNL_ZERO_TOLERANCE

    name = (results.get("ledgers") or {}).get(results.get("split", "test"))
    path = Path(run_dir) / name if name else None
    if path is None or not path.is_file():
        return 0
    try:
        pnl = (pd.read_parquet(path, columns=["pnl"]) if path.suffix == ".parquet"
               else pd.read_csv(path, usecols=["pnl"]))["pnl"].to_numpy(dtype=float)
    except (OSError, ValueError, KeyError):
        return 0  # the report itself does not need the ledger
    return int(np.count_nonzero((pnl != 0) & (np.abs(pnl) <= PNL_ZERO_TOLERANCE)))


def trained_steps(run_dir: str | Path) -> int | None:
    """The steps the run trained: ``global_step`` of the last record of its ``train_log.jsonl``
    (``None`` without one). A resumed run appends to the log, so its last record is the total."""
    import json

    path = Path(run_dir) / TRAIN_LOG_FILE
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            step = json.loads(line).get("global_step")
        except (ValueError, AttributeError):
            continue  # a torn last line from a killed run
        if isinstance(step, int):
            return step
    return None
