"""``gradcheck study``: GAN training studies over schemes x seeds x scales (THEORY C10 a-f).

* :mod:`.grid` turns train flags given as lists or ranges (or a ``--grid`` file) and
  ``--seeds`` into cells, one validated :class:`~gradcheck.spec.TrainSpec` each (no torch);
  a ``--scale`` other than 1 multiplies only the schemes that take a scale.
* :mod:`.cells` is the worker function every backend of :mod:`gradcheck.sweep.backends`
  ships: train into ``OUT/runs/<train_key>/`` (resumable), ``track`` every checkpoint,
  return plain rows; the client stores ``OUT/cells/<key>.json`` atomically.
* :mod:`.summary` computes C10 (e) quality, (f) collapse / divergence per cell and the
  per-scheme table with the spread over seeds; (a)-(d) come from the track report.
* :mod:`.plots` draws ``study.png``; :mod:`.cli` is the command.

``import gradcheck.study`` imports neither torch, dask nor matplotlib; the worker module
(:mod:`.cells`) imports torch through the claims it runs.
"""
