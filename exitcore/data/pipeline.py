"""From an experiment's ``[data]`` section (or a ``--data`` string) to bars at its timeframe.

The steps, each reusable on its own:

1. :func:`resolve_source` picks the data-source component and its params table: the named
   ``data.source``, or with ``source = "auto"`` the first source whose ``sniff`` recognises
   ``params.path``; :func:`data_config_from_spec` does the same for a ``--data`` string.
2. :func:`load_source_bars` validates the params against the source's class and calls its
   ``build`` - the bars come back validated at the file's own timeframe.
3. :func:`load_bars` resamples them to ``data.timeframe`` and applies ``data.pip_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from exitcore.components import Component, ComponentKind
from exitcore.config import DataConfig, DataOrigins, converter, locate_problems
from exitcore.data.bars import Bars, check_bars
from exitcore.data.spec import option_where, parse_spec, spec_params
from exitcore.errors import ConfigError, DataError, ExitcoreError, PluginError, describe_exception
from exitcore.toml_lines import deeper


def sniff_source(spec: str, host: Any, where: str = "--data") -> tuple[Component, dict[str, Any]]:
    """The data source for a ``--data`` string and the params table it implies.

    ``SOURCE:...`` names the source; otherwise every source's ``sniff`` is asked in
    registration order and the first that recognises the spec wins. The spec's ``?KEY=VALUE``
    options, typed by the source's params class (:func:`spec_params`), are laid over the table
    the sniffer returns (its ``path`` is kept): an option a sniffer ignores still counts, and
    one the source does not take is a :class:`ConfigError` at ``--data.KEY``.
    """
    parsed = parse_spec(spec, where)
    if parsed.source:
        comp = host.get(ComponentKind.DATA_SOURCE, parsed.source, where=where)
        return comp, spec_params(parsed, comp.params, where)
    sources = host.components(ComponentKind.DATA_SOURCE)
    for comp in sources.values():
        if comp.sniff is None:
            continue
        try:
            params = comp.sniff(spec)
        except ConfigError as exc:  # a sniffer names the options as --data's: rename them as given
            raise ConfigError([(_relocate(p, where), m) for p, m in exc.problems]) from None
        except ExitcoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug, reported with its origin
            raise PluginError(
                f"data source {comp.name!r} from {comp.origin} failed while sniffing {spec!r}: {describe_exception(exc)}"
            ) from exc
        if params is not None:
            if not isinstance(params, dict):
                raise PluginError(f"data source {comp.name!r} from {comp.origin}: sniff({spec!r}) returned "
                                  f"{type(params).__name__}, not a dict of params or None")
            # a sniffer that ignores the options would drop them silently (seed=3 reading seed=0)
            options = spec_params(attrs.evolve(parsed, path=""), comp.params, where)
            return comp, {**params, **options}
    if parsed.path and not _exists(parsed.path):
        from exitcore.data.files import relative_to_cwd  # pandas: not at import time

        raise DataError(f"{parsed.path}: no such file or folder{relative_to_cwd(parsed.path)} ({where})")
    why = ""
    if parsed.path:
        _explain_unreadable(Path(parsed.path).expanduser(), where)
        _explain_empty(parsed.path, where)
        from exitcore.data.formats.generic import csv_header_problem

        # what the most general sniffer missed, so no guess at SOURCE:PATH is needed (trial AB)
        problem = csv_header_problem(parsed.path)
        why = f" (read as csv: {problem})" if problem else ""
    names = ", ".join(sources) or "none installed"
    raise DataError(
        f"{where}: no data source recognises {spec!r}{why}; name one explicitly as SOURCE:PATH "
        f"(data sources: {names}; see docs/data.md)"
    )


def _explain_unreadable(path: Path, where: str) -> None:
    """Raise the specific reason no source recognised ``path``, where one is plain to see."""
    import gzip

    if path.is_dir() and not any(p.is_file() and not p.name.startswith(".") for p in path.rglob("*")):
        raise DataError(f"{path}: the folder holds no data files ({where})")
    if path.is_file() and path.suffix == ".gz":
        try:
            with gzip.open(path) as fh:
                fh.read(1)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc}) ({where})") from None
    if path.is_file():
        with path.open("rb") as fh:
            head = fh.read(65536)
        # Windows tools save "Unicode" text as UTF-16, which no CSV reader here takes
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path}: the file is UTF-16 text (it starts with a byte-order mark); save it as "
                            f"UTF-8 or ASCII CSV ({where})")
        if path.suffix.lower() not in (".gz", ".zip", ".bz2", ".xz", ".parquet", ".pq"):
            bad = _first_non_utf8(head)
            if bad is not None:  # Latin-1 (`tempsé`): said, not left to a failed guess (trial AB)
                line = head[:bad].count(b"\n") + 1
                raise DataError(f"{path}: not UTF-8 text (byte 0x{head[bad]:02x} at offset {bad}, line {line}); "
                                f"save it as UTF-8 ({where})")


def _first_non_utf8(data: bytes) -> int | None:
    """The offset of the first byte of ``data`` that is not UTF-8, or None (a character cut
    at the end of ``data`` counts as UTF-8)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None if exc.reason == "unexpected end of data" else exc.start
    return None


