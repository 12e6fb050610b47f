"""Hooks a trial runs with: the affinity probe, learned weighting and what else watches or steers a trial."""
