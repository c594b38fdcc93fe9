"""Paper figures F1-F8: one script per figure, each ``main(argv) -> int``.

Every ``fig_fN_*.py`` has ``compute(quick, tiny, out) -> DataFrame`` (runs the gradcheck engine
and writes ``out/fN.csv``) and ``draw(df, out)`` (reads only that table and writes ``fN.png`` and
``fN.pdf``). ``figures.make_all.main`` runs them all (``gradcheck figures``). matplotlib is
imported inside the drawing functions only (Agg backend), never at import time.
"""
FIGURES = {
    "F1": "figures.fig_f1_gradients",
    "F2": "figures.fig_f2_c1_bound",
    "F3": "figures.fig_f3_strict_sn",
    "F4": "figures.fig_f4_random_matrices",
    "F5": "figures.fig_f5_raw_sigma",
    "F6": "figures.fig_f6_training_gradients",
    "F7": "figures.fig_f7_scale_sweep",
    "F8": "figures.fig_f8_jacobian_spectra",
}

__all__ = ["FIGURES"]
