"""The studies behind every figure. Each module has ``run(quick=False, seed=0)`` returning its
numbers (proven and measured side by side) and ``plot(result, outdir)`` writing its figures.
``python -m analyses.all`` runs them all."""
