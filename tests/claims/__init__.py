"""Unit tests of the claim modules on hand-built measurements (a package, so that its conftest and
its test modules do not collide with ``tests/conftest.py`` and same-named files elsewhere)."""
