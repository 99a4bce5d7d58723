"""Root without the right to read every file: for tests of unreadable files, run as root.

Linux capabilities are per thread. ``without_file_read_override`` clears CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH from the calling thread's effective set (they stay permitted, so they are
put back on the way out), so ``open`` on a mode-000 file fails with EACCES as it would for any
user. ``access(2)`` still answers for the permitted set, so only the read itself fails.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

_VERSION_3 = 0x20080522
_DAC_BITS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _get() -> tuple[_Header, ctypes.Array[_Data]]:
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc().capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    return header, data


def _set(header: _Header, data: ctypes.Array[_Data]) -> None:
    if _libc().capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


@contextmanager
def without_file_read_override() -> Iterator[None]:
    """This thread, as root, can no longer read files it has no permission bits for."""
    if os.geteuid() != 0:
        yield
        return
    header, data = _get()
    saved = data[0].effective
    data[0].effective = saved & ~_DAC_BITS
    _set(header, data)
    try:
        yield
    finally:
        header, data = _get()
        data[0].effective = saved
        _set(header, data)
