"""ribd: per-router BGP RIBs fed by ExaBGP's JSON API.

The parser (``ribd.parser``) and the RIB (``ribd.rib``) do no I/O; the ExaBGP
supervisor (``ribd.exabgp``), the API-process relay (``ribd.relay``) and the
feed listener (``ribd.feed``) are the thin adapters around them.
"""
