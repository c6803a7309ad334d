"""Market data: canonical bars, loaders (data-source plugins), validation, resampling, splits.

* :mod:`.bars` - the canonical :class:`~exitcore.data.bars.Bars` and ``Trades`` containers;
* :mod:`.pipeline` - an experiment's ``[data]`` section or a ``--data`` string to bars;
* :mod:`.spec` - the ``[SOURCE:]PATH[?KEY=VALUE&...]`` grammar; :mod:`.clocks` - file clocks;
* :mod:`.formats` - the file formats of the built-in sources; :mod:`.files` - paths, zips,
  line numbers; :mod:`.timeparse` - fast fixed-width timestamps;
* :mod:`.validate` - every check, with file and line; gap reports;
* :mod:`.resample` - coarser timeframes without fabricated bars;
* :mod:`.synth` - the seeded synthetic generator (:mod:`.synth_io` writes it to a file);
* :mod:`.splits` - train / validation / test with a purge gap, trades per split;
* :mod:`.inspect` - what ``exitcore data inspect`` reports.

The user guide is ``docs/data.md``.
"""
