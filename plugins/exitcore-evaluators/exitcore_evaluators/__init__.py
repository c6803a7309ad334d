"""exitcore evaluators: what a run reports about its exits (design.md §7).

Each evaluator is ``evaluator(ledger, context) -> dict`` (``register_evaluators``): ``ledger``
is the RL policy's deterministic ledger on the evaluated split (out of sample), ``context`` an
:class:`exitcore.evaluation.context.EvalContext`. Results land in the run's ``results.json``
under the evaluator's name; ``exitcore report`` renders them.

* ``trade_metrics`` - every metric of :mod:`exitcore.evaluation.metrics` for the RL policy
  (deterministic and each sampled seed) on the evaluated split, plus the same on the training
  split labelled ``TRAIN (in-sample)``.
* ``baselines`` - every baseline exit on the same trades beside RL (fixed stop/target,
  trailing stops, time exits), and the best baseline, chosen on the training split.
* ``significance`` - block-bootstrap intervals (Sharpe, mean daily PnL, mean return, win rate)
  for every policy, the probabilistic and deflated Sharpe ratios of RL (the number of trials
  from the run registry), and RL minus the best baseline with its interval.
* ``lookahead_audit`` - the look-ahead audit of the experiment with the trained policy
  (:mod:`exitcore.evaluation.audit`): verdict ``PASS``, ``FAIL`` (a leak, named) or
  ``SUSPECT`` (implausible out-of-sample numbers).

This module only registers (it is imported for every CLI command); the implementations are in
:mod:`exitcore_evaluators.evaluators`, imported when an evaluator is built.
"""

from __future__ import annotations

import attrs

from exitcore import hookimpl
from exitcore.components import lazy
from exitcore.params import FieldError, non_negative_int, one_of, positive_int

#: the poisoning modes of the audit, repeated here so registering does not import torch;
#: the plugin's tests check they equal exitcore.env.causality.POISON_MODES
POISON_MODES = ("truncate", "nan", "huge", "random_walk")


@attrs.frozen
class TradeMetricsParams:
    """``quick_exit_bars``: a trade held at most this many bars counts as a quick exit."""

    quick_exit_bars: int = attrs.field(default=3, validator=positive_int)


@attrs.frozen
class SignificanceParams:
    """Bootstrap settings beyond ``eval.bootstrap_samples`` and ``eval.confidence``.

    ``method``: ``stationary`` (geometric block lengths) or ``circular`` (fixed blocks);
    ``block_length``: mean block length in days, 0 for the default ``round(days ** (1/3))``.
    """

    method: str = attrs.field(default="stationary", validator=one_of(["stationary", "circular"]))
    block_length: int = attrs.field(default=0, validator=non_negative_int)


def _modes(_inst, attribute, value):
    if not isinstance(value, list) or not value or any(m not in POISON_MODES for m in value):
        raise FieldError(attribute.name, f"expected a non-empty list of {', '.join(POISON_MODES)}, got {value!r}")


@attrs.frozen
class AuditParams:
    """``decisions``: decisions to sample (0: ``eval.audit_decisions``); ``modes``: poisonings to apply."""

    decisions: int = attrs.field(default=0, validator=non_negative_int)
    modes: list[str] = attrs.field(factory=lambda: list(POISON_MODES), validator=_modes)


def _lazy(name):
    return lazy(f"exitcore_evaluators.evaluators:{name}")


@hookimpl
def register_evaluators(register):
    """Register the shipped evaluators."""
    register("trade_metrics", _lazy("trade_metrics"), params=TradeMetricsParams,
             description="every trade and daily metric of RL (and sampled seeds); training split labelled in-sample")
    register("baselines", _lazy("baselines"),
             description="RL beside fixed stop/target, trailing-stop and time exits; best baseline chosen on train")
    register("significance", _lazy("significance"), params=SignificanceParams,
             description="block-bootstrap intervals, PSR, deflated Sharpe (trials from the registry), RL - best baseline")
    register("lookahead_audit", _lazy("lookahead_audit"), params=AuditParams,
             description="poison/truncate the future at sampled decisions and entries: PASS, FAIL (leak named) or SUSPECT")
