"""`raftlog grade`: run a lab submission through the lab's four runs and report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Run any implementation of the lab (three node.py processes speaking its XML-RPC on port
1234 as node_1..node_3) through the lab's runs, each on a fresh cluster in network
namespaces (root, Linux), and check from outside, through the lab's protocol and its log
phrases, what happened: a leader within the bound and never two at once, appends
acknowledged and committed by every follower in order, the dead leader replaced and
following when back, the dead follower following when back, no acknowledgement without
a majority, a split vote with one winner and no election after it, election timeouts and
heartbeats against the lab's 6-10 s and 2 s, and the lab's log lines for each event.

The submission's node command is --node-cmd, else `{python} node.py {id}` if DIR holds
node.py, else node_1's command in its compose file. Each node runs in its own copy of
DIR, with host name node_N.

  raftlog grade submissions/alice --out reports/alice
  raftlog grade --reference --timings 0.1       # the bundled reference lab node
  raftlog grade --raftlog --timings 0.1         # raftlog's own nodes
  raftlog grade --table reports/*               # one table of many reports

--timings lab (default) keeps the lab's timings (a full grade takes several minutes);
a factor such as 0.1 sets LAB_TIME_SCALE=0.1 in the nodes' environment and expects
timings scaled by it; auto takes 0.1 when a .py file of the submission mentions
LAB_TIME_SCALE (or builds on the reference node) and lab otherwise. Exit status: 0 every
required check passed, 1 some failed, 2 the grade could not run (not root, no node
command, bad options, or no run could build its cluster: e.g. the namespaces node_1..
are someone else's).
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "grade",
        help="run a lab submission through the lab's four runs and report (root)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("dir", nargs="?", type=Path, metavar="DIR", help="the submission")
    what.add_argument("--reference", action="store_true", help="grade the bundled reference node")
    what.add_argument("--raftlog", action="store_true", help="grade raftlog's own nodes")
    what.add_argument(
        "--table",
        type=Path,
        nargs="+",
        metavar="REPORT_DIR",
        help="print one table of these reports (their grade.json) and exit",
    )
    p.add_argument(
        "--runs",
        default="typical,split-vote,dead-leader,dead-follower",
        help="comma-separated, of typical, split-vote, dead-leader, dead-follower (default all)",
    )
    p.add_argument(
        "--timings",
        default="lab",
        metavar="lab|auto|FACTOR",
        help="the lab's timings (default), scaled by FACTOR (e.g. 0.1), or auto",
    )
    p.add_argument(
        "--attempts",
        type=int,
        default=1,
        metavar="N",
        help="split-vote runs to try until one produces a split vote (default 1)",
    )
    p.add_argument("--node-cmd", metavar="CMD", help="the node's command ({id} {name} {data})")
    p.add_argument(
        "--out",
        type=Path,
        metavar="REPORT_DIR",
        help="where the report goes (default ./grade-NAME)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from raftlog.grade import RUNS, SubmissionError, Timings, grade, report, submission  # noqa: PLC0415
    from raftlog.local.netcluster import unavailable_reason  # noqa: PLC0415

    if args.table:
        text, passed = report.table(args.table)
        print(text)
        return 0 if passed else 1
    try:
        runs = [r.strip() for r in args.runs.split(",") if r.strip()]
        unknown = [r for r in runs if r not in RUNS]
        if unknown or not runs:
            raise SubmissionError(f"--runs takes {', '.join(RUNS)}, not {args.runs!r}")
        if args.attempts < 1:
            raise SubmissionError("--attempts is at least 1")
        scale = submission.parse_timings(args.timings)
        if args.raftlog:
            if args.node_cmd:
                raise SubmissionError("--raftlog has its own node command")
            sub = submission.raftlog_nodes(Timings(scale or submission.AUTO_SCALE))
        elif args.reference:
            sub = submission.reference()
        else:
            sub = submission.find(args.dir, args.node_cmd)
        if scale is None:
            scale = submission.AUTO_SCALE if sub.honours_scale() else 1.0
        timings = Timings(scale)
    except SubmissionError as exc:
        print(f"raftlog grade: {exc}", file=sys.stderr)
        return 2
    reason = unavailable_reason()
    if reason:
        print(f"raftlog grade: {reason}", file=sys.stderr)
        return 2
    out = args.out or Path(f"grade-{sub.name}")

    def echo(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    echo(f"grading {sub.name}: {sub.command} ({timings.describe()})")
    result = grade(sub, timings, runs, attempts=args.attempts, echo=echo)
    if result.unbuilt:
        print(
            f"raftlog grade: no run could build its cluster, so nothing of {sub.name} was "
            f"judged (no report): {result.runs[0].record.error}",
            file=sys.stderr,
        )
        return 2
    page = report.write_report(out, result)
    print(report.summary(result))
    print(f"report: {page}")
    return 0 if result.passed else 1
