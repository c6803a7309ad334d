"""Build an experiment's environment components once, and check them once.

Every hook has run by the time this returns: the environment step only calls the plain tensor
functions collected here. Outputs are checked on the first step (shape, dtype, device,
finiteness, non-empty mask rows) and a failure names the component and its plugin, so a buggy
plugin is caught at once instead of surfacing as a NaN many updates later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch

from exitcore.actions import N_ACTIONS, Action
from exitcore.components import BuildContext, FeatureSpec
from exitcore.errors import PluginError


@attrs.frozen
class Named:
    """A built tensor function with the name and origin of the component it came from."""

    name: str
    origin: str
    fn: Callable[..., Any]
    weight: float = 1.0

    def label(self) -> str:
        """``kind 'name' from plugin (distribution)`` for messages."""
        return f"{self.name!r} from {self.origin}"


@attrs.frozen
class EnvComponents:
    """The built components of one experiment, in the order the experiment lists them."""

    features: tuple[Named, ...]
    feature_specs: tuple[FeatureSpec, ...]
    rewards: tuple[Named, ...]
    guards: tuple[Named, ...]
    masks: tuple[Named, ...]

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Observation column names, ``feature.column``."""
        return tuple(f"{n.name}.{col}" for n, spec in zip(self.features, self.feature_specs) for col in spec.names)

    @property
    def obs_dim(self) -> int:
        """Observation width."""
        return sum(len(spec.names) for spec in self.feature_specs)

    def describe(self) -> str:
        """Every component by kind and name, for messages (``guards 'a', 'b'; masks ...``)."""
        kinds = (("features", self.features), ("rewards", self.rewards), ("guards", self.guards), ("masks", self.masks))
        return "; ".join(f"{kind} " + ", ".join(repr(n.name) for n in named) for kind, named in kinds if named)

    @property
    def lookback(self) -> int:
        """The longest feature lookback in bars (sets the purge gap and the warm-up)."""
        return max((spec.lookback for spec in self.feature_specs), default=0)


def build_components(resolved: Any, ctx: BuildContext, exact_write_check: bool = True) -> EnvComponents:
    """Call every env component's factory of a :class:`ResolvedExperiment` with ``ctx``
    (``exact_write_check``: see :func:`build_untouched`)."""
    features, specs = [], []

    def built(rc: Any, kind: str) -> Any:
        return build_untouched(rc, ctx, kind, exact_write_check)

    for rc in resolved.features:
        spec = built(rc, "feature")
        if not isinstance(spec, FeatureSpec):
            raise PluginError(f"{rc.path}: feature {rc.name!r} from {rc.component.origin} must return a FeatureSpec, got {type(spec).__name__}")
        if not spec.names or spec.lookback < 0:
            raise PluginError(f"{rc.path}: feature {rc.name!r} from {rc.component.origin} returned no column names or a negative lookback")
        features.append(Named(rc.name, rc.component.origin, spec.compute))
        specs.append(spec)
    rewards = tuple(Named(rc.name, rc.component.origin, built(rc, "reward term"), rc.weight)
                    for rc in resolved.rewards)
    guards = tuple(Named(rc.name, rc.component.origin, built(rc, "exit guard")) for rc in resolved.guards)
    masks = tuple(Named(rc.name, rc.component.origin, built(rc, "action mask")) for rc in resolved.masks)
    for group, kind in ((rewards, "reward term"), (guards, "exit guard"), (masks, "action mask")):
        for item in group:
            if not callable(item.fn):
                raise PluginError(f"{kind} {item.label()} must build a callable, got {type(item.fn).__name__}")
    return EnvComponents(tuple(features), tuple(specs), rewards, guards, masks)


