"""``python -m ribd.exabgp_run ARGS``: ExaBGP 5.0.15 as ``exabgp ARGS``, lighter in raw mode.

With ``[bgp] api_mode = "raw"`` the service decodes every received UPDATE
itself (``ribd.rawupdate``, RFC 7606 included), yet ExaBGP 5.0.15 still
decodes each one into Python objects (``Protocol.read_message`` does so
whenever an update API is on: no setting turns it off) and writes it with
``hexstring``, which formats the bytes one at a time. Profiled on the real
table (BENCHMARKS.md), decoding is about half of ExaBGP's CPU and the hex
encoding about a tenth. So the supervised ExaBGP runs through this module:

* always: ``hexstring`` is replaced by ``bytes.hex`` (the same text,
  ``0x`` and upper-case digits);
* with ``RIBD_EXABGP_RAW=1`` (set by ``ribd.exabgp`` for raw mode only):
  received UPDATEs other than End-of-RIB are not decoded;
  ``Update.unpack_message`` hands ExaBGP an UPDATE without routes or
  attributes, which it then only counts (the packets API line with the
  bytes was written before). ExaBGP then no longer resets a session over
  an UPDATE it could not parse: our decoder refuses that UPDATE (counted)
  and keeps the session's other routes (RFC 7606's aim).

Both changes apply only to the ExaBGP release they were written against
(``PATCHED_RELEASE``); any other runs unchanged. Runs in ExaBGP's process only.
"""

from __future__ import annotations

import os
import sys

PATCHED_RELEASE = "5.0.15"
RAW_ENV = "RIBD_EXABGP_RAW"
_EOR_LENGTHS = (4, 11)  # IPv4 End-of-RIB, MP_UNREACH_NLRI End-of-RIB (exabgp's own test)


def fast_hexstring(value: bytes) -> str:
    return "0x" + bytes(value).hex().upper()


def patch(raw: bool) -> bool:
    """Apply the changes to the imported ExaBGP; False (nothing changed) on another release."""
    from exabgp.version import release

    if release != PATCHED_RELEASE:
        return False
    import exabgp.reactor.api.response.json as api_json
    import exabgp.util
    from exabgp.bgp.message.direction import Direction
    from exabgp.bgp.message.update import Update
    from exabgp.bgp.message.update.attribute import Attributes

    exabgp.util.hexstring = fast_hexstring
    api_json.hexstring = fast_hexstring
    if raw:
        original = Update.unpack_message.__func__  # type: ignore[attr-defined]

        def unpack_message(cls, data, direction, negotiated):  # type: ignore[no-untyped-def]
            if direction == Direction.IN and len(data) not in _EOR_LENGTHS:
                return cls([], Attributes())
            return original(cls, data, direction, negotiated)

        Update.unpack_message = classmethod(unpack_message)  # type: ignore[method-assign]
    return True


def main() -> None:
    patch(os.environ.get(RAW_ENV) == "1")
    from exabgp.application.main import main as exabgp_main

    sys.argv[0] = "exabgp"
    exabgp_main()


if __name__ == "__main__":
    main()
