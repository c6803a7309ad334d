"""Helpers shared by the file formats: values to arrays, symbols from file names, sniffing."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from exitcore.data.bars import Finding
from exitcore.data.files import TextMember, expand_paths, first_line, text_members
from exitcore.data.progress import report
from exitcore.data.spec import parse_spec, spec_params
from exitcore.data.timeparse import NAT, parse_datetimes
from exitcore.data.validate import KEEP_PER_KIND, RawChunk
from exitcore.errors import DataError
from exitcore.words import plural

# six letters on their own, or followed by a MetaTrader period (EURUSDM15, EURUSDH1)
_SYMBOL = re.compile(r"(?<![A-Z])([A-Z]{6})(?=[^A-Z]|$|(?:M|H|D|W|MN)\d)")
#: ISO 4217 currency codes (active ones, plus CNH, offshore yuan) and the precious metals
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNH CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU
    UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
    XAU XAG XPT XPD
    """.split()
)
#: numpy dtype kinds read as numbers without parsing text (bool, int, uint, float, complex)
NUMERIC_KINDS = "biufc"


def parse_time_column(
    values: pd.Series, fmt: str, member: TextMember, line: np.ndarray, expected: str
) -> tuple[np.ndarray, np.ndarray, list[Finding]]:
    """Parse ``values`` with ``fmt``; returns ``(local_ns, bad, findings)`` naming bad rows."""
    ns = parse_datetimes(values, fmt)
    bad = ns == NAT
    return ns, bad, _time_findings(values, bad, member, line, expected)


def _time_findings(values: pd.Series, bad: np.ndarray, member: TextMember, line: np.ndarray, expected: str) -> list[Finding]:
    out = []
    for i in np.flatnonzero(bad)[:KEEP_PER_KIND]:
        v = values.iloc[i]
        what = "missing time" if pd.isna(v) else f"unparseable time {str(v)!r}"
        out.append(Finding("error", f"{member.display}, line {line[i]}", f"{what} (expected {expected})"))
    return capped(out, int(bad.sum()), member.display)


@attrs.frozen
class Omitted(Finding):
    """Stands for ``count`` more problems a parser found but did not keep as findings (at most
    ``KEEP_PER_KIND`` are kept); :func:`make_chunk` turns it into the chunk's ``omitted``, so
    that validation counts every problem exactly."""

    count: int = 0


def capped(findings: list[Finding], total: int, display: str) -> list[Finding]:
    """``findings`` (the first of ``total`` problems), plus an :class:`Omitted` for the rest."""
    if total > len(findings):
        return [*findings, Omitted("error", display, "more problems of the same kind", total - len(findings))]
    return findings


