"""What the system's process table says of a pid or a process group, read from Linux's /proc.

A process that has exited but whose parent has not collected it yet (a zombie) still holds its
pid and still counts for `kill(pid, 0)` and `killpg(pgid, 0)`; it runs nothing and holds no
port or file. Processes that `phase3ops local` started are collected by whoever adopted them
(init, or a container's first process, which may do so only every few seconds), so "is it still
there" is asked of the table, where a zombie says so, not of `kill`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_EXITED = (b"Z", b"X")  # zombie, dead


@dataclass(frozen=True)
class ProcessStat:
    exited: bool
    pgid: int
    start_time: str  # clock ticks after boot (field 22 of /proc/<pid>/stat)


def has_proc() -> bool:
    # Not merely a /proc folder: illumos, and FreeBSD with procfs mounted, have one without Linux's stat files.
    return (PROC / "self" / "stat").is_file()


def process_stat(pid: int | str) -> ProcessStat | None:
    """The table's entry for `pid`; None when no process has it. Raises OSError when the entry
    is not in the format this reads."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        # Field 2, the command name in parentheses, may hold spaces and ")" of its own (a process
        # names itself): the fields that follow it are the ones after the last ")".
        fields = stat[stat.rindex(b")") + 1 :].split()
        state, pgid, start_time = fields[0], int(fields[2]), fields[19].decode("ascii")
    except (ValueError, IndexError, UnicodeDecodeError):
        raise OSError(f"/proc/{pid}/stat is not in the format this reads") from None
    # A process whose first thread ended while others run shows as a zombie too: it has not exited.
    return ProcessStat(state in _EXITED and not _other_threads_run(pid), pgid, start_time)


def _other_threads_run(pid: int | str) -> bool:
    try:
        return len(os.listdir(PROC / str(pid) / "task")) > 1
    except OSError:
        return False


def group_is_running(pgid: int) -> bool:
    """Some process of group `pgid` has not exited. Without /proc, any member counts, zombies too."""
    if not has_proc():
        return _kernel_knows_group(pgid)
    # A member that forked and then exited between the listing of /proc and the reading of its entry
    # leaves a child the listing missed: while the kernel still knows the group, look once more.
    return _a_member_runs(pgid) or (_kernel_knows_group(pgid) and _a_member_runs(pgid))


def _kernel_knows_group(pgid: int) -> bool:
    """`killpg(pgid, 0)`: some process, running or exited and not yet collected, is in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists; it is not ours to signal
        return True
    return True


def _a_member_runs(pgid: int) -> bool:
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        try:
            stat = process_stat(entry)
        except OSError:
            return True  # unreadable: assume it is one of ours and still there
        if stat is not None and stat.pgid == pgid and not stat.exited:
            return True
    return False
