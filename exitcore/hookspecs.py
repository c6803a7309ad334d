"""The plugin contract: every hook exitcore calls, and what a plugin must return.

Write a plugin as a module (or object) with functions decorated by :data:`hookimpl` whose names
match the hooks below, and expose it through the ``exitcore`` entry-point group::

    # pyproject.toml of your distribution
    [project.entry-points.exitcore]
    my_plugin = "my_package.plugin"

    # my_package/plugin.py
    import attrs
    from exitcore import hookimpl
    from exitcore.params import non_negative

    @attrs.frozen
    class Params:
        min_profit: float = attrs.field(default=0.001, validator=non_negative)

    def build(params, ctx):
        from exitcore.actions import Action

        def blocked(state, action):
            return (action == Action.EXIT) & (state.upnl < params.min_profit)

        return blocked

    @hookimpl
    def register_exit_guards(register):
        register("my_guard", build, params=Params, description="block exits under a profit")

Rules every hook shares:

* **Hooks run at build time.** ``register_*`` hooks run once when the plugin host starts; the
  ``build`` functions they register run whenever components are built: twice before a run
  trains (the run's components and a fresh set for its first-steps check), again for each
  walk-forward window, and about four times per decision the look-ahead audit samples (it
  rebuilds features, masks, guards and the entry strategy on truncated and poisoned bars: some
  260 builds at the default 64 decisions). Keep ``build`` cheap. Nothing is dispatched per
  environment step: the step calls only the plain batched tensor functions ``build`` returned.
  Those functions must not loop over environments in Python, must not synchronise with the
  device (no ``.item()``, no ``.cpu()``), and must return tensors on ``ctx.device``.
* **Keep the entry-point module light.** It is imported for every CLI command, ``--help``
  included, so import torch and other heavy modules inside ``build``, not at module level.
* **Names are global per kind.** Two plugins registering the same name for the same kind is an
  error naming both distributions. A name holds no ``/``, ``=``, quote or control character
  and no space at either end (it is written in TOML, on command lines and in log keys).
* **Parameters** are validated against the attrs class given as ``params=``: the experiment's
  ``params`` table is structured into it with unknown keys forbidden, and validator errors are
  reported at their TOML path. Use the validators in :mod:`exitcore.params`. Without
  ``params=`` the component accepts no parameters and ``build`` receives ``None``.
* **Errors**: raise :class:`exitcore.errors.ExitcoreError` (or a subclass) for a user mistake;
  the host adds the component's name and distribution to the message.

The tensors the functions see are documented on their classes:
:class:`exitcore.env.state.EnvState` (position state, one row per environment),
:class:`exitcore.episodes.MarketTensors` (bars) and :class:`exitcore.episodes.TradeTable`
(trades). Action ids live in :class:`exitcore.actions.Action`. ``docs/plugins.md`` is the
long-form guide; a test fails if a hook below is missing from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "exitcore"

#: Marker for hook specifications (used by exitcore itself).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for hook implementations: decorate your plugin's functions with it.
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


@hookspec
def register_reward_terms(register: Register) -> None:
    """Register reward terms: ``register(name, build, params=None, description="")``.

    ``build(params, ctx: BuildContext) -> term`` is called when components are built (see the
    rules above) and returns
    ``term(before: EnvState, action: Tensor[N] long, after: EnvState) -> Tensor[N]``, called on
    every step. ``before`` is the state at the decision (its ``bar`` is the decision bar),
    ``action`` the action actually executed (after exit guards turned blocked actions into
    ``HOLD``), ``after`` the state once the action was executed and the next bar evolved the
    position; ``after.done`` marks episodes that ended in this step and ``after.step_gross``,
    ``after.step_cost`` and ``after.step_mtm`` carry what happened to the PnL in this step.

    The experiment's reward is ``sum(weight_i * term_i)`` over the listed terms, and the
    environment applies no scale of its own: a term returns *reward units*, i.e. PnL fractions
    (0.001 ~ 10 pips near 1.0) multiplied by ``ctx.env.reward_scale`` (default 100, so 1.0 =
    1 % of the entry price), as the shipped ``pnl``, ``cost`` and ``regret`` terms do. The returned
    tensor must be float64 or float32 of shape ``[N]`` on ``ctx.device`` and finite: a wrong
    shape or a NaN is reported against the term on the first step; a NaN or Inf later (or a
    weighted sum beyond float32) stops training, and replaying the rollout from the last good
    checkpoint names the term.

    Reward terms are the only components allowed to use hindsight (for example the best exit
    in the episode's window, precomputed in ``build`` from ``ctx.market`` and ``ctx.trades``);
    observations, masks, guards and evaluation metrics never may.
    """


@hookspec
def register_exit_guards(register: Register) -> None:
    """Register exit guards: ``register(name, build, params=None, description="")``.

    ``build(params, ctx: BuildContext) -> guard`` returns
    ``guard(state: EnvState, action: Tensor[N] long) -> Tensor[N] bool`` where ``True`` means
    *blocked*. A guard sees the action the policy sampled; when any guard blocks, the action
    is replaced by ``HOLD`` before it is executed and the block is counted per action and per
    guard (``blocked_rate``). Unlike a mask, a guard lets the policy choose the action and
    then overrides it (the research log's v2). A guard may read only ``state`` (and, through
    ``ctx``, bars ``<= state.bar``): the look-ahead audit recomputes guard decisions with
    every later bar poisoned and requires identical results.
    """


@hookspec
def register_action_masks(register: Register) -> None:
    """Register action masks: ``register(name, build, params=None, description="")``.

    ``build(params, ctx: BuildContext) -> mask`` returns
    ``mask(state: EnvState) -> Tensor[N, A] bool`` where ``True`` means *allowed* and
    ``A = len(Action)``. Masks of all listed components are ANDed and ``HOLD`` is always
    allowed, so no row is ever empty; a component that returns a row with nothing allowed, or
    with ``HOLD`` forbidden (a mask cannot force an exit: ``HOLD`` would be allowed there
    anyway), is refused on the first step, naming it, because it almost certainly has a bug. A
    masked action's logit is set to a large negative value before sampling (the research
    log's v4), and the mask that sampled an action is stored in the rollout so PPO's ratio is
    computed under the same mask. Masks, like guards, may read only bars ``<= state.bar``.
    """


@hookspec
def register_features(register: Register) -> None:
    """Register observation features: ``register(name, build, params=None, description="")``.

    ``build(params, ctx: BuildContext) -> FeatureSpec`` (see
    :class:`exitcore.components.FeatureSpec`): column ``names``, the ``lookback`` in bars, and
    ``compute(market: MarketTensors, state: EnvState) -> Tensor[N, F]`` (float32). The
    observation is the concatenation of the listed features in order; a run records the
    feature names and the dimension.

    The timeline contract applies: at decision ``k`` the decision bar is ``state.bar``
    (``= entry_bar + k``) and ``compute`` may read bars ``<= state.bar`` and the position
    state only. Anything precomputed in ``build`` over the whole series must be causal (a
    rolling statistic ending at each bar, never a centred window or a normalisation fitted on
    all data). The look-ahead audit rebuilds every feature after truncating and poisoning the
    bars after the decision and fails the experiment, naming the feature, on any difference.
    """


@hookspec
def register_entry_strategies(register: Register) -> None:
    """Register entry strategies: ``register(name, build, params=None, description="")``.

    ``build(params, ctx: EntryContext) -> strategy`` returns
    ``strategy(bars: Bars) -> Trades`` (see :mod:`exitcore.data.bars`): one row per trade with
    the signal bar ``s``, the direction (+1 long, -1 short) and the initial stop and target
    *distances* in price. The strategy decides at the close of bar ``s`` using bars ``<= s``
    only; the engine fills the trade at the open of bar ``s + 1`` with the cost model applied.
    The look-ahead audit re-runs the strategy on bars truncated after ``s`` and requires the
    same signal, direction, stop and target; compute the trades from the bars given on every
    call (a table kept between calls, at module level, fails the audit: it would hide a leak
    from those re-runs). Extra columns of the frame (a tag, the signal's
    reason) are copied to every ledger, row for row; a name that is a ledger column is refused.
    ``ctx`` carries the experiment, the env and cost configuration; there are no tensors at
    this stage. docs/plugins.md gives the columns' dtypes and a complete, tested example.
    """


@hookspec
def register_data_sources(register: Register) -> None:
    """Register data sources: ``register(name, build, params=None, sniff=None, description="")``.

    ``build(params) -> Bars`` loads bars in the canonical form of :class:`exitcore.data.bars.Bars`
    (UTC timestamps of the bar open, float64 OHLC, optional volume and spread), validated, at
    the file's own timeframe; the engine resamples to the experiment's timeframe. Raise
    :class:`exitcore.errors.DataError` naming the file and row for bad input. The engine also
    checks the returned values with :func:`exitcore.data.bars.check_bars` (finite positive OHLC,
    high and low enclosing open and close, ...) and refuses bad bars naming the source.

    ``sniff(spec: str) -> dict | None`` is optional: given the whole string a user passed to
    ``--data`` without a ``SOURCE:`` prefix (a path, a glob, a name, with any ``?key=value``
    options), return the ``params`` table this source would load it with, or ``None`` if the
    source does not recognise it. Sources are asked in registration order and the first that
    recognises the spec wins. The spec's options are applied by exitcore: typed against
    ``params`` (:func:`exitcore.data.spec.spec_params`) and laid over the returned table, whose
    ``path`` is kept; an option ``params`` has no field for is a ``ConfigError`` at
    ``--data.KEY``. A sniffer may parse the options itself, but need not.
    """


@hookspec
def register_evaluators(register: Register) -> None:
    """Register evaluators: ``register(name, build, params=None, description="")``.

    ``build(params, ctx: BuildContext) -> evaluator`` returns
    ``evaluator(ledger: pandas.DataFrame, context: EvalContext) -> dict[str, Any]``. It is run
    after training; ``ledger`` is the RL policy's deterministic ledger on the split being
    evaluated (out of sample: ``test``), and ``context``
    (:class:`exitcore.evaluation.context.EvalContext`) carries the split and its span, every
    policy's ledger on it (sampled RL seeds and the baseline exits), the training split's
    ledgers (in-sample), the best baseline chosen on the training split, the run registry's
    trial count, the trained policy and a ``rebuild(bars)`` handle for audits. The returned
    dict must be JSON-serialisable (NaN and infinity allowed; numpy values and arrays become
    numbers and lists, a pandas Series ``{label: value}``, a DataFrame ``{column: {label:
    value}}``; a set or another object is an error naming the evaluator) and is stored in the run's
    ``results.json`` as ``["evaluators"][name]``; a top-level ``"verdict"`` of ``PASS``,
    ``SUSPECT`` or ``FAIL`` counts as an audit verdict (the worst one is the run's; ``None`` or
    no key: no verdict; any other value is an error naming the evaluator). The run's messages
    then name the evaluator that gave it (``audit verdict FAIL from evaluator 'x'``), and
    ``exitcore report`` lists every key of its result under "Other evaluators". Evaluators
    must not use data outside the split they are given except where ``context`` explicitly
    allows it (in-sample figures labelled as such; baseline tuning on the training split).
    An evaluator that raises (or returns what cannot be stored) stops the run ``interrupted``,
    its training complete and checkpointed: fix it and ``exitcore run --resume RUN`` evaluates
    the trained policy again without training it anew (where the evaluator's package supplies
    no training component: a resume refuses changed training code).
    """


@hookspec
def register_policies(register: Register) -> None:
    """Register policy networks: ``register(name, build, params=None, description="")``.

    ``build(params, ppo: PPOConfig, obs_dim: int, n_actions: int) -> torch.nn.Module`` returns
    an actor-critic whose ``forward(obs: Tensor[B, obs_dim]) -> (logits: Tensor[B, n_actions],
    value: Tensor[B])``. The trainer applies the action mask to the logits itself. Rows must be
    independent (no batch statistics such as BatchNorm in training mode): the update may pass a
    minibatch through ``forward`` in parts (``ppo.micro_batch_size``); a policy whose rows of an
    8-row batch (in training mode) change with the others is refused when built, naming it. A
    random ``forward`` (dropout) is not compared. The experiment picks the
    policy with ``ppo.policy`` (default ``"mlp"``, registered by exitcore's built-in plugin
    through this same hook) and sets its parameters in the table ``ppo.policy_params``, which
    is validated against ``params`` like any component's (``build`` gets ``None`` when the
    policy registers no params class). Build the module on the CPU; the trainer moves it to
    the training device. On CUDA the trainer captures ``forward`` in CUDA graphs
    (exitcore/ppo/graphs.py): keep it free of host synchronisation (``.item()``, ``.cpu()``,
    Python branches on tensor values) and of new parameters after ``build``; a forward that
    cannot be captured still trains, without graphs, after a warning.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the CLI: ``cli`` is the root :class:`click.Group`.

    Called when the CLI lists its commands (``exitcore --help``) or is given a command name
    that is not built in, so keep the commands' imports lazy. A command name that is already taken is refused: the existing command stays, none of
    this plugin's commands are added, and ``exitcore --help`` warns, naming the plugin.
    """


@hookspec
def run_started(run: Any) -> None:
    """A run is about to train. ``run`` is a frozen :class:`exitcore.runner.RunInfo`, the same
    object in ``iteration_end`` and ``run_finished``: ``run.run_id`` (str), ``run.run_dir``
    (:class:`pathlib.Path`), ``run.resolved`` (the
    :class:`~exitcore.experiments.ResolvedExperiment`), ``run.experiment`` (shorthand for
    ``run.resolved.config``) and ``run.data_hash`` (str). Return value ignored; an exception
    aborts the run (recorded ``failed``, the message naming the plugin)."""


@hookspec
def iteration_end(run: Any, update: int, metrics: dict[str, Any]) -> bool | str | None:
    """One PPO update finished. ``metrics`` is the update's log record (the same dict that is
    written to the run's ``train_log.jsonl``); ``run`` is the :class:`exitcore.runner.RunInfo`
    of ``run_started``. Use it for custom logging, or to stop early. With walk-forward
    evaluation (``eval.walk_forward``) it is called for every update of each window's training
    too, after the run's own training: there ``metrics["window"]`` is the window's number (1, 2,
    ...) and ``update`` restarts at 1 in each window.

    **Stopping early**: return ``False`` (also numpy's ``np.False_`` or a one-element boolean
    tensor, as ``entropy.mean() > 0.05`` gives), or a non-empty string saying why (``"entropy
    below 0.05"``), and training ends after this update: the run is checkpointed, evaluated and
    recorded ``done`` like any other, with the steps trained so far (the run's output and report
    show them beside ``total_timesteps``), and the reason is printed. The run is then the trial of
    its configuration, seed and code stopped at that step (another trial than the run trained
    to the end: a stopping rule is something tried, counted in the deflated Sharpe ratio's N;
    a stop asked for with the last update ends nothing). In a walk-forward window it ends that
    window's training only, and the window's step is part of the run's trial too. ``None`` or ``True``
    (or no return) goes on; any other answer (``0``, ``""``) is warned about and goes on. Raising (an :class:`exitcore.errors.ExitcoreError` or anything
    else) is different: it aborts the run: the last complete update is checkpointed, the run is
    recorded ``failed`` with the message and the plugin's name, it is not evaluated and cannot
    be resumed."""


@hookspec
def run_finished(run: Any, status: str, results: dict[str, Any]) -> None:
    """A run ended with ``status`` (``done``, ``failed`` or ``interrupted``); ``run`` is the
    :class:`exitcore.runner.RunInfo` of ``run_started``; ``results`` holds
    the evaluation metrics when ``status == "done"`` and is empty otherwise. The run is recorded
    before this is called: an exception here is printed as a warning and changes nothing."""
