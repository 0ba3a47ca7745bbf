"""attribution: resolve flow records to src/dst origin and peer AS from per-router BGP RIBs."""

__version__ = "0.1.0"
