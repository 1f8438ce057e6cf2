"""Evaluations of edgesnn.fsm against Cotteret et al. (2024): example walk, dense and sparse capacity."""
