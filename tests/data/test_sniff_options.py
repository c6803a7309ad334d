"""A data source's ``sniff`` gets the whole ``--data`` string; exitcore lays the spec's
``?KEY=VALUE`` options over what it returns, so an option the sniffer ignores is never dropped
silently (a plugin-author trial: ``data inspect "mysynth?seed=3&years=1"`` read seed=0)."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import attrs
import pandas as pd
import pytest

import exitcore.builtin.data_sources as builtin_data
from exitcore.components import ComponentKind
from exitcore.data.pipeline import data_config_from_spec, sniff_source
from exitcore.data.spec import parse_spec
from exitcore.errors import ConfigError, PluginError
from exitcore.hookspecs import hookimpl


@attrs.frozen
class _SynthParams:
    seed: int = 0
    years: float = 1.0


@attrs.frozen
class _FeedParams:
    path: str = ""
    symbol: str = "EURUSD"


class _Sources:
    """Sniffers that read no options: ``mysynth`` (no path) and ``myfeed://NAME`` (its own path)."""

    @hookimpl
    def register_data_sources(self, register):
        register("mysynth", lambda params: None, params=_SynthParams,
                 sniff=lambda spec: {"seed": 1} if spec.split("?")[0] == "mysynth" else None)
        register("myfeed", lambda params: None, params=_FeedParams,
                 sniff=lambda spec: {"path": spec.split("?")[0].upper()} if spec.startswith("myfeed://") else None)
        register("broken", lambda params: None, sniff=lambda spec: "yes" if spec == "broken" else None)


def test_options_a_sniffer_ignores_are_applied(make_host) -> None:
    host = make_host(_Sources())
    comp, params = sniff_source("mysynth?seed=3&years=1", host)
    assert comp.name == "mysynth" and params == {"seed": 3, "years": 1.0}  # typed, over the sniffer's seed=1
    assert sniff_source("mysynth", host)[1] == {"seed": 1}
    # the sniffer's own path is kept, the options laid over it
    assert sniff_source("myfeed://ticks?symbol=GBPUSD", host)[1] == {"path": "MYFEED://TICKS", "symbol": "GBPUSD"}


def test_an_option_the_source_does_not_take_is_reported(make_host) -> None:
    host = make_host(_Sources())
    with pytest.raises(ConfigError) as info:
        sniff_source("mysynth?sed=3", host)
    ((where, message),) = info.value.problems
    assert where == "--data.sed" and "did you mean 'seed'" in message
    with pytest.raises(ConfigError) as info:  # the path is the spec's, never an option
        sniff_source("myfeed://ticks?path=elsewhere", host)
    assert info.value.problems[0][0] == "--data.path"
    with pytest.raises(ConfigError) as info:  # data inspect names its argument
        data_config_from_spec("mysynth?years=soon", host, where="SOURCE")
    assert info.value.problems == [("SOURCE ?years=", "expected a number, got 'soon'")]


def test_a_sniffer_that_returns_no_table_is_named(make_host) -> None:
    with pytest.raises(PluginError, match=r"data source 'broken' from .*: sniff\('broken'\) returned str, not a dict"):
        sniff_source("broken", make_host(_Sources()))


ROWS = ["2019-03-04 00:00", "2019-03-04 00:15"]


def _files(tmp_path: Path) -> dict[str, str]:
    """One small file per built-in file source, each with options its sniffer parses itself."""
    duka = tmp_path / "EURUSD_15_m_BID_2019.csv.gz"
    duka.write_bytes(gzip.compress(b"Gmt time,Open,High,Low,Close,Volume\n04.03.2019 00:00:00.000,1.1,1.2,1.0,1.1,5\n"))
    hist = tmp_path / "HISTDATA_COM_ASCII_EURUSD_M12019.zip"
    with zipfile.ZipFile(hist, "w") as zf:
        zf.writestr("DAT_ASCII_EURUSD_M1_2019.csv", "20190304 000000;1.1;1.2;1.0;1.1;0\n")
    mt = tmp_path / "EURUSD15.csv"
    mt.write_text("2019.03.04,00:00,1.1,1.2,1.0,1.1,100\n")
    csv = tmp_path / "bars.csv"
    csv.write_text("time;open;high;low;close\n2019-03-04 00:00;1.1;1.2;1.0;1.1\n")
    specs = {
        "dukascopy": f"{duka}?symbol=EURUSD&timeframe=15min",
        "histdata": f"{hist}?timezone=UTC-5,EU&symbol=EURUSD",
        "metatrader": f"{mt}?timezone=UTC+2,US",
        "csv": f"{csv}?columns=time:time,close:close&timezone=UTC",  # the sniffer adds sep=';' itself
        "synthetic": "synthetic?years=0.5&seed=7&vol_of_vol=0.1,0.2",
    }
    try:
        import pyarrow  # noqa: F401

        pq = tmp_path / "eurusd.parquet"
        pd.DataFrame({"open": [1.1], "high": [1.2], "low": [1.0], "close": [1.1]},
                     index=pd.DatetimeIndex(ROWS[:1], name="time").tz_localize("UTC")).to_parquet(pq)
        specs["parquet"] = f"{pq}?timezone=UTC"
    except ImportError:
        pass
    return specs


def test_the_built_in_sniffers_give_the_same_params(tmp_path: Path, make_host) -> None:
    host = make_host(builtin_data)
    sources = host.components(ComponentKind.DATA_SOURCE)
    for name, spec in _files(tmp_path).items():
        comp, params = sniff_source(spec, host)
        assert comp.name == name, spec
        assert params == sources[name].sniff(spec), name  # they parse the options themselves
        assert set(parse_spec(spec).options) <= set(params), name
