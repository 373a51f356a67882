"""Benchmarks of hpo against the tools people would use instead: plain Optuna and Ray Tune.

`python -m bench.run` runs them all against one PostgreSQL server and prints one table;
docs/benchmarks.md records its output with the machine and the versions.
"""
