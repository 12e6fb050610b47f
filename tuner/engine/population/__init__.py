"""Many λ sets trained at once as one stacked model (run, gate, stack, forward, optim)."""
