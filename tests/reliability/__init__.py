"""The reliability catalogue of issue 9 (a package: its module names repeat others in tests/)."""
