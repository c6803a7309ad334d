"""Built-in policy networks (registered through the ``exitcore`` entry-point group)."""

from __future__ import annotations

from exitcore.hookspecs import hookimpl  # noqa: F401
