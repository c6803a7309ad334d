"""File formats of the built-in data sources, one module each.

Every module exposes ``sniff(spec) -> dict | None`` (does this ``--data`` string name a file in
this format? then the params to load it with) and ``load(params) -> Bars`` (parse every file
into :class:`exitcore.data.validate.RawChunk` and validate them together with
:func:`exitcore.data.validate.assemble_bars`). Shared parsing helpers live in :mod:`.common`.
"""
