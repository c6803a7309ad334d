"""The look-ahead audit's findings and their text: what ``exitcore audit`` prints and ``exitcore
report`` shows of a run's stored audit, without importing torch (the audit itself,
:mod:`exitcore.evaluation.audit`, needs it; a report of a finished run does not)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from exitcore.env.poisoning import HUGE_FACTOR, POISON_MODES
from exitcore.words import plural

# how each poisoning mode reads in "when the future is ..."
_MODE_WORDS = {"truncate": "truncated", "nan": "NaN", "huge": "huge", "random_walk": "a random walk"}
#: the same modes applied before a feature's lookback (exitcore/env/lookback.py)
_PAST_WORDS = {"nan": "NaN", "huge": f"{HUGE_FACTOR:g} times their prices"}


@attrs.frozen
class Finding:
    """One difference the audit found.

    ``kind``: ``feature``, ``mask``, ``guard``, ``policy``, ``state`` (the engine's position
    state on the trade's replay), ``entry``, ``fill``, ``error``,
    ``lookback`` (a feature reading bars before its declared lookback) or ``unstable`` (a
    component differing when rebuilt on the same bars: random or stateful, so untestable);
    ``component``: the feature column or plugin (with its distribution); ``mode``: the poisoning
    that exposed it; ``trade``: row in the trade table; ``decision``: decision index ``k`` (None
    for entry and fill findings); ``bar``: the decision (or signal) bar; ``time``: when that
    decision was taken (ISO, UTC: the close of ``bar``).
    """

    kind: str
    component: str
    mode: str
    trade: int
    decision: int | None
    bar: int
    time: str
    detail: str

    def where(self) -> str:
        """``trade 12, decision 0 at 2019-03-01 10:15 UTC (bar 4567)``."""
        at = f"decision {self.decision}" if self.decision is not None else "its signal"
        return f"trade {self.trade}, {at} at {self.time[:16].replace('T', ' ')} UTC (bar {self.bar})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return attrs.asdict(self)



def _when(kind: str, mode: str) -> str:
    words = _MODE_WORDS.get(mode, mode)
    if mode == "control":
        return "rebuilt on the same, unpoisoned bars"
    if kind == "lookback":
        return f"the bars before its lookback are {_PAST_WORDS.get(mode, words)}"
    return f"the future is {words}"


def _mode_order(mode: str) -> int:
    order = (*POISON_MODES, "fill")
    return order.index(mode) if mode in order else len(order)


def format_audit(report: Mapping[str, Any]) -> str:
    """Render :meth:`AuditReport.to_dict` (also as stored in a run's ``results.json``)."""
    lines = [f"look-ahead audit of {report['experiment']} on {report['label']}: {report['verdict']}"]
    past = report.get("lookback_modes", [])  # a run audited before the lookback check has none
    lines.append(
        f"  checked {report['n_decisions']} decisions x {len(report['modes'])} poisonings "
        f"({', '.join(report['modes'])}) with the {report['policy']} policy; "
        f"{_count(report['n_entries'])} entries re-run on truncated/poisoned bars; {_count(report['n_fills'])} fills"
        + (f"; each feature's lookback ({', '.join(past)} before it)" if past else "")
    )
    for c in report["culprits"]:
        f = c["first"]
        finding = Finding(**f)
        if c["kind"] == "lookback":
            lines.append(f"  READS BEYOND ITS LOOKBACK feature {c['component']}")
        elif c["kind"] == "unstable":
            lines.append(f"  NOT REPRODUCIBLE {c['component']}")
        elif c["kind"] == "held":
            lines.append(f"  KEEPS STATE BETWEEN BUILDS {c['component']}")
            lines.append(f"       {f['detail']}")
            continue
        else:
            lines.append(f"  LEAK {c['kind']} {c['component']}")
        lines.append(f"       first at {finding.where()} when {_when(c['kind'], f['mode'])}: {f['detail']}")
        lines.append(f"       {plural(c['count'], 'difference')}, exposed by: {', '.join(c['modes'])}")
    for c in report.get("consequences", []):  # an audit stored before has the policy among the culprits
        lines.append(f"  CONSEQUENCE {c['kind']} {c['component']}: its action changed at "
                     f"{plural(c['decisions'], 'decision')} because its inputs did there ({', '.join(c['because'])}), "
                     "not a leak of its own")
    if any(c["kind"] == "lookback" for c in report["culprits"]):
        lines.append("  (a feature reading further back than its lookback makes the purge gap between the splits too "
                     "short: declare the lookback it reads)")
    for reason in report["suspect"]:
        lines.append(f"  SUSPECT {reason}")
    lines.append(f"  ({report['suspect_note']})")
    if report["verdict"] == "PASS":
        lines.append("  no leak found: observations, masks, guards, the position state, actions and entries ignore the future"
                     + ("; features read no further back than they declare" if past else ""))
    return "\n".join(lines)


def _count(n: Any) -> str:
    """A count with thousands separators (``2,366``); anything else (a damaged results.json) as it is."""
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else str(n)
