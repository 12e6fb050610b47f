"""auxtune's engine: study specs, workloads, multi-task training, the sanity gate and search."""

__version__ = "0.1.0"
