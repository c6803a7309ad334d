"""Built-in data sources (registered through the ``exitcore`` entry-point group).

Registration order is sniffing order: the vendor formats with a recognisable first line come
first, the generic ``csv`` source (any header naming a time and OHLC columns) after them, and
``synthetic`` (which takes no file) last. The loaders are imported inside ``build``/``sniff`` so
that registering stays free of pandas; ``docs/data.md`` documents every source and parameter.
"""

from __future__ import annotations

from typing import Any

from exitcore.data.source_params import (
    CsvParams,
    DukascopyParams,
    HistDataParams,
    MetaTraderParams,
    ParquetParams,
    SynthParams,
)
from exitcore.hookspecs import hookimpl


def _dukascopy(params: DukascopyParams) -> Any:
    from exitcore.data.formats import dukascopy

    return dukascopy.load(params)


def _sniff_dukascopy(spec: str) -> dict[str, Any] | None:
    from exitcore.data.formats import dukascopy

    return dukascopy.sniff(spec)


def _histdata(params: HistDataParams) -> Any:
    from exitcore.data.formats import histdata

    return histdata.load(params)


def _sniff_histdata(spec: str) -> dict[str, Any] | None:
    from exitcore.data.formats import histdata

    return histdata.sniff(spec)


def _metatrader(params: MetaTraderParams) -> Any:
    from exitcore.data.formats import metatrader

    return metatrader.load(params)


def _sniff_metatrader(spec: str) -> dict[str, Any] | None:
    from exitcore.data.formats import metatrader

    return metatrader.sniff(spec)


def _parquet(params: ParquetParams) -> Any:
    from exitcore.data.formats import generic

    return generic.load_parquet(params)


def _sniff_parquet(spec: str) -> dict[str, Any] | None:
    from exitcore.data.formats import generic

    return generic.sniff_parquet(spec)


def _csv(params: CsvParams) -> Any:
    from exitcore.data.formats import generic

    return generic.load_csv(params)


def _sniff_csv(spec: str) -> dict[str, Any] | None:
    from exitcore.data.formats import generic

    return generic.sniff_csv(spec)


def _synthetic(params: SynthParams) -> Any:
    from exitcore.data.synth import generate

    return generate(params)


def _sniff_synthetic(spec: str) -> dict[str, Any] | None:
    import attrs

    from exitcore.data.spec import parse_spec, spec_params

    parsed = parse_spec(spec)
    if parsed.source or parsed.path != "synthetic":
        return None
    return spec_params(attrs.evolve(parsed, path=""), SynthParams)


@hookimpl
def register_data_sources(register: Any) -> None:
    """Register the built-in sources (order = sniffing order)."""
    register(
        "dukascopy",
        _dukascopy,
        params=DukascopyParams,
        sniff=_sniff_dukascopy,
        description="Dukascopy exports (Gmt time / Local time) and Tickstory's Date,Timestamp layout",
    )
    register(
        "histdata",
        _histdata,
        params=HistDataParams,
        sniff=_sniff_histdata,
        description="HistData.com ASCII bars (YYYYMMDD HHMMSS;...); timezone is required",
    )
    register(
        "metatrader",
        _metatrader,
        params=MetaTraderParams,
        sniff=_sniff_metatrader,
        description="MetaTrader 4/5 history exports (YYYY.MM.DD,HH:MM,...), broker clock as timezone",
    )
    register(
        "parquet",
        _parquet,
        params=ParquetParams,
        sniff=_sniff_parquet,
        description="Parquet files with a column mapping (needs pyarrow)",
    )
    register(
        "csv",
        _csv,
        params=CsvParams,
        sniff=_sniff_csv,
        description="any delimited text with a column mapping (time, open, high, low, close, ...)",
    )
    register(
        "synthetic",
        _synthetic,
        params=SynthParams,
        sniff=_sniff_synthetic,
        description="seeded synthetic EURUSD-like bars (the default data): --data 'synthetic?years=5&seed=1'",
    )
