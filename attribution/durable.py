"""Files that are whole or absent after a crash: written aside, then renamed in.

A rename alone is not enough: without an fsync of the file first, a crash can
leave the new name on an empty file; without an fsync of the directory after,
the rename itself can be lost. Shared by the enrich checkpoint and the
Parquet sink, which both promise that much.
"""

from __future__ import annotations

import os


def replace_durably(partial: str, path: str) -> None:
    """fsync ``partial``, rename it over ``path``, fsync the directory."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    dirfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