def _explain_empty(path: str, where: str) -> None:
    """Raise "the file is empty" when the first file ``path`` names holds no text (as the
    sources say when named explicitly)."""
    from exitcore.data.files import expand_paths, first_line, text_members

    try:
        member = text_members(expand_paths(path)[0])[0]
        empty = first_line(member) == ""
    except DataError:
        return
    if empty:
        raise DataError(f"{member.display}: the file is empty ({where})")


def _exists(path: str) -> bool:
    import glob

    return Path(path).expanduser().exists() or bool(glob.glob(str(Path(path).expanduser())))


def data_config_from_spec(spec: str, host: Any, base: DataConfig | None = None, where: str = "--data") -> DataConfig:
    """``base`` (or the default data section) with its source and params taken from ``spec``.

    The params are validated now, so a bad option is reported before anything is loaded;
    ``where`` names the spec in messages (``--data``, or ``SOURCE`` for ``data inspect``).
    """
    comp, params = sniff_source(spec, host, where)
    try:
        structure_params(comp, params, where)
    except ConfigError as exc:  # named as the spec's options: SOURCE ?timezone= (--data.timezone)
        raise ConfigError([(_spec_option(p, where), m) for p, m in exc.problems]) from None
    return attrs.evolve(base or DataConfig(), source=comp.name, params=params)


def relocated_data(frozen: DataConfig, spec: str, host: Any, where: str = "--data") -> DataConfig:
    """A run's frozen data section read from where its file is now (``--resume RUN --data``,
    ``audit RUN --data``): the frozen source and params with only what the spec says laid over
    them - its path and the ``?KEY=VALUE`` options it gives - so a moved file keeps the symbol,
    time zone, separator or columns it was read with, whatever a sniffer would make of the new
    path on its own. A spec naming another source (``SOURCE:PATH``, or one without a path that
    a sniffer recognises: ``synthetic?seed=9``) is that source with its own params whole, as
    ``--data`` gives for a new run. Either way the bars are the run's only if their hash says
    so: the caller checks it."""
    parsed = parse_spec(spec, where)
    if (not parsed.source and parsed.path and frozen.source != "auto" and "path" in frozen.params
            and _names_a_file(parsed.path, host, where)):
        # read as the run read it: its options typed by the run's source, not by whatever a
        # sniffer takes the moved file for (a Dukascopy-shaped export a run read as csv)
        spec = f"{frozen.source}:{spec.strip()}"
        parsed = parse_spec(spec, where)
    given = data_config_from_spec(spec, host, base=frozen, where=where)  # validates the spec's options
    # a source named, or one a sniffer finds: for a spec without a path (synthetic?seed=9), or a
    # file where the run read none (a run on synthetic bars given a file)
    named = parsed.source or (given.source if "path" not in given.params or "path" not in frozen.params else "")
    if named and frozen.source not in ("auto", named):
        return given
    said = {k: v for k, v in given.params.items() if k == "path" or k in parsed.options}
    return attrs.evolve(frozen, params={**frozen.params, **said})


def _names_a_file(path: str, host: Any, where: str) -> bool:
    """Whether a spec's path names files (what a sniffer returns a ``path`` for, or what no
    sniffer recognises), not a source without files (``synthetic``)."""
    try:
        _, sniffed = sniff_source(path, host, where)
    except (DataError, ConfigError):
        return True
    return "path" in sniffed


def _relocate(path: str, where: str) -> str:
    """A problem a sniffer located at ``--data`` or ``--data.KEY``, located at ``where``."""
    if path == "--data":
        return where
    if path.startswith("--data."):
        return option_where(where, path[len("--data.") :])
    return path


def _spec_option(path: str, where: str) -> str:
    if path.startswith(where + "."):
        return option_where(where, path[len(where) + 1 :])
    return path


def resolve_source(data: DataConfig, host: Any, where: str = "data",
                   origins: DataOrigins | None = None) -> tuple[Component, dict[str, Any]]:
    """The data-source component of an experiment's data section and its params table
    (``origins``: as for :func:`load_source_bars`)."""
    if data.source != "auto":
        return host.get(ComponentKind.DATA_SOURCE, data.source, where=_at(where, "source", origins)), dict(data.params)
    path = data.params.get("path")
    if not isinstance(path, str) or not path:
        raise ConfigError([(_at(where, "params.path", origins), "required when source = 'auto' (the file to recognise)")])
    try:
        comp, sniffed = sniff_source(path, host, where=_at(where, "params.path", origins))
    except DataError as exc:
        if not _exists(path):  # a missing file parameter, as a source's own build reports it
            exc.param = "path"  # type: ignore[attr-defined]
        raise
    return comp, {**sniffed, **data.params}


