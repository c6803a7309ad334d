"""What an evaluator plugin is handed: :class:`EvalContext` (see ``register_evaluators``).

An evaluator is ``evaluator(ledger, context) -> dict``: ``ledger`` is the RL policy's
(deterministic) ledger on the evaluated split and ``context`` everything else it may use. The
context is built once per evaluation by :func:`exitcore.evaluation.evaluate.evaluate` and is
read-only (frozen; its mappings must not be mutated).

The evaluated split is out of sample (``test`` by default). Evaluators must not use data
outside it except where a field says so: the training-split ledgers (``train_ledgers``, for
in-sample figures that are reported *as* in-sample) and the baseline selection, which was made
on the training split before the evaluators run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import pandas as pd

from exitcore.evaluation.ledger import RL_POLICY
from exitcore.evaluation.significance import is_rl_policy


@attrs.frozen(eq=False)
class EvalContext:
    """Everything an evaluator may read besides the RL ledger. Fields:

    * ``split`` — name of the evaluated split (``"test"``), the split of every ``ledgers`` row;
    * ``in_sample`` — true only if the evaluated split is the training split;
    * ``start``/``end`` — the evaluated split's calendar span (open of its first bar, close of
      its last bar): the span of the daily series of every time-series metric;
    * ``spans`` — ``{split name: (start, end)}`` for every split (train included);
    * ``assembled`` — the experiment on its data (:class:`exitcore.assembly.Assembled`): bars,
      trade table, components, cost model, the experiment's ``resolved`` configuration;
    * ``pools`` — ``{split name: int64 array of trade rows}``: the valid trades of each split
      (rows of ``assembled.table``; the ``trade`` column of the ledgers);
    * ``ledgers`` — ``{policy name: ledger}`` on the evaluated split: ``rl`` (deterministic),
      ``rl_sample_<k>`` (``eval.sample_seeds`` sampled-policy ledgers) and every baseline
      (``fixed_stop_target``, ``trailing_<m>atr``, ``time_<n>bars``);
    * ``train_ledgers`` — the same policies on the training split: **in-sample**, for figures
      that are labelled as such (``TRAIN (in-sample)``), never for out-of-sample claims;
    * ``best_baseline`` — name of the baseline chosen on the training split by its daily
      Sharpe (:func:`exitcore.evaluation.baselines.choose_best`), a key of ``ledgers``;
    * ``baseline_train_sharpes`` — every baseline's training-split Sharpe: the selection's
      evidence (in-sample);
    * ``n_trials`` — the number of trials on this dataset for the deflated Sharpe ratio, taken
      from the run registry (``Registry.trial_count(data_hash)``) by the caller, never typed
      by hand; ``trials_source`` says where it came from;
    * ``config`` — the experiment's :class:`exitcore.config.EvalConfig` (bootstrap samples,
      confidence, audit decisions, …);
    * ``policy`` — the trained policy (a ``torch.nn.Module`` on the data's device), or ``None``
      when evaluating without one;
    * ``rebuild`` — ``rebuild(bars) -> Assembled``: the same experiment (same trades, same
      device) assembled on other bars, with every feature, mask and guard rebuilt from its
      factory; the look-ahead audit calls it with truncated and poisoned bars. Reward terms
      are left out (they may use hindsight, and nothing but training reads them);
    * ``seed`` — the run's seed, for randomness an evaluator wants to vary with it (the audit's
      sampling; the bootstrap uses ``significance.BOOTSTRAP_SEED`` instead, the same in every run);
    * ``recorded_sharpes`` — per-day headline Sharpes of the *other* trials recorded on this
      dataset and split (one per trial, audit FAILs left out:
      :func:`exitcore.evaluation.significance.recorded_trial_sharpes`), for the deflated Sharpe
      ratio's trial variance; empty when the caller has no registry.
    """

    split: str
    in_sample: bool
    start: pd.Timestamp
    end: pd.Timestamp
    spans: Mapping[str, tuple[pd.Timestamp, pd.Timestamp]]
    assembled: Any
    pools: Mapping[str, np.ndarray]
    ledgers: Mapping[str, pd.DataFrame]
    train_ledgers: Mapping[str, pd.DataFrame]
    best_baseline: str
    baseline_train_sharpes: Mapping[str, float]
    n_trials: int
    trials_source: str
    config: Any
    policy: Any
    rebuild: Callable[[Any], Any]
    seed: int = 0
    recorded_sharpes: tuple[float, ...] = ()

    @property
    def rl_ledger(self) -> pd.DataFrame:
        """The deterministic RL policy's ledger on the evaluated split."""
        return self.ledgers[RL_POLICY]

    @property
    def rl_policies(self) -> list[str]:
        """RL ledger names (``rl`` first, then the sampled ones)."""
        return [p for p in self.ledgers if is_rl_policy(p)]

    @property
    def baselines(self) -> list[str]:
        """Baseline ledger names, in grid order."""
        return [p for p in self.ledgers if not is_rl_policy(p)]

    @property
    def label(self) -> str:
        """The evaluated split's label (``TEST (out-of-sample)``)."""
        from exitcore.evaluation.metrics import split_label

        return split_label(self.split)


def split_span(market: Any, start_bar: int, end_bar: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Calendar span of bars ``[start_bar, end_bar)``: the first bar's open to the last bar's close."""
    if end_bar <= start_bar:
        raise ValueError(f"empty bar range [{start_bar}, {end_bar})")
    first = pd.Timestamp(int(market.ts[start_bar]), unit="ns", tz="UTC")
    last = pd.Timestamp(int(market.ts[end_bar - 1]) + market.timeframe_ns, unit="ns", tz="UTC")
    return first, last