def numeric_columns(
    frame: pd.DataFrame, mapping: dict[str, str], member: TextMember, line: np.ndarray, unit: str = "line"
) -> tuple[dict[str, np.ndarray], np.ndarray, list[Finding]]:
    """float64 arrays for each ``canonical -> column`` of ``mapping``.

    Text that is not a number is reported (``open 'abc' is not a number``) and its row marked
    bad; empty cells become NaN and are reported by validation as missing prices.
    """
    values: dict[str, np.ndarray] = {}
    bad = np.zeros(len(frame), dtype=bool)
    findings: list[Finding] = []
    for name, col in mapping.items():
        series = frame[col]
        if series.dtype.kind in NUMERIC_KINDS:
            values[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        num = pd.to_numeric(series, errors="coerce")
        wrong = (num.isna() & series.notna()).to_numpy()
        findings.extend(capped(
            [Finding("error", f"{member.display}, {unit} {line[i]}", f"{name} {str(series.iloc[i])!r} is not a number")
             for i in np.flatnonzero(wrong)[:KEEP_PER_KIND]],
            int(wrong.sum()), member.display,
        ))
        bad |= wrong
        values[name] = num.to_numpy(dtype=np.float64, na_value=np.nan)
    return values, bad, findings


def make_chunk(
    member: TextMember,
    local_ns: np.ndarray,
    values: dict[str, np.ndarray],
    line: np.ndarray,
    bad: np.ndarray,
    findings: list[Finding],
    *,
    is_utc: bool = False,
    unit: str = "line",
) -> RawChunk:
    """Bundle one file's parsed rows (:class:`Omitted` findings become the chunk's ``omitted``)."""
    return RawChunk(
        display=member.display,
        local_ns=local_ns,
        values=values,
        line=line,
        bad=bad,
        findings=[f for f in findings if not isinstance(f, Omitted)],
        omitted=sum(f.count for f in findings if isinstance(f, Omitted)),
        is_utc=is_utc,
        unit=unit,
    )


def is_currency_pair(text: str) -> bool:
    """Six letters made of two different known codes (``EURUSD``, ``XAUUSD``), any case."""
    t = text.upper()
    return len(t) == 6 and t[:3] != t[3:] and t[:3] in CURRENCIES and t[3:] in CURRENCIES


def symbol_of(names: Sequence[str], given: str, where: str) -> str:
    """``given``, else the one currency pair in the file names (``EURUSD`` in
    ``DAT_ASCII_EURUSD_M1_2018.csv``), else ``""``.

    Only six letters that read as a pair of known currency or metal codes count as the symbol,
    so a file named ``unixms.csv`` or ``custom.txt`` has no symbol rather than ``UNIXMS``.
    Files of different symbols in one source are an error: their bars would be mixed. Where no
    file names a currency pair, other six-letter names (``BTCUSD``, ``XTIUSD``) are compared
    for that check, so two instruments outside the currency list are not mixed silently either.
    """
    if given:
        return given
    pairs: dict[str, int] = {}
    others: dict[str, int] = {}
    for name in names:
        tokens = [m.group(1) for m in _SYMBOL.finditer(Path(name).name.upper())]
        pair = next((t for t in tokens if is_currency_pair(t)), None)
        if pair:
            pairs[pair] = pairs.get(pair, 0) + 1
        elif tokens:
            key = "/".join(sorted(set(tokens)))
            others[key] = others.get(key, 0) + 1
    found = pairs or others
    if len(found) > 1:
        listed = ", ".join(f"{s} ({plural(n, 'file')})" for s, n in sorted(found.items()))
        raise DataError(
            f"{where}: the files hold different symbols ({listed}); load one symbol at a time "
            "(a glob such as '*EURUSD*') or set symbol to override"
        )
    return next(iter(pairs), "")


def load_members(
    path: str,
    suffixes: tuple[str, ...],
    parse: Callable[[TextMember], RawChunk],
    layout: tuple[str, Callable[[str], bool]] | None = None,
    symbol: str | None = None,
) -> list[RawChunk]:
    """Parse every text stream under ``path`` (file, folder or glob) with ``parse``.

    ``symbol`` is the source's ``symbol`` parameter: unless None, streams whose names hold
    different symbols are refused by :func:`symbol_of` before any is parsed (a folder of eight
    HistData zips of four pairs was read in full, 5 s, before being refused by their names).

    ``layout`` is ``(name, matches)``: the format's name and the test of a first line its
    sniffer uses; streams of which some match and some do not are refused by
    :func:`require_one_layout` before any is parsed.
    """
    members = [m for p in expand_paths(path, suffixes) for m in text_members(p)]
    if symbol is not None:
        symbol_of([m.display for m in members], symbol, path)
    if layout is not None:
        require_one_layout(members, *layout)
    chunks = []
    for k, member in enumerate(members, 1):
        report(f"reading {member.display} ({k}/{len(members)})")
        chunks.append(parse(member))
    return chunks


def require_one_layout(members: Sequence[TextMember], name: str, matches: Callable[[str], bool]) -> None:
    """Raise :class:`DataError` when some of ``members`` have the layout ``name`` (their first line
    ``matches``) and some do not: a folder mixing formats (a Tickstory ``.csv.gz`` beside a
    HistData ``.zip``, the source sniffed from the first) would otherwise fail on the odd file
    with a message about its header. When none matches, the parser says what is wrong.
    """
    if len(members) < 2:
        return
    lines = [first_line(m) for m in members]
    fits = [matches(line) for line in lines]
    if all(fits) or not any(fits):
        return
    good = members[fits.index(True)]
    k = fits.index(False)
    raise DataError(
        f"{members[k].display}: not a {name} file (its first line is {lines[k][:60]!r}), unlike "
        f"{good.display}: the files mix formats; load each format separately"
    )


def sniff_first_line(spec: str, params_cls: type, suffixes: tuple[str, ...], matches: Callable[[str], bool]) -> dict[str, Any] | None:
    """Params for ``spec`` if its first file's first line ``matches`` the format, else None."""
    parsed = parse_spec(spec)
    if parsed.source or not parsed.path:
        return None
    try:
        paths = expand_paths(parsed.path, suffixes)
        line = first_line(text_members(paths[0])[0])
    except DataError:
        return None
    if not matches(line):
        return None
    return spec_params(parsed, params_cls)


def detect_sep(line: str) -> str:
    """The delimiter of a header or data line: tab, semicolon or comma."""
    if "\t" in line:
        return "\t"
    if ";" in line and line.count(";") >= line.count(","):
        return ";"
    return ","
