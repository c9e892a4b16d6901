"""A foreign node's output, one timestamped line at a time (``python -m raftlog.local.stamp``).

``raftlog netcluster up --node-cmd`` runs programs that print their own lines without a
time (the lab's ``node.py``); a grader needs to know when each line was printed. This
process reads the node's standard output on its standard input and the node's standard
error on ``--stderr-fd``, and appends every line to ``LOGFILE`` prefixed with the
wall-clock time it was read, to the microsecond, and ``|`` (stdout) or ``!`` (stderr)::

    2026-11-29 10:00:03.123456 | Node started! State: Follower. Term: 0
    2026-11-29 10:00:09.500001 ! Traceback (most recent call last):

It runs at nice -10 when allowed (root), so that a busy machine delays the node rather
than the reading of its lines, and says on ``--ready-fd`` when it reads: a node started
before would have its first lines stamped when the stamper got going (on a busy machine,
half a second late: a timeout then looked too short). Run it as a file (``python -I
.../stamp.py``): it needs only the standard library, and starts four times faster than
through the ``raftlog`` package. It is a process of its own, beside the node (not its
parent): the node's pid is the one signals go to (stop, kill, pause), and a node stopped
by SIGSTOP simply prints nothing.
It exits once both streams are closed (the node and anything it started have exited).
A line longer than :data:`MAX_LINE` bytes is cut into several.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import selectors
import signal
import sys
import time
from datetime import datetime
from typing import BinaryIO, Final

MAX_LINE: Final = 64 * 1024
PRIORITY: Final = -10
"""The nice value the stamper asks for (it reads and writes a few lines: it costs no one)."""
STDOUT_MARK: Final = "|"
STDERR_MARK: Final = "!"
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) ([|!]) ?(.*)$")


def stamp(now: float) -> str:
    """``now`` (unix seconds) as the local time a line carries."""
    return datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_line(line: str) -> tuple[float, bool, str] | None:
    """``(unix time, from stderr, text)`` of a stamped line; None if it is not one."""
    m = _LINE.match(line)
    if m is None:
        return None
    try:
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    except ValueError:
        return None
    return at, m.group(2) == STDERR_MARK, m.group(3)


def copy_streams(streams: dict[int, str], out: BinaryIO) -> None:
    """Copy each fd of ``streams`` (fd -> mark) to ``out`` line by line, stamped, until
    every one is closed."""
    pending = {fd: b"" for fd in streams}
    sel = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)

    def emit(fd: int, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        out.write(f"{stamp(time.time())} {streams[fd]} {text}\n".encode())

    while pending:
        for key, _ in sel.select():
            fd = int(key.fd)
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:  # closed: what is left is a last line without its newline
                if pending[fd]:
                    emit(fd, pending[fd])
                del pending[fd]
                sel.unregister(fd)
                os.close(fd)
                continue
            *lines, rest = (pending[fd] + chunk).split(b"\n")
            for line in lines:
                for at in range(0, max(len(line), 1), MAX_LINE):
                    emit(fd, line[at : at + MAX_LINE])
            while len(rest) > MAX_LINE:
                emit(fd, rest[:MAX_LINE])
                rest = rest[MAX_LINE:]
            pending[fd] = rest
        out.flush()
    sel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raftlog.local.stamp", description=__doc__)
    parser.add_argument("logfile", help="append the stamped lines here")
    parser.add_argument("--stderr-fd", type=int, help="the node's standard error")
    parser.add_argument(
        "--ready-fd", type=int, help="write a byte here once reading (then start the node)"
    )
    args = parser.parse_args(argv)
    # Ctrl-C in the terminal that started the cluster is not for this process: the node's
    # last lines would be lost.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A line's time is when this process read it: on a busy machine it should be the node
    # that waits for the CPU, not the clock reading its lines (root may raise priority).
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    streams = {sys.stdin.fileno(): STDOUT_MARK}
    if args.stderr_fd is not None:
        streams[args.stderr_fd] = STDERR_MARK
    with open(args.logfile, "ab") as out:
        if args.ready_fd is not None:
            os.write(args.ready_fd, b"r")
            os.close(args.ready_fd)
        copy_streams(streams, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
