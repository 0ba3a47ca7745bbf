"""attribution: resolve flow records to src/dst origin and peer AS from per-router BGP RIBs."""

import os

__version__ = "0.1.0"

# We fork helper processes (ExaBGP, its API relay) while gRPC threads run;
# gRPC's fork handlers only print warnings about that. They must be off
# before grpc is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
