"""The evaluators' implementations (imported when an experiment builds one).

Every factory takes ``(params, build_ctx)`` and returns ``evaluator(ledger, context) -> dict``
(see ``exitcore.hookspecs.register_evaluators``). Nothing here defines a metric: the formulas
live in :mod:`exitcore.evaluation.metrics` and :mod:`exitcore.evaluation.significance`, the
audit in :mod:`exitcore.evaluation.audit`; the evaluators choose what to compute on which
ledger and label it (out-of-sample split, or ``TRAIN (in-sample)``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from exitcore.evaluation import significance as sig
from exitcore.evaluation.baselines import best_baseline_choice
from exitcore.evaluation.metrics import compute_metrics, daily_table, split_label

#: the per-policy figures of the side-by-side comparison
_COMPARED = ("n_trades", "total_pnl", "total_pnl_ccy", "mean_return", "win_rate", "scratch_rate", "profit_factor",
             "sharpe", "sortino", "max_drawdown", "avg_bars", "quick_exit_rate")


def _metrics(ledger: pd.DataFrame, span: tuple[Any, Any], split: str, policy: str, **kw: Any) -> dict[str, Any]:
    return compute_metrics(ledger, start=span[0], end=span[1], split=split, policy=policy, **kw)


# --------------------------------------------------------------------------- trade_metrics


def trade_metrics(params: Any, _ctx: Any) -> Any:
    """Metrics of the RL ledgers on the evaluated split; the training split's, labelled in-sample."""

    def evaluate(ledger: pd.DataFrame, context: Any) -> dict[str, Any]:
        span = (context.start, context.end)
        q = params.quick_exit_bars
        policies = {"rl": _metrics(ledger, span, context.split, "rl", quick_bars=q)}
        for p in context.rl_policies:
            if p != "rl":
                policies[p] = _metrics(context.ledgers[p], span, context.split, p, quick_bars=q)
        out: dict[str, Any] = {
            "split": context.split,
            "label": context.label,
            "in_sample": context.in_sample,
            "policies": policies,
        }
        samples = [policies[p] for p in policies if p != "rl"]
        if samples:
            out["sampled_summary"] = _spread(samples)
        if "rl" in context.train_ledgers and not context.in_sample:
            train = _metrics(context.train_ledgers["rl"], context.spans["train"], "train", "rl", quick_bars=q)
            out["train"] = {"label": split_label("train"), "in_sample": True, "policies": {"rl": train}}
        return out

    return evaluate


