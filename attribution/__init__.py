"""attribution: resolve flow records to src/dst origin and peer AS from per-router BGP RIBs."""

import os

__version__ = "0.1.0"

# We fork helper processes (ExaBGP, its API relay) while gRPC threads run;
# gRPC's fork handlers only print warnings about that. They must be off
# before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
# numpy's OpenBLAS starts a thread a core at import, each spinning ~0.1 s before it
# sleeps: 0.06-0.1 CPU-s of every command's start (BENCHMARKS.md, "Enrich, tenth
# pass"). Nothing here multiplies matrices; read when numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
