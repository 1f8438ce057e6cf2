"""Evaluations that produce the figures the issues ask for (tables, JSON, plots)."""