def _spread(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, std, min and max across sampled-policy seeds of a few headline figures."""
    out: dict[str, Any] = {"n_seeds": len(results)}
    for key in ("sharpe", "mean_return", "win_rate", "total_pnl"):
        vals = np.array([r[key] for r in results], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[key] = {
            "mean": float(vals.mean()) if vals.size else math.nan,
            "std": float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
            "min": float(vals.min()) if vals.size else math.nan,
            "max": float(vals.max()) if vals.size else math.nan,
        }
    return out


# --------------------------------------------------------------------------- baselines


def baselines(_params: Any, _ctx: Any) -> Any:
    """Every baseline beside RL on the evaluated split; the best one as chosen on train."""

    def evaluate(ledger: pd.DataFrame, context: Any) -> dict[str, Any]:
        span = (context.start, context.end)
        rl = _metrics(ledger, span, context.split, "rl")
        policies = {p: _metrics(context.ledgers[p], span, context.split, p) for p in context.baselines}
        best = context.best_baseline
        comparison = []
        for name, m in {"rl": rl, **policies}.items():
            row = {"policy": name, **{k: m[k] for k in _COMPARED}}
            if name != "rl":
                row["rl_minus_sharpe"] = rl["sharpe"] - m["sharpe"]
                row["rl_minus_total_pnl"] = rl["total_pnl"] - m["total_pnl"]
            row["best_on_train"] = name == best
            comparison.append(row)
        out: dict[str, Any] = {
            "split": context.split,
            "label": context.label,
            "best_baseline": {**best_baseline_choice(best, context.baseline_train_sharpes), "metrics": policies[best]},
            "policies": policies,
            "comparison": comparison,
        }
        if best in context.train_ledgers and not context.in_sample:
            out["train"] = {
                "label": split_label("train"),
                "in_sample": True,
                "policies": {p: _metrics(context.train_ledgers[p], context.spans["train"], "train", p)
                             for p in ("rl", best) if p in context.train_ledgers},
            }
        return out

    return evaluate


# --------------------------------------------------------------------------- significance


def significance(params: Any, _ctx: Any) -> Any:
    """Bootstrap intervals for every policy, PSR and DSR of RL, RL minus the best baseline."""

    def evaluate(ledger: pd.DataFrame, context: Any) -> dict[str, Any]:
        cfg = context.config
        days = daily_table(ledger, context.start, context.end)
        boot = dict(
            start=context.start,
            end=context.end,
            n_samples=cfg.bootstrap_samples,
            confidence=cfg.confidence,
            method=params.method,
            # at most the split's days (a block as long as the series): a longer one failed the
            # run after training; the intervals record the length used
            block_length=min(params.block_length, len(days)) if params.block_length else None,
            seed=sig.BOOTSTRAP_SEED,
        )
        ledgers = {**context.ledgers, "rl": ledger}
        # the same seed for every policy: their intervals come from the same resampled days
        intervals = {p: sig.bootstrap_metrics(df, **boot) for p, df in ledgers.items()}
        daily = days["pnl"].to_numpy()
        active = int((days["n_trades"] > 0).sum())
        best = context.best_baseline

        def psr() -> dict[str, Any]:
            value = sig.probabilistic_sharpe_ratio(daily, 0.0, active_days=active)
            return {"psr": value, "benchmark_sharpe": 0.0, "active_days": active,
                    "undefined": sig.too_few_active_days(daily, active)}

        def dsr() -> dict[str, Any]:
            # V = max(null, the recorded trials' dispersion): erring against the result either way
            out = sig.deflated_sharpe_ratio(daily, context.n_trials, recorded_sharpes=context.recorded_sharpes,
                                            active_days=active)
            out["n_trials_source"] = context.trials_source or sig.GIVEN_BY_CALLER
            return out

        def vs_best() -> dict[str, Any]:
            out = sig.paired_difference(ledger, ledgers[best], **boot)
            out.update(baseline=best, chosen_on="train")
            return out

        def vs_best_here() -> dict[str, Any]:
            both = pd.concat([ledger, *(ledgers[p] for p in context.baselines)], ignore_index=True)
            out = sig.rl_vs_best_baseline(both, **boot)
            out["chosen_on"] = context.split
            return out

        return {
            "split": context.split,
            "label": context.label,
            "confidence": cfg.confidence,
            "n_samples": cfg.bootstrap_samples,
            "method": params.method,
            "intervals": intervals,
            "psr": sig.or_error(psr),
            "dsr": sig.or_error(dsr),
            "rl_vs_best_baseline": vs_best(),
            # the conservative variant: the baseline that did best on the evaluated split itself
            "rl_vs_best_on_split": vs_best_here(),
        }

    return evaluate


# --------------------------------------------------------------------------- lookahead_audit


def lookahead_audit(params: Any, _ctx: Any) -> Any:
    """The look-ahead audit with the trained policy; plausibility rules on the RL metrics."""

    def evaluate(ledger: pd.DataFrame, context: Any) -> dict[str, Any]:
        from exitcore.evaluation.audit import audit

        # in-sample metrics are passed too: the report then says the rules were not applied, and why
        metrics = _metrics(ledger, (context.start, context.end), context.split, "rl")
        report = audit(
            context.assembled,
            context.pools[context.split],
            rebuild=context.rebuild,
            policy=context.policy,
            n_decisions=params.decisions or context.config.audit_decisions,
            modes=tuple(params.modes),
            metrics=metrics,
            split=context.split,
            seed=context.seed,
        )
        return report.to_dict()

    return evaluate
