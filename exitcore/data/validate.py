"""Validation: parsed rows from one or more files in, canonical :class:`Bars` (or every problem) out.

A loader parses each file into a :class:`RawChunk` (wall-clock times, prices, file line
numbers, and the rows its parser already reported) and hands the chunks to :func:`assemble_bars`,
which checks everything at once and either returns validated bars or raises
:class:`DataValidationError` listing **every** problem with its file and line:

* files of different bar lengths (refused first, naming each file's length);
* unparseable rows and values (reported by the parser), missing or non-finite prices,
  non-positive prices, ``high < max(open, close)``, ``low > min(open, close)``;
* timestamps off the bar grid (checked on the file's own clock, where its vendor aligned them);
  when most of them are off a ``timeframe`` given for the source, one message says so instead
  (the source's timeframe is the file's own bar length, not the one to resample to), and so
  does a ``timeframe`` finer than the file's (every stamp on its grid, a hole after every bar);
* wall-clock times a daylight-saving switch makes ambiguous or non-existent;
* duplicate timestamps: rows identical to an earlier row with the same timestamp are dropped
  and counted in a warning (HistData 2019 repeats an hour); duplicates with different values
  are errors naming both rows;
* time going backwards (after identical duplicates are dropped), within a file or where two
  files overlap;
* a price more than :data:`MAX_JUMP` times off the previous bar's close (in file order, skipping
  rows whose prices are missing, non-finite or non-positive), whatever else is wrong.

The bar length (``timeframe = "auto"``) is the most common step forward between consecutive rows
in file order, so a row whose time goes backwards does not change it.

Files are ordered by their first timestamp, so a folder's file names need not sort in time.
Gaps are not errors: :func:`gap_report` describes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import pandas as pd

from exitcore.config import timeframe_seconds
from exitcore.data.bars import OPTIONAL_COLUMNS, PRICE_COLUMNS, Bars, Finding, bad_optional, infer_pip_size, price_problems
from exitcore.data.clocks import Clock, to_utc
from exitcore.errors import DataError
from exitcore.words import plural

NAT = np.iinfo(np.int64).min
_NS = 1_000_000_000
#: at most this many findings of one kind are kept as objects (the count is always exact)
KEEP_PER_KIND = 1000
#: at most this many findings of one kind are printed in an error message
SHOW_PER_KIND = 20


class DataValidationError(DataError):
    """Bars failed validation. ``findings`` lists the problems (errors and warnings), ``counts``
    how many rows each kind of problem affects; the message shows them grouped by kind."""

    def __init__(self, source: str, findings: list[Finding], counts: dict[str, int], kinds: list[str]):
        self.findings = findings
        self.counts = counts
        n_err = sum(n for k, n in counts.items() if not k.startswith("warning:"))
        lines = [f"{source}: {plural(n_err, 'problem')} in the data; nothing was loaded"]
        for kind in dict.fromkeys(kinds):
            shown = [f for f, k in zip(findings, kinds) if k == kind]
            lines.extend(f"  {f}" for f in shown[:SHOW_PER_KIND])
            more = counts[kind] - min(len(shown), SHOW_PER_KIND)
            if more > 0:
                name = kind.split(":", 1)[1]
                # a parse problem is a value (a row may have several), the other kinds are rows
                what = ("problem" if more == 1 else "problems") + " of the same kind" if name == "parse" else \
                    ("row" if more == 1 else "rows") + " with the same problem"
                lines.append(f"  ... and {more:,} more {what} ({name})")
        super().__init__("\n".join(lines))


class TimeframeError(DataError):
    """The bar length could not be inferred from the data (``spacing_ns``: the most common
    spacing when there was one, else 0)."""

    def __init__(self, message: str, spacing_ns: int = 0):
        self.spacing_ns = spacing_ns
        super().__init__(message)


@attrs.define(eq=False)
class RawChunk:
    """One file's parsed rows, before validation.

    ``local_ns``: int64 wall-clock times on the file's clock (``NAT`` where unparseable);
    ``values``: float64 ``open/high/low/close`` and optional ``volume``/``spread``;
    ``line``: the 1-based line of each row in ``display``; ``bad``: rows the parser already
    reported (they are not checked again); ``findings``: the parser's reports; ``is_utc``:
    the times carried their own offset and are already UTC (the clock is not applied).
    """

    display: str
    local_ns: np.ndarray
    values: dict[str, np.ndarray]
    line: np.ndarray
    bad: np.ndarray
    findings: list[Finding] = attrs.field(factory=list)
    is_utc: bool = False
    #: what ``line`` counts: "line" in text files, "row" in Parquet
    unit: str = "line"
    #: parse problems found beyond ``findings`` (a parser keeps at most ``KEEP_PER_KIND`` of a kind)
    omitted: int = 0

    def where(self, i: int) -> str:
        """``file, line N`` for row ``i``."""
        return f"{self.display}, {self.unit} {self.line[i]}"

    def __len__(self) -> int:
        return len(self.local_ns)


class _Collector:
    """Findings grouped by kind (``level:name``): exact counts, at most ``KEEP_PER_KIND`` objects each."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.kinds: list[str] = []
        self.counts: dict[str, int] = {}
        self._kept: dict[str, int] = {}

    def add(self, kind: str, finding: Finding, count: int = 1) -> None:
        """Record ``finding`` as one example of ``kind``, which affects ``count`` rows."""
        self.counts[kind] = self.counts.get(kind, 0) + count
        if self._kept.get(kind, 0) < KEEP_PER_KIND:
            self._kept[kind] = self._kept.get(kind, 0) + 1
            self.findings.append(finding)
            self.kinds.append(kind)

    def rows(self, kind: str, level: str, chunk: RawChunk, idx: np.ndarray, messages: Sequence[str]) -> None:
        """One finding per row ``idx`` of ``chunk`` (``messages`` may stop at ``KEEP_PER_KIND``)."""
        key = f"{level}:{kind}"
        for i, msg in zip(idx[:KEEP_PER_KIND], messages):
            self.add(key, Finding(level, chunk.where(i), msg), 0)
        self.counts[key] = self.counts.get(key, 0) + len(idx)

    @property
    def has_errors(self) -> bool:
        return any(not k.startswith("warning:") for k in self.counts)


