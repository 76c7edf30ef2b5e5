"""The exact half of convexkit: problems, derivatives, convexity, sets and constraints.

Pure SymPy, no array library, except the batched projections of the convex sets.
"""
