"""Naming the component whose tensor code raised during an environment step.

The step calls plugin functions (features, masks, guards, reward terms) with no per-call
wrapper, so that the compiled step stays one graph. When one of them raises, the traceback is
searched for the function's frame, and the error is re-raised as a :class:`PluginError` naming
the component. The compiled step has no such frames: it is re-run eagerly first.
"""

from __future__ import annotations

import re
from types import CodeType
from typing import Any

from exitcore.errors import PluginError, innermost_match, raised_at

_KINDS = (("features", "feature"), ("masks", "action mask"), ("guards", "exit guard"), ("rewards", "reward term"))


def component_codes(components: Any) -> dict[CodeType, str]:
    """``{code object of a built tensor function: "feature 'x' from plugin (dist)"}``.

    Components built by one factory share their function's code object (the shipped
    ``min_profit_for_exit`` and ``min_profit_for_partial`` guards do): a traceback cannot tell
    them apart, so such a code object names every one of them. Callable objects are named by
    their class's ``__call__``, so instances of one class are named together too.
    """
    labels: dict[CodeType, list[str]] = {}
    for attr, kind in _KINDS:
        for named in getattr(components, attr):
            code = getattr(named.fn, "__code__", None) or getattr(getattr(named.fn, "__call__", None), "__code__", None)
            if code is not None:
                labels.setdefault(code, []).append(f"{kind} {named.label()}")
    return {code: " or ".join(names) for code, names in labels.items()}


#: how the step calls each kind's tensor function (hookspecs), for a function that cannot take it
_CALLED_AS = {"feature": "compute(market, state)", "action mask": "mask(state)", "exit guard": "guard(state, action)",
              "reward term": "term(before, action, after)"}


def blamed(exc: BaseException, codes: dict[CodeType, str]) -> str | None:
    """The component whose function is the deepest frame of ``exc``'s traceback, if any; or,
    for a ``TypeError`` raised by the call itself (a function written with other parameters
    than the step passes: no frame of it ran), the component whose function it names."""
    label = innermost_match(exc, codes)
    if label is None and isinstance(exc, TypeError):
        text = str(exc)  # "guard() takes 1 positional argument but 2 were given", by qualified name
        label = next((lab for code, lab in codes.items() if text.startswith(f"{code.co_qualname}() ")), None)
    return label


#: Python's message for a call a function's parameters do not fit
_WRONG_CALL = re.compile(r"[\w.<>]+\(\) (takes|missing|got an unexpected)")
#: torch's message for an index past the end of a series (``close[bar + 1]`` at the last bar)
_PAST_THE_END = re.compile(r"index (\d+) is out of bounds for dimension 0 with size (\d+)")


def plugin_failure(exc: BaseException, label: str, where: str) -> PluginError:
    """The :class:`PluginError` for ``exc`` raised by the component ``label`` (or candidates)."""
    at = raised_at(exc)
    hint = ""
    past = _PAST_THE_END.search(str(exc)) if isinstance(exc, IndexError) else None
    if past and int(past.group(1)) >= int(past.group(2)):
        hint = ("; an index past the end of a series usually means reading a later bar (bar + 1 at the "
                "data's last bar), which is look-ahead")
    called_as = next((c for kind, c in _CALLED_AS.items() if label.startswith(kind + " ")), None)
    if isinstance(exc, TypeError) and called_as and _WRONG_CALL.match(str(exc)):  # the call itself: its signature
        hint = f"; the step calls it as {called_as} (docs/plugins.md)"
    return PluginError(f"{label} raised {type(exc).__name__} {where}: {exc}" + (f" (at {at})" if at else "") + hint)
