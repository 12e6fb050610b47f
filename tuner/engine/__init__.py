"""Training: the one package that imports torch at module level (model, losses, the loop, the sanity gate,
transfer, callbacks/ and population/)."""
