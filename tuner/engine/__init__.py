"""Training: the one package that imports torch at module level (model, losses, the prepared study, the loop,
the best-epoch tracker, optimisers, the sanity gate, transfer, callbacks/ and population/)."""
