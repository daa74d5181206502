"""Scheduler wiring, lease lock, rate budgets, signals."""
