"""Writing a synthetic data set to a file (``exitcore data synth``), atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from exitcore.atomic import atomic_path, check_new_file
from exitcore.data.bars import Bars
from exitcore.errors import ConfigError, DataError, ExitcoreError


def write_synthetic(out: str | os.PathLike[str], options: dict[str, Any], force: bool = False) -> tuple[Path, Bars]:
    """Generate bars from ``options`` (:class:`SynthParams` fields) and write them to ``out``.

    ``.csv``/``.csv.gz`` get a ``time,open,high,low,close,volume`` file with ISO 8601 UTC
    times; ``.parquet`` a Parquet file. The file appears only when complete (temporary file +
    rename); on any error nothing is written. The folder must exist (it is not created).
    """
    from exitcore.config import converter, locate_problems
    from exitcore.data.source_params import SynthParams
    from exitcore.data.synth import generate

    path = Path(out)
    name = path.name.lower()
    if not name.endswith((".csv", ".csv.gz", ".parquet")):
        raise ConfigError([("--out", f"expected a .csv, .csv.gz or .parquet file name, got {str(out)!r}")])
    try:
        params = converter.structure(options, SynthParams)
    except Exception as exc:  # noqa: BLE001 - reported as the command-line options
        raise ConfigError([("--" + p.split(".")[-1].replace("_", "-"), m) for p, m in locate_problems(exc, "", SynthParams)]) from None
    try:
        check_new_file(path, "--out", force)
    except ExitcoreError as exc:
        raise DataError(str(exc)) from None
    bars = generate(params)
    with atomic_path(path) as tmp:
        write_bars(bars, tmp, name)
    return path, bars


def write_bars(bars: Bars, path: Path, name: str | None = None) -> None:
    """Write ``bars`` as CSV (optionally gzip) or Parquet, chosen by ``name`` (default: ``path``)."""
    import math

    name = (name or path.name).lower()
    frame = bars.frame.copy()
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.index.name = "time"
    if "volume" in frame and (frame["volume"] % 1 == 0).all():
        frame["volume"] = frame["volume"].astype("int64")  # tick counts, written without decimals
    if name.endswith(".parquet"):
        try:
            bars.frame.rename_axis("time").to_parquet(path)
        except ImportError:
            raise DataError("writing Parquet needs pyarrow: pip install 'exitcore[parquet]'") from None
        return
    decimals = int(round(-math.log10(bars.pip_size))) + 1 if bars.pip_size > 0 else 6
    frame.to_csv(
        path,
        float_format=f"%.{decimals}f",
        compression="gzip" if name.endswith(".gz") else None,
        lineterminator="\n",
    )
