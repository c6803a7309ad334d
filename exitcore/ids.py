"""Plain-int id namespaces that iterate, count and validate like an enum.

Action ids and exit reasons are compared with tensors inside code that torch.compile may
compile, and torch.compile (2.13) evaluates ``tensor == SomeIntEnum.MEMBER`` (or any ``int``
subclass) to a Python ``False`` instead of an elementwise comparison. So the ids are plain
ints on a class whose metaclass adds the enum conveniences: ``for i in Ids``, ``len(Ids)``,
``Ids.names[i]`` and ``Ids(i)`` (validation).
"""

from __future__ import annotations

from collections.abc import Iterator


class IntIds(type):
    """Metaclass for a class of int constants ``0..n-1`` named by its ``names`` tuple."""

    names: tuple[str, ...]

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict) -> None:
        super().__init__(name, bases, namespace)
        for i, member in enumerate(cls.names):
            value = namespace.get(member)
            if type(value) is not int or value != i:
                raise TypeError(f"{name}.{member} must be the plain int {i}, got {value!r}")

    def __iter__(cls) -> Iterator[int]:
        return iter(range(len(cls.names)))

    def __len__(cls) -> int:
        return len(cls.names)

    def __call__(cls, value: int) -> int:  # type: ignore[override]
        """``Ids(3)`` -> 3 after checking that 3 is a valid id (ValueError otherwise)."""
        if isinstance(value, bool) or int(value) != value or not 0 <= int(value) < len(cls.names):
            raise ValueError(f"{value!r} is not an id of {cls.__name__} (valid: 0..{len(cls.names) - 1})")
        return int(value)
