"""Formulas only: bounds, mean field, random matrices, reparametrisations, BSN, the C11 graph
bound."""
