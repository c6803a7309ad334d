"""The run's audit verdict: the worst ``verdict`` any evaluator returned, and who returned it.

Any evaluator may return a top-level ``verdict`` (exitcore/hookspecs.py); the shipped
``lookahead_audit`` is the usual one, but a plugin's own check can fail a run too. Messages
must then name that evaluator: calling its FAIL "a leak found by the look-ahead audit" sends
the user to ``exitcore audit RUN``, which passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: verdict severity: the worst verdict of any evaluator is the run's audit verdict
VERDICT_RANK = {"PASS": 0, "SUSPECT": 1, "FAIL": 2}
LOOKAHEAD = "lookahead_audit"


def worst_verdict(evaluator_results: Mapping[str, Any]) -> str | None:
    """The most severe ``verdict`` (``FAIL`` > ``SUSPECT`` > ``PASS``) among the evaluators' results."""
    found = [r.get("verdict") for r in evaluator_results.values() if isinstance(r, Mapping) and r.get("verdict") in VERDICT_RANK]
    return max(found, key=VERDICT_RANK.__getitem__) if found else None


def verdict_sources(evaluator_results: Mapping[str, Any], verdict: str | None) -> list[str]:
    """The evaluators whose ``verdict`` is ``verdict`` (the run's), in the experiment's order."""
    return [name for name, r in evaluator_results.items() if isinstance(r, Mapping) and verdict and r.get("verdict") == verdict]


def audit_why(evaluator_results: Mapping[str, Any]) -> str | None:
    """Why the look-ahead audit failed when it found no leak: every component it names could
    not be tested (it differs between two rebuilds on the same bars); else None."""
    audit = evaluator_results.get(LOOKAHEAD)
    culprits = audit.get("culprits") if isinstance(audit, Mapping) else None
    kinds = {c.get("kind") for c in culprits or () if isinstance(c, Mapping) and c.get("kind") != "policy"}
    return "a component is not reproducible, so it could not be tested" if kinds == {"unstable"} else None


def describe_verdict(verdict: str, sources: Sequence[str] | None, why: str | None = None) -> str:
    """``look-ahead audit FAIL (a leak was found)``, or, when other evaluators gave the verdict,
    ``audit verdict FAIL from evaluator 'x'``. ``sources`` None or empty: a run recorded before
    sources were (only the look-ahead audit gave verdicts then); ``why`` (:func:`audit_why`)
    replaces the usual reason."""
    others = [s for s in sources or () if s != LOOKAHEAD]
    if not others:
        why = why or {"FAIL": "a leak was found", "SUSPECT": "implausibly good out of sample"}.get(verdict)
        return f"look-ahead audit {verdict}" + (f" ({why})" if why else "")
    named = ", ".join(repr(s) for s in others)
    also = " and the look-ahead audit" if LOOKAHEAD in (sources or ()) else ""
    return f"audit verdict {verdict} from evaluator{'s' if len(others) > 1 else ''} {named}{also}"
