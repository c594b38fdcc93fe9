"""``gradcheck compare`` and ``gradcheck sweep``: many RunSpecs through the one per-seed pipeline.

* :mod:`.grid` turns flags given as lists or ranges (or a JSON / TOML grid file) into cells,
  one validated :class:`~gradcheck.spec.RunSpec` with one seed each (no torch needed).
* :mod:`.cells` keys a cell by the hash of its resolved spec, computes it (the worker
  function every backend ships: a dict in, plain rows out) and stores its result atomically
  in ``cells/<hash>.json`` so that a killed sweep resumes and a changed grid reuses cells.
* :mod:`.backends` runs cells serially, in local worker processes or on a Dask cluster;
  the results are bit-identical (every cell runs with the same fixed thread count).
* :mod:`.rescheme` applies each scheme to the raw weights of a user's ``--model``.
* :mod:`.tables`, :mod:`.plots` and :mod:`.cli` make the tidy tables, figures and commands.

Nothing here imports dask or pyarrow at module level; ``import gradcheck`` imports none of it.
"""