def format_ts(ns: int) -> str:
    """A timestamp for messages: ``2019-10-27 19:00``."""
    text = str(np.datetime64(int(ns), "ns").astype("datetime64[s]")).replace("T", " ")
    return text[:-3] if text.endswith(":00") else text


def format_timeframe(seconds: int) -> str:
    """Seconds as a timeframe string (``900`` -> ``"15min"``)."""
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def assemble_bars(
    chunks: Sequence[RawChunk],
    *,
    clock: Clock,
    source: str,
    timeframe: str = "auto",
    symbol: str = "",
    pip_size: float = 0.0,
    extra_findings: Sequence[Finding] = (),
) -> Bars:
    """Validate parsed chunks and build canonical bars (timestamps converted to UTC).

    Raises :class:`DataValidationError` with every problem when anything is wrong;
    returns :class:`Bars` at the data's own timeframe (``"auto"``: the most common spacing)
    whose ``findings`` keep the warnings.
    """
    out = _Collector()
    for f in extra_findings:
        out.add(f"{f.level}:note", f)
    for ch in chunks:
        for f in ch.findings:
            out.add(f"{f.level}:parse", f)
        if ch.omitted:
            out.counts["error:parse"] = out.counts.get("error:parse", 0) + ch.omitted
    total_rows = sum(len(ch) for ch in chunks)
    if total_rows == 0:
        if out.has_errors:  # every row unparseable (a header with a column the rows lack): say so
            raise DataValidationError(source, out.findings, out.counts, out.kinds)
        raise DataError(f"{source}: no bars in the data")

    utc_list = []
    offsets_won = [ch for ch in chunks if ch.is_utc and not clock.is_utc]
    if offsets_won:  # a clock named and not applied must not pass in silence (trial AB)
        out.add("warning:clock", Finding(
            "warning", offsets_won[0].display,
            f"the times carry their own UTC offset (e.g. a trailing Z or +02:00), which wins over the clock "
            f"{clock} given as timezone: that option is not applied"
            + (f" (and not in {len(offsets_won) - 1} more file(s))" if len(offsets_won) > 1 else "")))
    for ch in chunks:
        ok = ~ch.bad & (ch.local_ns != NAT)
        if ch.is_utc or clock.is_utc:
            utc = ch.local_ns.copy()
        else:
            utc, ambiguous = to_utc(ch.local_ns, clock)
            amb = ok & ambiguous
            if amb.any():
                idx = np.flatnonzero(amb)
                out.rows(
                    "clock", "error", ch, idx,
                    [f"wall time {format_ts(ch.local_ns[i])} is ambiguous or does not exist on clock "
                     f"{clock} (a daylight-saving switch)" for i in idx[:KEEP_PER_KIND]],
                )
                ch.bad = ch.bad | amb
        utc_list.append(utc)

    # Files of different bar lengths are refused before anything else: pooled, the most common
    # spacing would relabel the coarser file's bars (M15 as M1, every stamp still on the 1min
    # grid), and where such files overlap their thousands of duplicates would bury the cause.
    _require_one_bar_length(chunks, utc_list, source)
    # The rows are checked before a failed timeframe inference is reported: a file whose times
    # or prices do not parse leaves fewer than two bars to infer it from, and the rows' own
    # problems are what the user needs to see.
    tf_ns, tf_problem = _timeframe_ns(chunks, utc_list, timeframe, source)
    # A timeframe given for the source that most rows are off is one problem, said first (it is
    # the file's own bar length, easily taken for the one to resample to), not a row each.
    wrong_tf = not tf_problem and timeframe != "auto" and _wrong_timeframe(chunks, utc_list, tf_ns, out)
    for ch in chunks:
        _check_values(ch, 0 if tf_problem or wrong_tf else tf_ns, out)
    if tf_problem:
        if out.has_errors:
            raise DataValidationError(source, out.findings, out.counts, out.kinds)
        raise TimeframeError(tf_problem, spacing_ns=tf_ns)

    # Concatenate the rows with a usable timestamp, files ordered by their first one.
    firsts = []
    for ch, utc in zip(chunks, utc_list):
        ok = ~ch.bad & (ch.local_ns != NAT)
        firsts.append(utc[ok].min() if ok.any() else np.iinfo(np.int64).max)
    order = np.argsort(np.asarray(firsts), kind="stable")
    sel = [(~chunks[i].bad) & (chunks[i].local_ns != NAT) for i in order]
    ts = np.concatenate([utc_list[i][s] for i, s in zip(order, sel)])
    chunk_id = np.concatenate([np.full(int(s.sum()), i, dtype=np.int64) for i, s in zip(order, sel)])
    line = np.concatenate([chunks[i].line[s] for i, s in zip(order, sel)])
    columns = [c for c in (*PRICE_COLUMNS, *OPTIONAL_COLUMNS) if all(c in ch.values for ch in chunks)]
    values = {c: np.concatenate([chunks[i].values[c][s] for i, s in zip(order, sel)]) for c in columns}
    displays = [f"{ch.display}, {ch.unit}" for ch in chunks]

    keep = _drop_duplicates(ts, values, chunk_id, line, displays, out)
    ts, chunk_id, line = ts[keep], chunk_id[keep], line[keep]
    values = {c: v[keep] for c, v in values.items()}
    _check_order(ts, chunk_id, line, displays, out)
    # Ratios are meaningful between finite positive prices: the rows without them (reported above)
    # are skipped, and the rest are checked whatever else is wrong (a row out of order, off the
    # grid), in file order, so that a corrupt price is never hidden behind another problem.
    priced = np.ones(len(ts), dtype=bool)
    for name in PRICE_COLUMNS:
        priced &= np.isfinite(values[name]) & (values[name] > 0)
    _check_jumps(ts[priced], {c: v[priced] for c, v in values.items()}, chunk_id[priced], line[priced], displays, out)

    if out.has_errors:
        raise DataValidationError(source, out.findings, out.counts, out.kinds)
    if len(ts) == 0:
        raise DataError(f"{source}: no bars in the data")
    frame = pd.DataFrame(
        {c: values[c].astype(np.float64) for c in columns},
        index=pd.DatetimeIndex(ts.astype("datetime64[ns]"), name="ts").tz_localize("UTC"),
    )
    warnings_ = tuple(f for f in out.findings if f.level != "error")
    return Bars(
        frame=frame,
        timeframe=format_timeframe(tf_ns // _NS),
        pip_size=float(pip_size) if pip_size > 0 else infer_pip_size(frame["close"].to_numpy()),
        symbol=symbol,
        source=source,
        findings=warnings_,
    )


#: a file's own bar length is inferred (to compare it with the other files') only from at least
#: this many usable bars: across a few bars one hole can be the most common spacing
MIN_BARS_FOR_LENGTH = 20
#: at most this many files are named per bar length when files of different lengths are refused
SHOW_FILES_PER_LENGTH = 3


def _spacings(ch: RawChunk, utc: np.ndarray) -> np.ndarray:
    """The steps forward (ns) between consecutive usable bars of one file, in file order.

    In file order, a row whose time goes backwards adds a step back (ignored) and one longer step
    forward; sorted, it would split a bar in two (00:00, 00:07, 00:15: a "7min" bar length that puts
    every row off the grid). A file with no step forward at all (newest first) is read sorted.
    """
    ok = ~ch.bad & (ch.local_ns != NAT)
    d = np.diff(utc[ok])
    if len(d) and not (d > 0).any():
        d = np.diff(np.sort(utc[ok]))
    return d[d > 0]


def _most_common(spacings: np.ndarray) -> int:
    """The most common spacing (the smallest of equally common ones); ``spacings`` not empty."""
    vals, counts = np.unique(spacings, return_counts=True)
    return int(vals[np.argmax(counts)])


def _require_one_bar_length(chunks: Sequence[RawChunk], utc_list: list[np.ndarray], source: str) -> None:
    """Raise :class:`DataError` when files have different bar lengths, naming each file's.

    Each file's length is inferred as ``timeframe = "auto"`` infers the whole data's (its most
    common spacing), from files with at least :data:`MIN_BARS_FOR_LENGTH` usable bars; shorter
    files are not compared, so a short file is never refused for one odd spacing.
    """
    if len(chunks) < 2:  # nothing to compare (and no second sort of a large file's times)
        return
    lengths: dict[int, list[str]] = {}
    for ch, utc in zip(chunks, utc_list):
        d = _spacings(ch, utc)
        if len(d) + 1 >= MIN_BARS_FOR_LENGTH:
            lengths.setdefault(_most_common(d), []).append(ch.display)
    if len(lengths) < 2:
        return
    parts = []
    for tf, files in sorted(lengths.items(), reverse=True):  # the coarsest first
        named = ", ".join(files[:SHOW_FILES_PER_LENGTH])
        if len(files) > SHOW_FILES_PER_LENGTH:
            named += f" (and {len(files) - SHOW_FILES_PER_LENGTH} more file(s))"
        parts.append(f"{named} {'has' if len(files) == 1 else 'have'} {_length_text(tf)} bars")
    raise DataError(
        f"{source}: the files do not share a bar length: {'; '.join(parts)}. Files of one data set must "
        "share a bar length (joined, the coarser bars would be taken for the finer ones with holes "
        "between them): load them separately"
    )


def _length_text(spacing_ns: int) -> str:
    """A spacing as a timeframe (``15min``), or in ns when it is no whole number of seconds."""
    return format_timeframe(spacing_ns // _NS) if spacing_ns % _NS == 0 else f"{spacing_ns} ns"


def _timeframe_ns(chunks: Sequence[RawChunk], utc_list: list[np.ndarray], timeframe: str, source: str) -> tuple[int, str]:
    """``(bar length in ns, problem)``: ``problem`` is ``""`` unless ``"auto"`` cannot be inferred
    (fewer than two bars; a most common spacing that is no whole number of seconds, returned as
    the length so that a caller can say what it suggests)."""
    if timeframe != "auto":
        return timeframe_seconds(timeframe) * _NS, ""
    diffs = [_spacings(ch, utc) for ch, utc in zip(chunks, utc_list)]
    d = np.concatenate(diffs) if diffs else np.empty(0, dtype=np.int64)
    if len(d) == 0:
        return 0, f"{source}: cannot infer the bar length from fewer than two bars; set the source's timeframe"
    tf = _most_common(d)
    if tf % _NS:
        return tf, (f"{source}: the most common bar spacing ({tf} ns) is not a whole number of seconds"
                    f"{_unit_hint(tf)}")
    return tf, ""


def _unit_hint(spacing_ns: int) -> str:
    """What a bar spacing below whole seconds suggests: times read in too fine a unit."""
    for factor in (1_000, 1_000_000, 1_000_000_000):
        if (spacing_ns * factor) % _NS == 0:
            return (f"; the time unit looks wrong: in a unit {factor:,} times coarser the spacing would be "
                    f"{format_timeframe(spacing_ns * factor // _NS)}")
    return ""


def _check_values(ch: RawChunk, tf_ns: int, out: _Collector) -> None:
    """Report the bad values of ``ch`` (and, when ``tf_ns`` is not 0, its times off the bar grid)."""
    ok = ~ch.bad & (ch.local_ns != NAT)
    o, h, l, c = (ch.values[k] for k in PRICE_COLUMNS)
    words = {  # a row is reported for its first kind of problem only (price_problems)
        "missing": lambda i: f"missing price ({_fields(ch, i)})",
        "non-finite": lambda i: f"non-finite price ({_fields(ch, i)})",
        "non-positive": lambda i: f"non-positive price ({_fields(ch, i)})",
        "high": lambda i: f"high {float(h[i])!r} < max(open, close) {float(max(o[i], c[i]))!r}",
        "low": lambda i: f"low {float(l[i])!r} > min(open, close) {float(min(o[i], c[i]))!r}",
    }
    for kind, bad in price_problems(o, h, l, c).items():
        _emit(out, ch, ok & bad, kind, words[kind])
    if tf_ns:
        off = ok & (ch.local_ns % tf_ns != 0)
        tf_text = format_timeframe(tf_ns // _NS)
        _emit(out, ch, off, "grid", lambda i: f"timestamp {format_ts(ch.local_ns[i])} is not on the {tf_text} bar grid")
    for name in OPTIONAL_COLUMNS:
        if name in ch.values:
            v = ch.values[name]
            bad = ok & bad_optional(v)
            _emit(out, ch, bad, name, lambda i, v=v, name=name: f"{name} {float(v[i])!r} is not a finite number >= 0")


#: when at least this share of the usable rows are off the grid of a ``timeframe`` given for the
#: source, and the rows are another length apart, the timeframe is wrong (M15 bars with
#: ``timeframe=1h``: 3 rows in 4 off, ``30min``: 1 in 2): one message says so instead of a row each
WRONG_TIMEFRAME_SHARE = 0.25
#: ... provided that at least this share of the steps forward are that other length (the shared
#: data sets: 99.8 %): rows shifted off the grid one by one, every other row, make no such step
STEP_SHARE = 2 / 3


def _wrong_timeframe(chunks: Sequence[RawChunk], utc_list: list[np.ndarray], tf_ns: int, out: _Collector) -> bool:
    """Whether the ``timeframe`` given for the source (``tf_ns``) is not the file's bar length: at
    least :data:`WRONG_TIMEFRAME_SHARE` of the usable rows are off its grid and at least
    :data:`STEP_SHARE` of the steps forward are another length. If so, one error says so (the
    rows off the grid are then not reported one by one)."""
    oks = [~ch.bad & (ch.local_ns != NAT) for ch in chunks]
    n_ok = sum(int(ok.sum()) for ok in oks)
    offs = [ok & (ch.local_ns % tf_ns != 0) for ch, ok in zip(chunks, oks)]
    n_off = sum(int(off.sum()) for off in offs)
    if n_ok < MIN_BARS_FOR_LENGTH:
        return False
    d = np.concatenate([_spacings(ch, utc) for ch, utc in zip(chunks, utc_list)])
    if not len(d):
        return False
    step_ns = _most_common(d)
    if step_ns == tf_ns or (d == step_ns).sum() < STEP_SHARE * len(d):
        return False
    tf, step = format_timeframe(tf_ns // _NS), _length_text(step_ns)
    if n_off == 0 and step_ns % tf_ns == 0:
        # a timeframe finer than the file's (1min for M15 bars): every stamp is on its grid, but
        # read so, each bar would be followed by a hole of the bars between (a gap every bar)
        files = [ch.display for ch, ok in zip(chunks, oks) if ok.any()]
        where = files[0] + (f" (and {len(files) - 1} more file(s))" if len(files) > 1 else "")
        out.add("error:timeframe", Finding(
            "error", where,
            f"timeframe={tf} was given, but {int((d == step_ns).sum()):,} of {len(d):,} steps between the bars are "
            f"{step}: a source's timeframe is the file's own bar length (leave it \"auto\" or set {step}); read as "
            f"{tf} bars, every bar would be followed by a hole of {step_ns // tf_ns - 1} missing bars "
            "(bars are never split or interpolated, so the data cannot be made finer)",
        ))
        return True
    if n_off < WRONG_TIMEFRAME_SHARE * n_ok:
        return False
    files = [ch.display for ch, off in zip(chunks, offs) if off.any()]
    where = files[0] + (f" (and {len(files) - 1} more file(s))" if len(files) > 1 else "")
    resample = (f"; to resample the bars to {tf}, set data.timeframe = \"{tf}\" (exitcore run: --set data.timeframe={tf}; "
                f"exitcore data inspect: --timeframe {tf})") if tf_ns % step_ns == 0 else ""
    out.add("error:timeframe", Finding(
        "error", where,
        f"{n_off:,} of {n_ok:,} timestamps are not on the {tf} bar grid: the bars are {step} apart, but "
        f"timeframe={tf} was given, and a source's timeframe is the file's own bar length (leave it \"auto\" "
        f"or set {step}){resample}",
    ))
    return True


def _fields(ch: RawChunk, i: int) -> str:
    return ", ".join(f"{k}={float(ch.values[k][i])!r}" for k in PRICE_COLUMNS)


def _emit(out: _Collector, ch: RawChunk, mask: np.ndarray, kind: str, message) -> None:
    if not mask.any():
        return
    idx = np.flatnonzero(mask)
    out.rows(kind, "error", ch, idx, [message(i) for i in idx[:KEEP_PER_KIND]])


def _drop_duplicates(
    ts: np.ndarray,
    values: dict[str, np.ndarray],
    chunk_id: np.ndarray,
    line: np.ndarray,
    displays: list[str],
    out: _Collector,
) -> np.ndarray:
    """Keep-mask: rows repeating an earlier row exactly are dropped (warning); others are errors."""
    keep = np.ones(len(ts), dtype=bool)
    if len(ts) < 2:
        return keep
    order = np.argsort(ts, kind="stable")  # stable: the earlier row of a pair comes first
    st = ts[order]
    starts = np.r_[True, st[1:] != st[:-1]]
    if starts.all():
        return keep
    pos = np.arange(len(st))
    first = order[np.maximum.accumulate(np.where(starts, pos, 0))]
    dup = order[~starts]
    ref = first[~starts]
    same = np.ones(len(dup), dtype=bool)
    for v in values.values():
        a, b = v[dup], v[ref]
        same &= (a == b) | (np.isnan(a) & np.isnan(b))
    keep[dup[same]] = False
    if same.any():
        i0, r0 = dup[same][0], ref[same][0]
        out.add(
            "warning:duplicates",
            Finding(
                "warning",
                f"{displays[chunk_id[i0]]} {line[i0]}",
                f"{int(same.sum())} row(s) repeat an earlier row exactly (same timestamp and values) and were "
                f"dropped; the first repeats {format_ts(ts[i0])} UTC of {displays[chunk_id[r0]]} {line[r0]}",
            ),
        )
    for i, r in list(zip(dup[~same], ref[~same]))[:KEEP_PER_KIND]:
        out.add(
            "error:conflicting duplicates",
            Finding(
                "error",
                f"{displays[chunk_id[i]]} {line[i]}",
                f"duplicate timestamp {format_ts(ts[i])} UTC with different values than "
                f"{displays[chunk_id[r]]} {line[r]}",
            ),
            0,
        )
    n_conf = int((~same).sum())
    if n_conf:
        out.counts["error:conflicting duplicates"] += n_conf
    return keep


def _check_order(ts: np.ndarray, chunk_id: np.ndarray, line: np.ndarray, displays: list[str], out: _Collector) -> None:
    if len(ts) < 2:
        return
    back = np.flatnonzero(ts[1:] < ts[:-1]) + 1
    for i in back[:KEEP_PER_KIND]:
        j = i - 1
        out.add(
            "error:backwards",
            Finding(
                "error",
                f"{displays[chunk_id[i]]} {line[i]}",
                f"time goes backwards: {format_ts(ts[i])} UTC comes after {format_ts(ts[j])} UTC "
                f"({displays[chunk_id[j]]} {line[j]})",
            ),
            0,
        )
    if len(back):
        out.counts["error:backwards"] += len(back)


#: a bar with a price this many times the previous bar's close, or this many times below it, is
#: refused: in FX (EURCHF on 2015-01-15 moved about 30 %) that is a misplaced decimal point or a
#: corrupt row, and left in it makes features overflow far from where the file went wrong
MAX_JUMP = 5.0


def _check_jumps(ts: np.ndarray, values: dict[str, np.ndarray], chunk_id: np.ndarray, line: np.ndarray,
                 displays: list[str], out: _Collector) -> None:
    """Report the bars whose open, high, low or close is more than :data:`MAX_JUMP` times off the
    previous bar's close (in time order, after duplicates are dropped)."""
    if len(ts) < 2:
        return
    before = values["close"][:-1]
    ratio = np.ones(len(ts) - 1)
    for name in PRICE_COLUMNS:
        r = values[name][1:] / before
        ratio = np.maximum(ratio, np.maximum(r, 1.0 / r))
    jumps = np.flatnonzero(ratio > MAX_JUMP) + 1
    for i in jumps[:KEEP_PER_KIND]:
        j = i - 1
        prices = ", ".join(f"{k}={float(values[k][i])!r}" for k in PRICE_COLUMNS)
        out.add(
            "error:jump",
            Finding(
                "error",
                f"{displays[chunk_id[i]]} {line[i]}",
                f"price {ratio[j]:.3g} times off the previous bar's close {float(before[j])!r} "
                f"({format_ts(ts[j])} UTC, {displays[chunk_id[j]]} {line[j]}): a misplaced decimal point or a "
                f"corrupt row, not a market move ({prices})",
            ),
            0,
        )
    if len(jumps):
        out.counts["error:jump"] += len(jumps)


# --------------------------------------------------------------------------- gaps

_DAY_NS = 86400 * _NS
#: a hole spanning a Saturday is "over a weekend" up to this long: Friday's close to Sunday's
#: open is about 49 hours, a holiday beside it (Good Friday, Christmas) makes it up to 4 days
WEEKEND_MAX_DAYS = 4
#: a hole longer than this is warned about: no weekend or holiday, most likely two data sets
#: joined (2010 -> 2018), which features, entry signals and daily results would span as one
LONG_HOLE_DAYS = 7
#: at most this many long holes are named one by one (the rest are counted)
SHOW_LONG_HOLES = 5


@attrs.frozen
class GapReport:
    """Holes in a bar series: consecutive bars more than one bar apart.

    ``count`` gaps in total, ``weekend`` of them over a weekend (spanning a Saturday and at most
    :data:`WEEKEND_MAX_DAYS` long); ``longest`` the largest
    (``longest_from``/``longest_to`` are the bars around it, ``longest_bars`` the missing bars);
    ``over_limit`` gaps longer than ``max_gap_bars`` missing bars (trades are held across them,
    or closed before them with ``env.data_holes = "close"``)
    and ``over_limit_weekday`` those of them not over a weekend (outages, holidays, and the holes
    longer than a weekend); ``long_holes`` holes longer than :data:`LONG_HOLE_DAYS` days (each one is
    also a warning, :func:`long_hole_findings`).
    """

    count: int
    weekend: int
    over_limit: int
    over_limit_weekday: int
    max_gap_bars: int
    longest_bars: int
    longest_from: pd.Timestamp | None
    longest_to: pd.Timestamp | None
    long_holes: int = 0

    def describe(self) -> str:
        """One line for ``data inspect``."""
        if not self.count:
            return "no gaps"
        long = f"; {self.long_holes} longer than {LONG_HOLE_DAYS} days (see the findings)" if self.long_holes else ""
        return (
            f"{self.count:,} gaps ({self.weekend:,} over a weekend); longest {self.longest_bars:,} missing bars "
            f"({self.longest_from:%Y-%m-%d %H:%M} -> {self.longest_to:%Y-%m-%d %H:%M} UTC); "
            f"{self.over_limit:,} longer than max_gap_bars={self.max_gap_bars} "
            f"({self.over_limit_weekday:,} of them not over a weekend){long}"
        )


def _holes(ts: np.ndarray, tf_ns: int) -> np.ndarray:
    """Positions ``i`` where bar ``i + 1`` does not follow bar ``i`` (a hole between them)."""
    return np.flatnonzero(np.diff(ts) > tf_ns) if len(ts) > 1 else np.empty(0, dtype=np.int64)


def _over_weekend(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Which holes between the bars opening at ``before`` and ``after`` (ns) are over a weekend:
    a Saturday (UTC) lies strictly inside, and they are at most :data:`WEEKEND_MAX_DAYS` long."""
    start_day, end_day = before // _DAY_NS, after // _DAY_NS
    # 1970-01-01 was a Thursday: day number + 3 mod 7 gives Monday = 0, Saturday = 5
    next_sat = start_day + (5 - (start_day + 3) % 7) % 7
    return (next_sat < end_day) & (after - before <= WEEKEND_MAX_DAYS * _DAY_NS)


def gap_report(bars: Bars, max_gap_bars: int) -> GapReport:
    """Count and describe the gaps of ``bars`` (see :class:`GapReport`)."""
    ts = bars.frame.index.as_unit("ns").asi8
    tf = timeframe_seconds(bars.timeframe) * _NS
    idx = _holes(ts, tf)
    if not len(idx):
        return GapReport(0, 0, 0, 0, max_gap_bars, 0, None, None)
    missing = (ts[idx + 1] - ts[idx]) // tf - 1
    weekend = _over_weekend(ts[idx], ts[idx + 1])
    over = missing > max_gap_bars
    k = int(np.argmax(missing))
    return GapReport(
        count=len(idx),
        weekend=int(weekend.sum()),
        over_limit=int(over.sum()),
        over_limit_weekday=int((over & ~weekend).sum()),
        max_gap_bars=max_gap_bars,
        longest_bars=int(missing[k]),
        longest_from=bars.frame.index[idx[k]],
        longest_to=bars.frame.index[idx[k] + 1],
        long_holes=int((ts[idx + 1] - ts[idx] > LONG_HOLE_DAYS * _DAY_NS).sum()),
    )


@attrs.frozen
class LongHole(Finding):
    """The warning about a hole longer than :data:`LONG_HOLE_DAYS` days (``exitcore run`` prints it)."""


def long_hole_findings(bars: Bars) -> list[Finding]:
    """A warning for each hole of ``bars`` longer than :data:`LONG_HOLE_DAYS` days, naming the
    bars either side of it (the first :data:`SHOW_LONG_HOLES`; one more counts the rest).

    Such a hole is not refused (a user may want the data sets joined) but never passes as a
    weekend: lookback features, the entry strategy's channels and ATR, and the daily series of
    the results (zero days) would all span it as if the market had been closed.
    """
    ts = bars.frame.index.as_unit("ns").asi8
    idx = _holes(ts, timeframe_seconds(bars.timeframe) * _NS)
    idx = idx[ts[idx + 1] - ts[idx] > LONG_HOLE_DAYS * _DAY_NS]
    where = bars.source or "data"
    out: list[Finding] = []
    for i in idx[:SHOW_LONG_HOLES]:
        days = (ts[i + 1] - ts[i]) / _DAY_NS
        out.append(LongHole(
            "warning", where,
            f"a hole of {days:,.1f} days in the data, between the bars of {format_ts(ts[i])} and "
            f"{format_ts(ts[i + 1])} UTC: longer than a weekend or holiday ({LONG_HOLE_DAYS} days), most likely "
            "two data sets joined; features, entry signals (channels, ATR) and the daily results span it as if "
            "the market had been closed. Load the data sets separately unless this is meant",
        ))
    if len(idx) > SHOW_LONG_HOLES:
        out.append(LongHole("warning", where, f"... and {len(idx) - SHOW_LONG_HOLES} more hole(s) longer than "
                                              f"{LONG_HOLE_DAYS} days"))
    return out
