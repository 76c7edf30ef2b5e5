"""The exact half of convexkit: problems, derivatives, convexity, sets and constraints (SymPy only)."""
