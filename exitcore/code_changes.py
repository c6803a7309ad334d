"""Is a run's plugin code still the code it ran? What a resume and an audit of a run compare.

A run records the code it started with: a code hash over the source of the plugins it uses
(:func:`exitcore.plugins.code_hash`, in its registry row and ``run.json``) and each plugin's
source hash (``run.json``'s ``plugins``). A resume refuses changed code of the plugins it trains
with (:func:`exitcore.resume.check_code_unchanged`); ``exitcore audit RUN`` refuses changed code
of the plugins whose components it rebuilds (:func:`exitcore.evaluation.audit.audit_run`): it
would audit today's code with the run's policy and give that verdict as the run's.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import attrs

from exitcore.evaluation.rundir import RUN_FILE


@attrs.frozen
class CodeChanges:
    """How the code of a run's plugins differs from the code installed now (:func:`code_changes`)."""

    run_dir: Path
    started: str  # the code hash the run started with
    now: str  # the code hash of the same plugins now
    #: plugin name -> the source hash ``run.json`` lists (empty when it lists none or is unreadable)
    recorded: Mapping[str, str | None]
    #: the plugins the run uses whose source differs now (or that are missing then or now), sorted
    changed: tuple[str, ...]
    infos: Mapping[str, Any]  # plugin name -> PluginInfo, installed now

    def named(self, name: str) -> str:
        """``plugin 'features' (exitcore-features 0.1.0) (source <then> -> <now>)``."""
        from exitcore.plugins import plugin_label

        info = self.infos.get(name)
        label = plugin_label(name, info.distribution, info.version) if info else f"plugin {name!r} (not installed now)"
        own = " (exitcore's own code: its built-in data sources and policies)" if info and info.distribution == "exitcore" else ""
        # "" was recorded where no source file was found (a namespace package, before exitcore
        # hashed its outermost regular package): unknown, not a code of its own
        then = self.recorded.get(name) or ("not recorded" if name in self.recorded else "?")
        return f"{label}{own} (source {then} -> {info.source if info else '?'})"

    def only_outside(self, plugins: Collection[str]) -> bool:
        """Whether every change is known to lie outside ``plugins`` (their code is the run's)."""
        return bool(self.recorded) and bool(self.changed) and not set(plugins).intersection(self.changed)

    def why(self, plugins: Collection[str], whose: str) -> str:
        """Why the code of ``plugins`` (described as ``whose``: "plugins it trains with") cannot
        be taken for the run's: the changed ones named, or why none can be named. Only for
        changes not :meth:`only_outside` them."""
        if not self.recorded:
            return (f"the code of {whose} may have changed since it started (code hash {self.started} -> {self.now}; "
                    f"{self.run_dir / RUN_FILE} is missing, unreadable or lists no plugin's source hash)")
        if not self.changed:
            return (f"its code hash is not the one it started with ({self.started} -> {self.now}), though run.json lists "
                    "the same plugin sources (was run.json or the registry edited?)")
        return f"the code of {whose} changed since it started: " + "; ".join(
            self.named(n) for n in self.changed if n in plugins)


def code_changes(started: Any, run_dir: Path, resolved: Any, host: Any) -> CodeChanges | None:
    """The changes in the code of the plugins ``resolved`` uses since a run that started with
    code hash ``started`` (its registry row's or ``run.json``'s ``code_hash``); ``None`` when
    there are none, or when the run was recorded before exitcore kept a code hash."""
    from exitcore.plugins import code_hash

    now = code_hash(host.plugin_infos(), resolved.plugins_used())
    if not isinstance(started, str) or not started or started == now:
        return None
    try:
        listed = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8")).get("plugins")
        recorded = {p["name"]: p.get("source_hash") for p in listed if isinstance(p, dict) and "name" in p}
    except (OSError, ValueError, TypeError, AttributeError):
        recorded = {}
    infos = {i.name: i for i in host.plugin_infos()}
    changed = tuple(sorted(n for n in resolved.plugins_used()
                           if n not in recorded or n not in infos or recorded[n] != infos[n].source))
    return CodeChanges(run_dir, started, now, recorded, changed, infos)
