"""The first compiled environment steps, checked against the eager step on the same inputs.

``torch.compile`` can silently change what a plugin's tensor code computes: torch 2.13
evaluates ``tensor == SomeIntEnum.MEMBER`` to a Python ``False``, so a guard written that way
blocks nothing once compiled, while the first (eager, output-checked) step and the look-ahead
audit (eager too) see it working. :class:`VecExitEnv` therefore runs its first
:data:`COMPILE_CHECK_STEPS` compiled steps eagerly as well (from the same state, with the same
actions) and stops the run if any output differs: a few milliseconds per run. A component that
miscompiles only in states these steps never reach goes unnoticed.
"""

from __future__ import annotations

from typing import Any

import torch

from exitcore.errors import ExitcoreError

#: how many compiled steps are recomputed eagerly and compared
COMPILE_CHECK_STEPS = 8
#: the cores' outputs, in order (exitcore/env/vec_env.py: `_core` and `_core_packed`)
STEP_OUTPUTS = ("state", "after", "obs", "mask", "reward", "done", "episode_return", "stats", "invalid", "key")
# Float outputs may differ by rounding (inductor fuses and reorders arithmetic; float32 loses
# more with cancellation); a miscompiled comparison or branch changes bools, ids or values far
# beyond this. torch.testing's defaults per dtype.
_TOLERANCE = {torch.float64: (1e-7, 1e-7), torch.float32: (1.3e-6, 1e-5)}


class CompiledStepMismatch(ExitcoreError):
    """The compiled environment step computed something other than the eager step."""


def named_tensors(name: str, value: Any, unpack: Any = None) -> dict[str, torch.Tensor]:
    """``value`` (a tensor, an EnvState, packed state tables or nested tuples) flattened into
    ``{"name.field": tensor}``; ``unpack(tables)`` turns packed state tables into an EnvState."""
    if value is None:
        return {}
    if isinstance(value, torch.Tensor):
        return {name: value}
    if hasattr(value, "tensors"):
        return {f"{name}.{k}": v for k, v in value.tensors().items()}
    if unpack is not None and name in ("state", "after"):
        return named_tensors(name, unpack(value))
    out: dict[str, torch.Tensor] = {}
    for i, item in enumerate(value):
        out.update(named_tensors(f"{name}[{i}]", item))
    return out


def differences(compiled: tuple[Any, ...], eager: tuple[Any, ...], unpack: Any = None) -> list[str]:
    """The names of the outputs where ``compiled`` and ``eager`` (two cores' results) differ."""
    diff = []
    for name, c, e in zip(STEP_OUTPUTS, compiled, eager):
        if name == "invalid":  # only the compiled core computes it
            continue
        cs, es = named_tensors(name, c, unpack), named_tensors(name, e, unpack)
        for key in cs.keys() | es.keys():
            a, b = cs.get(key), es.get(key)
            if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
                diff.append(key)
            elif a.is_floating_point():
                rtol, atol = _TOLERANCE.get(a.dtype, (1e-3, 1e-3))
                if not torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                    diff.append(key)
            elif not torch.equal(a, b):
                diff.append(key)
    return sorted(diff)


def check_compiled_step(compiled: tuple[Any, ...], eager: tuple[Any, ...], components: str, unpack: Any = None) -> None:
    """Raise :class:`CompiledStepMismatch` naming the differing outputs, if any.

    ``components`` lists the experiment's components for the message (the culprit is usually
    one of them: the built-in step is tested compiled against eager).
    """
    diff = differences(compiled, eager, unpack)
    if diff:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise CompiledStepMismatch(
            f"the compiled environment step differs from the eager step in {shown}. torch.compile "
            f"changed what a component computes (components: {components}). A common cause is "
            f"comparing a tensor with an enum.IntEnum member or another int subclass (use plain "
            f"ints such as exitcore.actions.Action.EXIT); component functions must also not draw "
            f"random numbers. Set ppo.compile = \"off\" to train eagerly."
        )
