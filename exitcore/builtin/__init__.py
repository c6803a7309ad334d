"""exitcore's built-in plugins: the defaults that live inside the engine.

Each module here (``data_sources``, ``policies``) is its own plugin, registered through the
``exitcore`` entry-point group exactly like a third-party plugin (see ``pyproject.toml``), so
built-ins have no private path. This package itself implements no hook and is no entry point.
Implementations are imported inside the ``build`` functions to keep start-up (and ``--help``)
free of torch.
"""
