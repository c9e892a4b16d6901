"""Tests of the Jepsen log parser, of the checker on Jepsen's etcd histories, and of the
``raftlog check`` subcommand."""

from __future__ import annotations

import argparse
import math
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from raftlog.check.cli import add_parser, run
from raftlog.check.history import Operation
from raftlog.check.jepsen import Keyword, load_jepsen, parse_edn, parse_jepsen
from raftlog.check.models import RegisterModel
from raftlog.check.wgl import check

DATA = Path(__file__).resolve().parents[1] / "data" / "jepsen-etcd"
INF = math.inf
PREFIX = "INFO  jepsen.util - "


def expected_verdicts() -> dict[str, str]:
    rows = (DATA / "verdicts.tsv").read_text().splitlines()[1:]
    return {
        name: "linearizable" if value == "true" else "not linearizable"
        for name, value in (row.split("\t") for row in rows if row)
    }


VERDICTS = expected_verdicts()


def log(*events: str) -> list[str]:
    """Lines of a Jepsen log from 'PROC TYPE F VALUE' strings (tab-separated)."""
    return [PREFIX + "\t".join(e.split(" ", 3)) for e in events]


# --- EDN values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("nil", None),
        ("3", 3),
        ("-12", -12),
        ("7N", 7),
        ("2.5", 2.5),
        ("true", True),
        ("false", False),
        (":timed-out", Keyword("timed-out")),
        ('"a \\"b\\""', 'a "b"'),
        ("[3 0]", (3, 0)),
        ("[]", ()),
        ("[1, [2 nil] :k]", (1, (2, None), Keyword("k"))),
        (' [ "a, b" ,1 ] ', ("a, b", 1)),
    ],
)
def test_parse_edn(text: str, value: object) -> None:
    assert parse_edn(text) == value


@pytest.mark.parametrize("text", ["", "[1 2", "1 2]", "1 2", "{:a 1}", "#{1}", "x", "\\q"])
def test_parse_edn_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_edn(text)


def test_keyword_prints_like_edn() -> None:
    assert str(Keyword("timed-out")) == ":timed-out"


# --- the parser --------------------------------------------------------------------------------


def test_parse_all_event_kinds() -> None:
    ops = parse_jepsen(
        log(
            "0 :invoke :read nil",
            "1 :invoke :write 4",
            "2 :invoke :cas [3 0]",
            "0 :ok :read 3",
            "1 :info :write :timed-out",
            "2 :fail :cas [3 0]",
            "0 :invoke :read nil",
            "3 :invoke :cas [1 2]",
            "0 :fail :read :timed-out",
            "3 :ok :cas [1 2]",
            "4 :invoke :write 0",
        )
    )
    assert ops == [
        Operation(0, 0, "read", None, 3, 1.0, 4.0, "ok"),
        Operation(1, 1, "write", 4, None, 2.0, INF, "info"),
        Operation(2, 2, "cas", (3, 0), (3, 0), 3.0, 6.0, "fail"),
        Operation(3, 0, "read", None, Keyword("timed-out"), 7.0, 9.0, "fail"),
        Operation(4, 3, "cas", (1, 2), (1, 2), 8.0, 10.0, "ok"),
        Operation(5, 4, "write", 0, None, 11.0, INF, "info"),  # never completed
    ]