def structure_params(comp: Component, params: dict[str, Any], where: str, origins: DataOrigins | None = None) -> Any:
    """``params`` validated against the source's params class (errors at ``where.KEY``, or
    where ``origins`` says the key ``params.KEY`` was written)."""
    def at(path: str) -> str:
        head = where.rpartition(".")[0]  # `where` is the data section's params table
        if not path.startswith(where + "."):
            return path
        if origins:
            return _at(head, path[len(head) + 1 :], origins)
        # `FILE:LINE: defaults.data`: the line of the key itself, not of its table
        return deeper(head, path[len(head) + 1 :]) if ".toml" in head else path

    if comp.params is None:
        if params:
            raise ConfigError([(at(f"{where}.{k}"), f"data source {comp.name!r} takes no parameters") for k in params])
        return None
    try:
        return converter.structure(params, comp.params)
    except Exception as exc:  # noqa: BLE001 - turned into located problems
        raise ConfigError([(at(p), m) for p, m in locate_problems(exc, where, comp.params)]) from None


def load_source_bars(data: DataConfig, host: Any, where: str = "data", spec_where: str = "",
                     origins: DataOrigins | None = None) -> Bars:
    """Bars from the data section's source, validated, at the data's own timeframe.

    ``spec_where`` names the data spec the source and params came from (``SOURCE`` of ``data
    inspect``, ``--data``), if any: a file parameter the source cannot use is then named as given
    there (``SOURCE``, ``SOURCE ?key=``) rather than as the data section's (``data.params.path``).
    ``origins`` (``ResolvedExperiment.data_origins``) names where each key of the section was
    written (``--set data.params.path``, ``defaults.data.timeframe``), where it is not ``where``.
    """
    comp, params = resolve_source(data, host, where, origins)
    obj = structure_params(comp, params, f"{where}.params", origins)
    try:
        bars = comp.build(obj)
    except DataError as exc:
        if getattr(exc, "param", None):  # a file parameter the source could not find: say where it was set
            named = _param_where(exc.param, where, spec_where, origins)  # type: ignore[attr-defined]
            error = DataError(f"{exc.bare} ({named})")  # type: ignore[attr-defined]
            error.param, error.bare = exc.param, exc.bare  # type: ignore[attr-defined] - still a file parameter's
            raise error from None
        raise
    except ExitcoreError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise PluginError(
            f"data source {comp.name!r} from {comp.origin} failed: {describe_exception(exc)}"
        ) from exc
    if not isinstance(bars, Bars):
        raise PluginError(f"data source {comp.name!r} from {comp.origin} returned {type(bars).__name__}, not Bars")
    if len(bars) == 0:
        raise DataError(f"{bars.source or comp.name}: no bars")
    problems = check_bars(bars)
    if problems:
        raise DataError(f"{bars.source or comp.name}: data source {comp.name!r} from {comp.origin} returned bad bars: "
                        + "; ".join(problems))
    return _with_long_hole_warnings(bars)


def _with_long_hole_warnings(bars: Bars) -> Bars:
    """``bars`` with a warning for each hole longer than a week (whatever the source: a plugin's
    bars are joined from several data sets as easily as files are)."""
    from exitcore.data.validate import long_hole_findings  # numpy/pandas: not at import time

    holes = long_hole_findings(bars)
    return attrs.evolve(bars, findings=(*bars.findings, *holes)) if holes else bars


def _param_where(key: str, where: str, spec_where: str, origins: DataOrigins | None = None) -> str:
    """Where the source parameter ``key`` was set: the spec's path is the spec itself (``SOURCE``,
    ``--data``), its other keys its options; without a spec, the data section's params table."""
    if not spec_where:
        return _at(where, f"params.{key}", origins)
    return spec_where if key == "path" else option_where(spec_where, key)


def _at(where: str, rel: str, origins: DataOrigins | None) -> str:
    """Where the data section's key ``rel`` (``params.path``) was written: as ``origins`` says,
    else in the section at ``where``."""
    return (origins or {}).get(rel) or deeper(where, rel)


def load_bars(data: DataConfig, host: Any, where: str = "data", spec_where: str = "",
              origins: DataOrigins | None = None) -> Bars:
    """The experiment's bars: loaded, validated, resampled to ``data.timeframe``, pip size set
    (``spec_where`` and ``origins``: as for :func:`load_source_bars`)."""
    from exitcore.data.resample import resample

    bars = resample(load_source_bars(data, host, where, spec_where, origins), data.timeframe,
                    where=_at(where, "timeframe", origins))
    if data.pip_size > 0:
        bars = attrs.evolve(bars, pip_size=data.pip_size)
    return bars
