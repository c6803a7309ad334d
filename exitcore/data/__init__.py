"""Market data: canonical bars, loaders (data-source plugins), validation, resampling, splits."""
