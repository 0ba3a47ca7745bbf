"""Read a router's neighbor table over SNMP: IP-MIB ipNetToPhysicalPhysAddress.

A thin adapter around pysnmp (7.x, its asyncio high-level API, run to
completion in the caller's thread): it walks one column of
``ipNetToPhysicalTable`` (IPv4 ARP and IPv6 ND entries alike, RFC 4293) and
hands the raw (OID, value) rows to ``attribution.ix_inputs.parse_snmp_rows``,
which decides what is usable. Secrets come from files (read here, at each
walk, so a rotated key needs no reload); none is ever logged. Every failure
becomes ``SnmpError`` with a message naming the target and what went wrong.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from attribution.ix_config import SnmpSource
from attribution.ix_inputs import IP_NET_TO_PHYSICAL_PHYS_ADDRESS, MAX_ENTRIES

MAX_SECRET_BYTES = 4096


class SnmpError(RuntimeError):
    pass


def read_secret(path: str, what: str) -> str:
    """The first line of ``path`` that is neither blank nor a ``#`` comment."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SnmpError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SnmpError(f"the {what} file {path} is over {MAX_SECRET_BYTES} bytes")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise SnmpError(f"the {what} file {path} is not UTF-8") from None
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    raise SnmpError(f"the {what} file {path} holds no {what}")


def _auth(source: SnmpSource):
    from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData
    from pysnmp.hlapi.v3arch.asyncio import auth as a

    if source.version == "2c":
        return CommunityData(read_secret(source.community_file, "SNMP community"), mpModel=1)
    auth_protocols = {
        "md5": a.usmHMACMD5AuthProtocol,
        "sha": a.usmHMACSHAAuthProtocol,
        "sha224": a.usmHMAC128SHA224AuthProtocol,
        "sha256": a.usmHMAC192SHA256AuthProtocol,
        "sha384": a.usmHMAC256SHA384AuthProtocol,
        "sha512": a.usmHMAC384SHA512AuthProtocol,
    }
    priv_protocols = {
        "des": a.usmDESPrivProtocol,
        "aes": a.usmAesCfb128Protocol,
        "aes192": a.usmAesCfb192Protocol,
        "aes256": a.usmAesCfb256Protocol,
    }
    auth_key = read_secret(source.auth_key_file, "SNMP auth key")
    if len(auth_key) < 8:
        raise SnmpError(f"the SNMP auth key in {source.auth_key_file} is under 8 characters")
    kwargs = {"authKey": auth_key, "authProtocol": auth_protocols[source.auth_protocol]}
    if source.priv_protocol:
        priv_key = read_secret(source.priv_key_file, "SNMP privacy key")
        if len(priv_key) < 8:
            raise SnmpError(f"the SNMP privacy key in {source.priv_key_file} is under 8 characters")
        kwargs.update(privKey=priv_key, privProtocol=priv_protocols[source.priv_protocol])
    return UsmUserData(source.user, **kwargs)


async def _walk(source: SnmpSource, max_rows: int) -> list[tuple[tuple[int, ...], bytes]]:
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        Udp6TransportTarget,
        UdpTransportTarget,
        bulk_walk_cmd,
    )

    target_cls = Udp6TransportTarget if ":" in source.host else UdpTransportTarget
    target = await target_cls.create(
        (source.host, source.port), timeout=source.timeout, retries=source.retries
    )
    engine = SnmpEngine()
    rows: list[tuple[tuple[int, ...], bytes]] = []
    column = ".".join(map(str, IP_NET_TO_PHYSICAL_PHYS_ADDRESS))
    try:
        async for indication, status, index, var_binds in bulk_walk_cmd(
            engine,
            _auth(source),
            target,
            ContextData(),
            0,
            50,
            ObjectType(ObjectIdentity(column)),
            lexicographicMode=False,
            lookupMib=False,
            maxRows=max_rows,
        ):
            if indication:
                raise SnmpError(f"SNMP {source.host}:{source.port}: {indication}")
            if status:
                raise SnmpError(
                    f"SNMP {source.host}:{source.port}: {status.prettyPrint()} at {int(index)}"
                )
            for name, value in var_binds:
                raw = value.asOctets() if hasattr(value, "asOctets") else value
                rows.append((tuple(name.asTuple()), raw))
    finally:
        engine.close_dispatcher()
    return rows


def walk_neighbors(source: SnmpSource) -> list[tuple[tuple[int, ...], bytes]]:
    """The (OID, value) rows of ipNetToPhysicalPhysAddress; raises SnmpError."""
    try:
        return asyncio.run(_walk(source, 4 * MAX_ENTRIES))
    except SnmpError:
        raise
    except Exception as exc:  # pysnmp raises many kinds; the caller needs one
        raise SnmpError(
            f"SNMP {source.host}:{source.port}: {type(exc).__name__}: {exc}"[:500]
        ) from None


def secret_files(source: SnmpSource) -> list[Path]:
    return [
        Path(p) for p in (source.community_file, source.auth_key_file, source.priv_key_file) if p
    ]
