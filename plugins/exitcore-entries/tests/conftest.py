"""Fixtures for the entry-strategy tests (the package is tested on its own, outside exitcore's tests/)."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_host():
    """A hermetic plugin host: autoload off, only the given plugin modules."""
    from exitcore.plugins import PluginHost

    def make(*plugins):
        return PluginHost.create(autoload=False, plugins=plugins)

    return make
