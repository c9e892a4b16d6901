"""Finding a submission's node command, the timings option, and the output stamper."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raftlog.grade import submission
from raftlog.grade.model import SCALE_ENV, Timings
from raftlog.local import stamp as stamp_module
from raftlog.local.stamp import copy_streams, parse_line, stamp

HERE = Path(__file__).resolve().parent


def test_node_py_then_compose_then_nothing(tmp_path: Path) -> None:
    (tmp_path / "node.py").write_text("print('hi')\n")
    found = submission.find(tmp_path)
    assert (found.command, found.source, found.copy) == ("{python} node.py {id}", "node.py", True)
    assert submission.find(tmp_path, "python3 other.py {id}").source == "--node-cmd"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(submission.SubmissionError, match="--node-cmd"):
        submission.find(empty)
    with pytest.raises(submission.SubmissionError, match="not a directory"):
        submission.find(tmp_path / "missing")


def test_the_compose_files_node_command(tmp_path: Path) -> None:
    services = "\n".join(
        f"  node_{i}:\n    build: .\n    container_name: node_{i}\n"
        f"    command: python3 main.py {i} --name node_{i}"
        for i in (1, 2, 3)
    )
    (tmp_path / "docker-compose.yml").write_text(f"services:\n{services}\n")
    found = submission.find(tmp_path)
    assert found.source == "docker-compose.yml"
    assert found.command.split() == ["'{python}'", "main.py", "'{id}'", "--name", "'{name}'"]
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "compose.yaml").write_text(
        "services:\n  node_1:\n    command: [python, a.py, '1']\n"
        "  node_2:\n    command: [python, b.py, '2']\n  node_3:\n    command: [python, a.py, '3']\n"
    )
    with pytest.raises(submission.SubmissionError, match="differ beyond their number"):
        submission.find(odd)
    (odd / "compose.yaml").write_text("services:\n  node_1:\n    image: x\n")
    with pytest.raises(submission.SubmissionError, match="no command"):
        submission.find(odd)


def test_timings_option(tmp_path: Path) -> None:
    assert submission.parse_timings("lab") == 1.0
    assert submission.parse_timings("auto") is None
    assert submission.parse_timings("0.1") == 0.1
    for bad in ("fast", "0", "2"):
        with pytest.raises(submission.SubmissionError):
            submission.parse_timings(bad)
    assert submission.reference().honours_scale()  # the reference reads LAB_TIME_SCALE
    for variant in ("two_leaders", "early_true", "stays_leader", "wrong_timeouts"):
        # Built on the reference node, they read LAB_TIME_SCALE through it.
        assert submission.find(HERE / "submissions" / variant).honours_scale(), variant
    (tmp_path / "node.py").write_text("TIMEOUT = (6, 10)\n")
    assert not submission.find(tmp_path).honours_scale()
    assert Timings(0.1).election_bounds() == pytest.approx((0.41, 1.25))
    assert SCALE_ENV == "LAB_TIME_SCALE"


def test_the_stamper_marks_each_line_with_its_time_and_stream() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()

    def node() -> None:  # more than a pipe holds: written while the stamper reads
        os.write(out_w, b"Node started!\nhalf")
        os.write(err_w, b"Traceback\n" + b"x" * 70000 + b"\n")
        os.write(out_w, b" a line\nlast, no newline")
        os.close(out_w)
        os.close(err_w)

    sink = io.BytesIO()
    before = time.time()
    writer = threading.Thread(target=node)
    writer.start()
    copy_streams({out_r: "|", err_r: "!"}, sink)
    writer.join()
    parsed = [parse_line(line) for line in sink.getvalue().decode().splitlines()]
    assert all(p is not None for p in parsed)
    got = [(p[1], p[2][:20]) for p in parsed if p is not None]
    assert [g for g in got if not g[0]] == [
        (False, "Node started!"),
        (False, "half a line"),
        (False, "last, no newline"),
    ]
    assert [g[1] for g in got if g[0]] == ["Traceback", "x" * 20, "x" * 20]  # 64 KiB + rest
    assert all(before - 1 <= p[0] <= time.time() + 1 for p in parsed if p is not None)
    assert parse_line("no stamp here") is None
    assert parse_line(f"{stamp(0.5)} | ok") == (pytest.approx(0.5), False, "ok")


def test_the_stamper_process_says_when_it_reads_and_writes_a_dying_nodes_last_words(
    tmp_path: Path,
) -> None:
    log = tmp_path / "node.log"
    err_r, err_w = os.pipe()
    ready_r, ready_w = os.pipe()
    fds = ["--stderr-fd", str(err_r), "--ready-fd", str(ready_w)]
    stamper = subprocess.Popen(  # as the netcluster starts it: the file, isolated
        [sys.executable, "-I", stamp_module.__file__, str(log), *fds],
        stdin=subprocess.PIPE,
        pass_fds=(err_r, ready_w),
    )
    os.close(err_r)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"r"  # blocks until it reads; b"" had it died
    assert os.read(ready_r, 1) == b""  # and it closed its end
    os.close(ready_r)
    assert log.exists()
    assert stamper.stdin is not None
    stamper.stdin.write(b"one\ntwo\n")
    stamper.stdin.close()
    os.write(err_w, b"boom\n")
    os.close(err_w)
    assert stamper.wait(timeout=30) == 0
    lines = log.read_text().splitlines()
    assert sorted(line.split(" ", 2)[2] for line in lines) == ["! boom", "| one", "| two"]
