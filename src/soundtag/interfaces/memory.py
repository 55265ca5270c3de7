"""Process-wide memory settings of glibc's allocator, for the entry points that run long: batch tagging and the web
server. Library calls never change them; `soundtag tag` and `soundtag app` do."""

from __future__ import annotations

import ctypes


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc: these allocator settings do not apply


def keep_freed_memory() -> None:
    """For batch jobs: have glibc serve waveform-sized arrays from its heap and keep freed memory for the next
    file, instead of mapping, zero-filling and unmapping fresh pages for each: kernel time that bought nothing."""
    if libc := _libc():
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: glibc's largest (32 MiB)
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: give memory back only above 1 GiB free


def limit_arenas(arenas: int = 2) -> None:
    """For servers: cap glibc's per-thread memory arenas, each of which would otherwise keep its own high-water
    mark of freed native memory (torch, matplotlib) as a thread pool rotates requests over its threads."""
    if libc := _libc():
        libc.mallopt(-8, arenas)  # M_ARENA_MAX


def release_freed_memory() -> None:
    """For servers: hand freed native memory back to the system (glibc malloc_trim), so resident memory follows
    the work in flight instead of its past peaks."""
    if libc := _libc():
        libc.malloc_trim(0)
