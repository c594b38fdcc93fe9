"""Make the repository's ``figures`` package importable in the figure tests.

This folder is itself named ``figures``; when pytest puts ``tests/`` on ``sys.path`` (rootdir
conftest, no ``__init__.py``), ``import figures`` would find it first as a namespace package
and shadow the real one. Putting the repository root in front fixes the lookup.
"""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)
if "figures" in sys.modules and getattr(sys.modules["figures"], "__file__", None) is None:
    del sys.modules["figures"]              # a namespace package picked up before this ran
