"""Evaluation: the test pass and its reports, the plots, the classical baselines, and the commands."""
