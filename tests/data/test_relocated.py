"""A run's data read from where its file is now (``--resume RUN --data``, ``audit RUN --data``):
only what the spec says changes (a review found a sniffer's own findings about the new path -
a separator, another source - laid over the run's, and the resume refused as a change)."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from exitcore.config import DataConfig
from exitcore.data.pipeline import load_bars, relocated_data
from exitcore.plugins import PluginHost
from tests.data.helpers import grid_times, random_ohlc, write_csv


def _semicolon_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    write_csv(path, grid_times(n, rng, step_ns=15 * 60 * 10**9, hole_p=0.0), random_ohlc(n, rng))
    path.write_text(path.read_text().replace(",", ";"))
    return path


def test_a_bare_path_changes_only_the_path(tmp_path):
    host = PluginHost.create()
    moved = _semicolon_csv(tmp_path / "moved.csv")
    frozen = DataConfig(source="csv", params={"path": "/gone/bars.csv", "sep": ";", "timezone": "Etc/GMT-2"})
    assert relocated_data(frozen, str(moved), host).params == {"path": str(moved), "sep": ";", "timezone": "Etc/GMT-2"}
    # the spec's own options are laid over the frozen ones (a change the caller refuses or the hash judges)
    assert relocated_data(frozen, f"{moved}?timezone=UTC", host).params["timezone"] == "UTC"


def test_a_run_that_recognised_its_file_recognises_the_moved_one_again(tmp_path):
    """source = "auto" re-sniffs the file when it loads: the separator the sniffer finds is not
    part of the run's configuration, and was refused as a change (sep: None -> ';')."""
    host = PluginHost.create()
    original = _semicolon_csv(tmp_path / "a.csv")
    moved = tmp_path / "b" / "a.csv"
    moved.parent.mkdir()
    moved.write_bytes(original.read_bytes())
    frozen = DataConfig(source="auto", params={"path": str(original)})
    relocated = relocated_data(frozen, str(moved), host)
    assert (relocated.source, relocated.params) == ("auto", {"path": str(moved)})
    assert load_bars(relocated, host).content_hash() == load_bars(frozen, host).content_hash()


def test_a_file_another_sniffer_claims_keeps_the_runs_source(tmp_path):
    """A Dukascopy export a run read as csv (with its own column mapping) was taken for a
    dukascopy file once moved: another source, refused on resume."""
    host = PluginHost.create()
    export = tmp_path / "EURUSD_15_m_BID.csv"
    export.write_text("Gmt time,Open,High,Low,Close,Volume\n05.01.2015 00:00:00.000,1.1,1.2,1.0,1.1,5\n")
    frozen = DataConfig(source="csv", params={"path": "/gone/x.csv", "columns": {"time": "Gmt time"}})
    relocated = relocated_data(frozen, str(export), host)
    assert (relocated.source, relocated.params) == ("csv", {"path": str(export), "columns": {"time": "Gmt time"}})
    # the spec's options are the run's source's (csv takes sep; dukascopy, the sniffer's guess, does not)
    relocated = relocated_data(attrs.evolve(frozen, params={**frozen.params, "sep": ","}),
                               f"{export}?sep=,", host)
    assert (relocated.source, relocated.params["sep"], relocated.params["path"]) == ("csv", ",", str(export))


def test_another_source_named_is_that_source(tmp_path):
    host = PluginHost.create()
    frozen = DataConfig(source="synthetic", params={"years": 3, "seed": 0})
    # no path: a sniffer's source is named; the same source keeps its other params
    assert relocated_data(frozen, "synthetic?seed=9", host).params == {"years": 3, "seed": 9}
    moved = _semicolon_csv(tmp_path / "m.csv")
    other = relocated_data(frozen, f"csv:{moved}?sep=;", host)
    assert (other.source, other.params) == ("csv", {"path": str(moved), "sep": ";"})
    # a bare path for a run on a source without files (`run --from RUN --data FILE` on the default
    # synthetic bars) is read as the file's own source
    bare = relocated_data(frozen, str(moved), host)
    assert (bare.source, bare.params["path"]) == ("csv", str(moved))
