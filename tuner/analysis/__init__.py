"""Torch-free reads of finished work: confirmation, statistics, error analysis, affinity, Pareto documents."""
