"""Console tables, run directories, plots (matplotlib imported lazily), atomic writes."""
