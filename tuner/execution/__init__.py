"""Running trials: workers and their leases, local worker processes, supervision, Slurm launch."""