def build_untouched(rc: Any, ctx: BuildContext, kind: str, exact: bool = True) -> Any:
    """``rc.build(ctx)``, refused if the factory wrote into ``ctx.market`` or ``ctx.trades`` in
    place: the bars and trades are shared by every component, the engine and the baselines, so
    such a write silently changes every policy's numbers, and the audit, which rebuilds on
    poisoned copies, blames whichever feature reads the changed bars first.

    Writes are seen by the tensors' write counters and, with ``exact``, by comparing the values
    too: a write through ``.numpy()`` or ``.data`` bumps no counter."""
    before = _context_write_counters(ctx)
    copies = _context_tensors(ctx, clone=True) if exact else {}
    built = rc.build(ctx)
    after = _context_write_counters(ctx)
    written = [name for name, version in before.items() if version is not None and after[name] != version]
    if copies:
        now = _context_tensors(ctx, clone=False)
        written += [name for name, copy_ in copies.items() if name not in written and not _same_bits(copy_, now[name])]
    if written:
        raise PluginError(f"{rc.path}: {kind} {rc.name!r} from {rc.component.origin} wrote into ctx.{written[0]} in "
                          "place in its build: the bars and trades are shared by every component and the engine; "
                          f"compute on a copy (e.g. ctx.{written[0]}.clone())")
    return built


