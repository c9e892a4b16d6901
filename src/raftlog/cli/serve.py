"""Running one node as a process (``raftlog node``): a :class:`raftlog.Node` with the
replicated log and the client API, stopped by SIGTERM or Ctrl-C.

Exit codes: 0 stopped cleanly; 1 crashed on an unexpected error; 3 the data directory was
refused (another cluster's or node's, or a node that was removed), storage failed, or a
snapshot could not be used; 4 a port could not be bound; 5 the node was removed from the
cluster while it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import NamedTuple

from raftlog.core.errors import StorageError, UsageError
from raftlog.core.types import Role
from raftlog.node import Node, NodeConfig
from raftlog.server.eventlog import EventLog, EventPrinter, print_events, stop_printing
from raftlog.server.eventloop import loop_factory
from raftlog.server.node import NodeRemoved, NodeStartError, SnapshotFailed, StateMachineFailed

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_STORAGE, EXIT_BIND, EXIT_REMOVED = 0, 1, 2, 3, 4, 5
PROMOTE_EVERY_S = 0.5


class Printing(NamedTuple):
    """How the process prints the node's records (the event log) on standard output."""

    level: int = logging.INFO
    fmt: str = "text"
    color: str = "auto"


def _print_node_events(node: Node, printing: Printing) -> EventPrinter:
    """This program's logging: raftlog's records printed as the event log's lines, the
    library's own (transport, storage...) told in the node's current state."""

    def state() -> tuple[Role, int]:
        try:
            raft = node.raft
        except UsageError:  # not started yet
            return Role.FOLLOWER, 0
        return raft.role, raft.term

    return print_events(
        sys.stdout,
        level=printing.level,
        fmt=printing.fmt,
        color=printing.color,
        node=int(node.id),
        state=state,
    )


async def serve(
    config: NodeConfig,
    *,
    stop_with_parent: int | None = None,
    promote_via: list[str] | None = None,
    printing: Printing | None = None,
) -> int:
    node = Node(config)
    printer = _print_node_events(node, printing) if printing is not None else None
    try:
        return await _serve(node, config, stop_with_parent, promote_via)
    finally:
        if printer is not None:
            stop_printing(printer)


async def _serve(
    node: Node, config: NodeConfig, stop_with_parent: int | None, promote_via: list[str] | None
) -> int:
    try:
        await node.start()
    except StorageError as exc:
        if not isinstance(exc, (NodeRemoved, SnapshotFailed)):  # those the node said itself
            _say(node, config, f"Refusing to start: {exc}")
        return EXIT_STORAGE
    except NodeStartError as exc:
        _say(node, config, f"Cannot start: {exc}")
        return EXIT_BIND
    raft = node.raft
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    """The graceful stop under way (a leader hands over first), once a signal came or the
    parent went away: a further signal means "stop at once"."""
    helpers: list[asyncio.Task[None]] = []
    """Tasks that run beside the node (watching the parent, asking to be promoted): not
    stops, so a signal while they run is still the first one."""

    def stop_gracefully(why: str) -> None:
        if stopping:
            raft.stop()  # a second signal: stop at once
            return
        raft.events.note(logging.INFO, raft.role, raft.term, f"{why}, stopping")
        stopping.append(loop.create_task(raft.shutdown(transfer=True)))

    def on_signal(signum: int) -> None:
        stop_gracefully(f"Got {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    if stop_with_parent is not None:
        helpers.append(loop.create_task(_stop_with_parent(stop_with_parent, stop_gracefully)))
    if promote_via:
        helpers.append(loop.create_task(_promote_when_caught_up(node, promote_via)))
    code = EXIT_OK
    try:
        await node.wait()
    except (StorageError, StateMachineFailed) as exc:
        raft.events.note(logging.CRITICAL, raft.role, raft.term, f"Stopped: {exc}")
        code = EXIT_STORAGE
    except NodeStartError as exc:
        raft.events.note(logging.ERROR, raft.role, raft.term, f"Cannot start: {exc}")
        code = EXIT_BIND
    except Exception as exc:  # an unexpected bug: say so loudly, exit non-zero
        raft.events.note(
            logging.CRITICAL, raft.role, raft.term, f"Crashed: {type(exc).__name__}: {exc}"
        )
        logging.getLogger("raftlog.server").exception("node crashed")
        code = EXIT_CRASH
    finally:
        for task in (*stopping, *helpers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    if code == EXIT_OK and raft.removed:
        code = EXIT_REMOVED
    elif code == EXIT_OK:
        raft.events.note(logging.INFO, raft.role, raft.term, "Node stopped")
    return code


async def _promote_when_caught_up(node: Node, seeds: list[str]) -> None:
    """A node that joined as a learner asks to become a voter until the leader agrees (it
    refuses while the learner has not caught up, or another change is in progress)."""
    from raftlog.client import AsyncClient, ChangeRefused, ClientError  # noqa: PLC0415

    raft = node.raft
    urls = list(dict.fromkeys([*seeds, *(m.client for m in raft.members.values() if m.client)]))
    said = ""
    cfg = node.config  # the promotion is a membership change: TLS and the token as ours
    async with AsyncClient(
        urls, timeout=10, retry_for=10, ssl=cfg.forward_tls, token=cfg.token
    ) as client:
        while not raft.removed:
            await asyncio.sleep(PROMOTE_EVERY_S)
            if raft.id in raft.conf.voters:
                return
            if raft.id not in raft.conf.learners:
                continue  # the configuration with this node has not arrived yet
            try:
                await client.promote_member(int(raft.id))
            except ChangeRefused as exc:
                if "already a voter" in exc.message:
                    return
                # Other refusals may pass too (a stale leader that has not heard of this
                # node says "unknown member"): say so once, and keep asking.
                if not (exc.transient or "not caught up" in exc.message) and exc.message != said:
                    said = exc.message
                    raft.events.note(
                        logging.WARNING,
                        raft.role,
                        raft.term,
                        f"Not promoted yet: {exc.message}; asking again",
                    )
                continue
            except ClientError:
                continue
            raft.events.note(logging.INFO, raft.role, raft.term, "Promoted to voter")
            return


def _say(node: Node, config: NodeConfig, text: str) -> None:
    """A line in the event log's format before the node's own log exists."""
    events = getattr(node, "events_log", None) or (
        EventLog(node.id, stream=config.event_log, fmt=config.log_format, color=config.color)
        if config.event_log is not None
        else EventLog(node.id)
    )
    events.note(logging.ERROR, Role.FOLLOWER, 0, text)


async def _stop_with_parent(parent: int, stop: Callable[[str], None]) -> None:
    """Stop (gracefully, as on a first SIGTERM) once the parent is gone: this process was
    re-parented."""
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop(f"Parent process {parent} is gone")


def run_node(
    config: NodeConfig,
    *,
    stop_with_parent: int | None = None,
    promote_via: list[str] | None = None,
    event_loop: str = "auto",
    printing: Printing | None = None,
) -> int:
    """Run a node until it stops; ``printing``: print its records on standard output."""
    try:
        with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
            return runner.run(
                serve(
                    config,
                    stop_with_parent=stop_with_parent,
                    promote_via=promote_via,
                    printing=printing,
                )
            )
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout.flush()
