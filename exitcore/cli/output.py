"""How the command line prints ``--json``: every command's JSON goes through :func:`echo_json`.

One serialiser, :func:`exitcore.evaluation.jsonable.dumps`, so every output is strict JSON
(NaN and infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, which ``jq``
and other strict parsers accept) and is indented alike. Times are written by the producers
with :func:`exitcore.evaluation.jsonable.iso_time` (one format, docs/json.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def echo_json(data: Any, default: Callable[[Any], Any] | None = None) -> None:
    """Print ``data`` to stdout as indented strict JSON; ``default`` converts values JSON has no
    type for (``str``: their text), as in :func:`exitcore.evaluation.jsonable.to_jsonable`."""
    from exitcore.evaluation import jsonable

    click.echo(jsonable.dumps(data, default=default, indent=2))
