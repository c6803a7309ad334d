"""What a plugin registers: :class:`Component` records and the small types factories return.

A component is a named factory of one *kind* (reward term, exit guard, ...). Plugins register
components at start-up through the ``register_*`` hooks in :mod:`exitcore.hookspecs`; an
experiment picks components by name and gives them parameters; the engine calls each
component's ``build`` when it builds an experiment's components (a run, its first-steps check,
a walk-forward window, each of the look-ahead audit's replays) and then only ever calls the
plain tensor function it returned. This module must stay free of torch so that the CLI's
``--help`` stays instant.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from exitcore.config import CostConfig, EnvConfig, ExperimentConfig


class ComponentKind(str, enum.Enum):
    """The kinds of component, each with its own ``register_*`` hook."""

    REWARD = "reward"
    GUARD = "guard"
    MASK = "mask"
    FEATURE = "feature"
    ENTRY = "entry"
    DATA_SOURCE = "data_source"
    EVALUATOR = "evaluator"
    POLICY = "policy"

    @property
    def plural(self) -> str:
        """Human name used in messages and listings."""
        return {
            "reward": "reward terms",
            "guard": "exit guards",
            "mask": "action masks",
            "feature": "features",
            "entry": "entry strategies",
            "data_source": "data sources",
            "evaluator": "evaluators",
            "policy": "policies",
        }[self.value]


@attrs.frozen
class Component:
    """One registered component.

    ``build`` is the factory (its signature depends on the kind, see the hookspecs); ``params``
    is the attrs class its parameters are validated against (``None``: it takes none);
    ``sniff`` is used by data sources only. ``plugin``, ``distribution`` and ``version`` are
    filled in by the plugin host so every message can say where a component came from.
    """

    kind: ComponentKind
    name: str
    build: Callable[..., Any]
    params: type | None = None
    description: str = ""
    sniff: Callable[[str], dict[str, Any] | None] | None = None
    plugin: str = ""
    distribution: str = ""
    version: str = ""

    @property
    def origin(self) -> str:
        """``plugin (distribution version)``, for messages."""
        dist = f"{self.distribution} {self.version}".strip() or "no distribution"  # as plugin_label says it
        return f"{self.plugin} ({dist})"


@attrs.frozen
class FeatureSpec:
    """What a feature factory returns.

    ``names`` labels each output column (``len(names) == F``); ``lookback`` is how many bars
    *before* the decision bar the feature reads (it sets the purge gap between splits and the
    warm-up before the first trade); ``compute(market, state) -> Tensor[N, F]`` (float32) is
    called on every step with the decision state and must read bars ``<= state.bar`` only.
    """

    names: tuple[str, ...]
    lookback: int
    compute: Callable[[Any, Any], Any]


@attrs.frozen
class BuildContext:
    """Everything a factory may look at while building its tensor function.

    ``market`` (:class:`exitcore.episodes.MarketTensors`) and ``trades``
    (:class:`exitcore.episodes.TradeTable`) are device tensors; factories may precompute per-bar
    or per-trade tensors from them (and must then respect the timeline contract: a feature
    precomputed at bar ``t`` may only use bars ``<= t``; only reward terms may use hindsight).
    ``device`` is the torch device the returned function will run on.
    """

    experiment: ExperimentConfig
    env: EnvConfig
    costs: CostConfig
    market: Any
    trades: Any
    device: Any


@attrs.frozen
class EntryContext:
    """What an entry strategy's factory sees: configuration only (bars come at call time)."""

    experiment: ExperimentConfig
    env: EnvConfig
    costs: CostConfig


def lazy(target: str) -> Callable[..., Any]:
    """A ``build`` function that imports ``"package.module:function"`` only when called.

    Entry-point modules are imported by every CLI command (``--help`` included), so plugins
    register ``lazy("my_plugin.impl:build_guard")`` instead of importing torch-heavy code at
    start-up. The returned function passes its arguments through unchanged.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"lazy() expects 'package.module:function', got {target!r}")

    def build(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module_name), attr)(*args, **kwargs)

    build.__name__ = attr
    build.__qualname__ = f"lazy({target})"
    return build
