"""exitcore's built-in plugin: the defaults that live inside the engine.

Registered through the ``exitcore`` entry-point group exactly like a third-party plugin
(see ``pyproject.toml``), so built-ins have no private path. Implementations are imported
inside the ``build`` functions to keep start-up (and ``--help``) free of torch.
"""

from __future__ import annotations

from exitcore.hookspecs import hookimpl