def _context_tensors(ctx: BuildContext, clone: bool) -> dict[str, torch.Tensor]:
    """Every tensor of ``ctx.market`` and ``ctx.trades`` by ``market.close``-style name (copies with ``clone``)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix in ("market", "trades"):
        holder = getattr(ctx, prefix, None)
        if holder is None or not attrs.has(type(holder)):
            continue
        for field in attrs.fields(type(holder)):
            value = getattr(holder, field.name)
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{field.name}"] = value.clone() if clone else value
    return tensors


def _context_write_counters(ctx: BuildContext) -> dict[str, int | None]:
    """The write counter of every tensor of ``ctx.market`` and ``ctx.trades``."""
    return {name: _version(t) for name, t in _context_tensors(ctx, clone=False).items()}


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical (so NaN equals itself: the ATR's first bars are NaN)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.numel() == 0:  # no trades: nothing to compare (and no byte view of an empty tensor)
        return True
    return bool(torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8)))


# --------------------------------------------------------------------------- first-step checks


def check_tensor(
    value: Any,
    what: str,
    shape: Sequence[int],
    dtypes: tuple[torch.dtype, ...],
    device: torch.device,
    finite: bool = True,
    rows: torch.Tensor | None = None,
) -> None:
    """Raise :class:`PluginError` naming ``what`` unless ``value`` is the expected tensor;
    with ``rows`` (a bool mask of the live rows), finiteness is asked of those rows only (a
    finished trade's row is stepped but never learned from or evaluated)."""
    if not isinstance(value, torch.Tensor):
        raise PluginError(f"{what} returned {type(value).__name__}, expected a tensor of shape {tuple(shape)}")
    if tuple(value.shape) != tuple(shape):
        raise PluginError(f"{what} returned shape {tuple(value.shape)}, expected {tuple(shape)}")
    if value.dtype not in dtypes:
        expected = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise PluginError(f"{what} returned dtype {str(value.dtype).replace('torch.', '')}, expected {expected}")
    if value.device.type != device.type:
        raise PluginError(f"{what} returned a tensor on {value.device}, expected {device}")
    if finite and value.dtype.is_floating_point:
        judged = value if rows is None else value[rows]
        if bool(torch.isfinite(judged).all()):
            return
        bad = int((~torch.isfinite(judged)).sum())
        raise PluginError(f"{what} returned {bad} non-finite value(s) (NaN or Inf)")


def _version(t: torch.Tensor) -> int | None:
    """The tensor's in-place write counter (None for inference tensors, which keep none)."""
    try:
        return t._version
    except RuntimeError:
        return None


def snapshot(*states: Any, market: Any = None) -> dict[str, Any]:
    """What a component's call must leave as it was: each state field (the tensor, its write
    counter and a copy) and the market tensors (the tensor and its write counter)."""
    kept_states = [{k: (v, _version(v), v.clone()) for k, v in st.tensors().items()} for st in states]
    kept_market = {} if market is None else {
        name: (t, _version(t)) for name in ("open", "high", "low", "close", "atr", "ts", "segment_end")
        if isinstance(t := getattr(market, name, None), torch.Tensor)}
    return {"states": kept_states, "market": kept_market, "market_obj": market}


def check_untouched(before: dict[str, Any], states: Sequence[Any], what: str) -> None:
    """Raise :class:`PluginError` naming ``what`` if its call wrote into a state's fields or the
    market tensors in place (or replaced a field): every later component and the engine would
    read the changed values, silently. Any in-place write counts, also one that changes no value
    on this step (a masked write that only bites later): the tensors' write counters show it."""
    for kept, st in zip(before["states"], states):
        changed, replaced, written = [], [], []
        for name, value in st.tensors().items():
            ref, version, copy_ = kept[name]
            if value is not ref:
                replaced.append(name)
            elif version is not None and _version(value) != version:
                written.append(name)
            if value.shape != copy_.shape or value.dtype != copy_.dtype or not (
                    torch.equal(copy_, value) or (value.dtype.is_floating_point and
                                                  torch.allclose(copy_, value, rtol=0, atol=0, equal_nan=True))):
                changed.append(name)
        if changed or replaced or written:
            where = (f"state.{changed[0]} changed" if changed else f"state.{replaced[0]} was replaced" if replaced
                     else f"state.{written[0]} was written, though no value changed on this step")
            raise PluginError(f"{what} wrote into the environment state in place ({where}): a component must read "
                              "the state and return new tensors, never modify its fields")
    market = before["market_obj"]
    for name, (ref, version) in before["market"].items():
        value = getattr(market, name)
        if value is not ref or (version is not None and _version(value) != version):
            raise PluginError(f"{what} wrote into the market data in place (market.{name}): the bars are shared by "
                              "every component and the engine; compute on a copy")


def check_mask_rows(mask: torch.Tensor, what: str, rows: torch.Tensor | None = None) -> None:
    """A mask component must leave HOLD allowed in every row (``rows``: every live row, a bool
    mask): HOLD is always allowed, so a mask that forbids it (to force an exit, say) would be
    silently overridden and not do what its author meant."""
    live = torch.ones(mask.shape[0], dtype=torch.bool, device=mask.device) if rows is None else rows
    empty = ~mask.any(dim=1) & live
    if bool(empty.any()):
        shown = torch.nonzero(empty).flatten()[:5].tolist()
        raise PluginError(f"{what} allowed no action at all in {int(empty.sum())} row(s) (e.g. env {shown}); "
                          f"HOLD must stay allowed")
    no_hold = ~mask[:, Action.HOLD] & live
    if bool(no_hold.any()):
        shown = torch.nonzero(no_hold).flatten()[:5].tolist()
        raise PluginError(f"{what} forbade HOLD in {int(no_hold.sum())} row(s) (e.g. env {shown}): HOLD is always "
                          "allowed, so a mask cannot force an action (exitcore would allow HOLD there anyway); "
                          "leave column 0 (HOLD) True")


def check_actions(action: Any, n_envs: int, device: torch.device, values: bool = True) -> None:
    """Action ids must be an int64 tensor ``[n_envs]`` of valid :class:`Action` values
    (``values=False``: check the type, shape and device only, not the ids)."""
    if not isinstance(action, torch.Tensor) or action.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"actions must be an int64 (or int32) tensor of shape [{n_envs}], got {type(action).__name__}"
                         f"{'' if not isinstance(action, torch.Tensor) else ' of dtype ' + str(action.dtype)}")
    if tuple(action.shape) != (n_envs,):
        raise ValueError(f"actions must have shape [{n_envs}], got {tuple(action.shape)}")
    if action.device.type != device.type:
        raise ValueError(f"actions are on {action.device} but the environment is on {device}")
    if not values:
        return
    bad = (action < 0) | (action >= N_ACTIONS)
    if bool(bad.any()):
        envs = torch.nonzero(bad).flatten()
        shown = ", ".join(f"{int(action[i])} in env {int(i)}" for i in envs[:3])
        more = f" and {len(envs) - 3} more" if len(envs) > 3 else ""
        raise ValueError(f"invalid action id(s): {shown}{more} ({len(envs)} of {n_envs} envs); valid ids are "
                         f"0..{N_ACTIONS - 1} ({', '.join(Action.names)})")
