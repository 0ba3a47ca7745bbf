"""Peering and transit cost reports from flow records.

Layers, from the edges in: :mod:`readers` (file lines -> flow dicts),
:mod:`pipeline` (attribution, normalization into :class:`records.Row`),
:mod:`engine` + :mod:`sql` (DuckDB aggregation behind an interface),
:mod:`report` (tables), :mod:`costs` and :mod:`percentile` (pure rules),
:mod:`render` / :mod:`html` (outputs), :mod:`cli` (``attribution report``).
See docs/reports.md.
"""
