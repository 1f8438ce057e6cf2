"""Benchmarks (print JSON; not tests): engine speed against a plain numpy loop."""