def test_parse_accepts_spaces_blank_lines_timestamps_and_skips_the_nemesis() -> None:
    lines = [
        "INFO  jepsen.util - 1   :invoke :write  3",
        "",
        "INFO  jepsen.util - :nemesis\t:info\t:start\tnil",
        "2015-05-01 13:02:54,034 INFO  jepsen.util - 1   :ok   :write  3\r\n",
    ]
    assert parse_jepsen(lines) == [Operation(0, 1, "write", 3, 3, 1.0, 4.0, "ok")]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["garbage"], 1, "not a Jepsen history line"),
        (log("0 :invoke :read nil", "x :ok :read 1"), 2, "process must be an integer"),
        (log("0 :invoke :read nil", "0 :done :read 1"), 2, "event type must be"),
        (log("0 :invoke :cas [1 2"), 1, "unterminated"),
        (log("0 :ok :read 1"), 1, "never invoked"),
        (log("0 :invoke :read nil", "0 :invoke :read nil"), 2, "still open"),
        (log("0 :invoke :read nil", "1 :invoke :read nil", "0 :ok :write 1"), 3, "completes"),
    ],
)
def test_parse_errors_name_file_and_line(lines: list[str], line: int, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^hist\.log:{line}: .*{message}"):
        parse_jepsen(lines, source="hist.log")


def test_load_jepsen_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.log"
    path.write_text("\n".join([*log("0 :invoke :read nil"), "oops"]) + "\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: "):
        load_jepsen(path)


def test_every_etcd_file_parses_into_consistent_operations() -> None:
    for name in VERDICTS:
        ops = load_jepsen(DATA / name)
        assert ops, name
        assert [op.id for op in ops] == list(range(len(ops)))
        for op in ops:
            assert op.f in {"read", "write", "cas"}
            if op.status == "info":
                assert op.ret == INF and op.output is None
            if op.f == "cas":
                assert isinstance(op.input, tuple) and len(op.input) == 2


# --- the 102 etcd histories ------------------------------------------------------------------


def test_verdicts_file_covers_102_histories() -> None:
    assert len(VERDICTS) == 102
    assert sorted(VERDICTS) == sorted(p.name for p in DATA.glob("*.log"))


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_etcd_history_verdict(name: str) -> None:
    result = check(RegisterModel(), load_jepsen(DATA / name), timeout_s=60)
    assert result.verdict == VERDICTS[name]
    if result.verdict == "not linearizable":
        assert result.explanation is not None
        assert result.explanation.blocking in result.explanation.window


def test_all_etcd_histories_timing(record_property: Callable[[str, object], None]) -> None:
    """The whole set, in one go; the budget is 60 s (reported, not asserted: see -rA)."""
    started = time.perf_counter()
    agree = 0
    for name in sorted(VERDICTS):
        result = check(RegisterModel(), load_jepsen(DATA / name), timeout_s=60)
        assert result.verdict != "unknown", name
        agree += result.verdict == VERDICTS[name]
    elapsed = time.perf_counter() - started
    record_property("etcd_102_seconds", round(elapsed, 3))
    print(f"\n102 etcd histories parsed and checked in {elapsed:.2f} s (budget 60 s)")
    assert agree == 102


def renamed_log(text: str, seed: int) -> str:
    """Rename the values of a register log by a random bijection (nil stays) and permute the
    process numbers, at the text level."""
    rng = random.Random(seed)
    values = sorted(set(re.findall(r"(?<![\w-])-?\d+(?![\w-])", _values_part(text))), key=int)
    new_values = rng.sample(range(100, 1000), len(values))
    vmap = dict(zip(values, map(str, new_values), strict=True))
    procs = sorted({line.split()[3] for line in text.splitlines() if line.strip()}, key=int)
    pmap = dict(zip(procs, map(str, rng.sample(range(50, 500), len(procs))), strict=True))
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        head, rest = line[: len(PREFIX)], line[len(PREFIX) :]
        proc, typ, f, value = rest.split(None, 3)
        value = re.sub(r"(?<![\w-])-?\d+(?![\w-])", lambda m: vmap[m.group()], value)
        out.append(head + "\t".join([pmap[proc], typ, f, value]))
    return "\n".join(out) + "\n"


def _values_part(text: str) -> str:
    return "\n".join(
        line[len(PREFIX) :].split(None, 3)[3] for line in text.splitlines() if line.strip()
    )


@pytest.mark.parametrize("name", sorted(VERDICTS)[::5])
def test_etcd_history_renamed_as_text_keeps_its_verdict(name: str) -> None:
    text = (DATA / name).read_text()
    for seed in range(3):
        renamed = renamed_log(text, seed)
        assert renamed != text
        ops = parse_jepsen(renamed.splitlines(), source=f"{name}~{seed}")
        assert check(RegisterModel(), ops, timeout_s=60).verdict == VERDICTS[name], seed


# --- the CLI -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="raftlog")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return parser.parse_args(["check", *argv])


def run_cli(argv: list[str]) -> int:
    args = parse_args(argv)
    assert args.handler is run
    code: int = args.handler(args)
    return code


LIN = str(DATA / "etcd_002.log")
NOT_LIN = str(DATA / "etcd_000.log")


def test_cli_defaults() -> None:
    args = parse_args(["a.log"])
    assert (args.model, args.format, args.timeout, args.files) == (
        "register",
        "jepsen",
        60.0,
        ["a.log"],
    )


def test_cli_linearizable(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([LIN]) == 0
    out, err = capsys.readouterr()
    assert out == f"{LIN}: linearizable\n"
    assert err == ""


def test_cli_not_linearizable_explains(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--timeout", "30", LIN, NOT_LIN]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{LIN}: linearizable"
    assert lines[1] == f"{NOT_LIN}: not linearizable"
    explanation = lines[2:]
    assert explanation and all(line.startswith("  ") for line in explanation)
    # The offending read of etcd_000.log: p11 read 2 between lines 85 and 86.
    assert any(re.search(r"call 85 ret\s+86\s+p11 read\(\) -> 2 ok", line) for line in lines)


def test_cli_unknown_on_timeout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 40 concurrent indeterminate writes, then a read of a value none of them wrote.
    events = [f"{p} :invoke :write {p}" for p in range(40)]
    events += ["99 :invoke :read nil", "99 :ok :read 1000"]
    hard = tmp_path / "hard.log"
    hard.write_text("\n".join(log(*events)) + "\n")
    easy = tmp_path / "easy.log"
    easy.write_text("\n".join(log("0 :invoke :write 1", "0 :ok :write 1")) + "\n")
    assert run_cli(["--timeout", "0.2", str(easy), str(hard)]) == 3
    assert capsys.readouterr().out.splitlines() == [f"{easy}: linearizable", f"{hard}: unknown"]
    assert run_cli(["--timeout", "0.2", str(hard), NOT_LIN]) == 1


def test_cli_parse_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.log"
    bad.write_text("\n".join([*log("0 :invoke :read nil"), "not a history line"]) + "\n")
    assert run_cli([str(bad), LIN]) == 2
    out, err = capsys.readouterr()
    assert out == f"{LIN}: linearizable\n"
    assert f"{bad}:2: not a Jepsen history line" in err


def test_cli_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.log"
    assert run_cli([str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_cli_model_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "kv.log"
    path.write_text("\n".join(log("0 :invoke :write 1", "0 :ok :write 1")) + "\n")
    assert run_cli(["--model", "kv-register", str(path)]) == 2
    assert f"{path}: " in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["--timeout", "0", "a.log"], ["--timeout", "x", "a.log"], ["--model", "queue", "a.log"]],
)
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err


def test_cli_kv_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "kv-good.log"
    good.write_text(
        "\n".join(
            log(
                "0 :invoke :write [:x 1]",
                "1 :invoke :write [:y 2]",
                "0 :ok :write [:x 1]",
                "1 :ok :write [:y 2]",
                "0 :invoke :cas [:x [1 3]]",
                "1 :invoke :read [:y nil]",
                "0 :ok :cas [:x [1 3]]",
                "1 :ok :read [:y 2]",
            )
        )
        + "\n"
    )
    assert run_cli(["--model", "kv-register", str(good)]) == 0
    bad = tmp_path / "kv-bad.log"
    bad.write_text(
        good.read_text() + "\n".join(log("1 :invoke :read [:x nil]", "1 :ok :read [:x 1]"))
    )
    assert run_cli(["--model", "kv-register", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{good}: linearizable\n{bad}: not linearizable\n" in out
    assert "read[:x]() -> 1 ok" in out
