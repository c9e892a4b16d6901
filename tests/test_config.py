"""Settings from flags, RAFTLOG_<FLAG> variables and a TOML file (``cli/config.py``):
precedence, errors that name the key and its source, ``raftlog config show``, and the
names the project uses."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import pytest

from raftlog.cli import config
from raftlog.cli.main import build_parser, main
from raftlog.local.nodeenv import node_environment

ROOT = Path(__file__).resolve().parent.parent
NODE = ["node", "--peers", "1=127.0.0.1:4001"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RAFTLOG_"):
            monkeypatch.delenv(name)


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def sources(ns: argparse.Namespace) -> dict[str, str]:
    return {dest: s.describe() for dest, s in ns._config_sources.items()}


def write(tmp_path: Path, text: str, name: str = "raftlog.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a refused command line prints (exit status 2)."""
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.strip()


# (flag on the command line, variable, TOML key and value, dest, values for each source)
KINDS = [
    # int
    (["--client-port", "1001"], ("RAFTLOG_CLIENT_PORT", "1002"), "client-port = 1003",
     "client_port", (1001, 1002, 1003, 1234)),
    # float
    (["--heartbeat", "0.1"], ("RAFTLOG_HEARTBEAT", "0.2"), "heartbeat = 0.3",
     "heartbeat", (0.1, 0.2, 0.3, None)),
    # choices
    (["--log-level", "debug"], ("RAFTLOG_LOG_LEVEL", "warning"), 'log_level = "error"',
     "log_level", ("debug", "warning", "error", "info")),
    # a Path
    (["--data-dir", "/a"], ("RAFTLOG_DATA_DIR", "/b"), 'data-dir = "/c"',
     "data_dir", (Path("/a"), Path("/b"), Path("/c"), None)),
    # store_true: true in the file, and the env's explicit false beats it
    (["--learner"], ("RAFTLOG_LEARNER", "yes"), "learner = true",
     "learner", (True, True, True, False)),
    # append: repeated flags, a comma list, a TOML list
    (["--cors-origins", "http://f", "--cors-origins", "http://g"],
     ("RAFTLOG_CORS_ORIGINS", "http://e1, http://e2"), 'cors-origins = ["http://t"]',
     "cors_origins", (["http://f", "http://g"], ["http://e1", "http://e2"], ["http://t"], None)),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "env", "toml", "dest", "expected"), KINDS, ids=str)
def test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default(
    flag: list[str],
    env: tuple[str, str],
    toml: str,
    dest: str,
    expected: tuple[Any, Any, Any, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_flag, by_env, by_file, default = expected
    base = [*NODE, "--id", "1"] + ([] if dest == "data_dir" else ["--data-dir", "/d"])
    key = toml.split(" = ", maxsplit=1)[0]
    path = write(tmp_path, f"[node]\n{toml}\n")
    if dest != "data_dir":  # required: it has no default
        ns = parse(base)
        assert getattr(ns, dest) == default and sources(ns)[dest] == "default"
    ns = parse([*base, "--config", str(path)])
    assert getattr(ns, dest) == by_file
    assert sources(ns)[dest] == f"file {path} [node] {key}"
    monkeypatch.setenv(*env)
    ns = parse([*base, "--config", str(path)])
    assert getattr(ns, dest) == by_env and sources(ns)[dest] == f"env {env[0]}"
    ns = parse([*base, *flag, "--config", str(path)])
    assert getattr(ns, dest) == by_flag and sources(ns)[dest] == f"flag {flag[0]}"


def test_an_explicit_false_in_the_environment_beats_true_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[node]\nfast = true\n")
    argv = [*NODE, "--id", "1", "--data-dir", "/d", "--config", str(path)]
    assert parse(argv).fast is True
    monkeypatch.setenv("RAFTLOG_FAST", "0")
    ns = parse(argv)
    assert ns.fast is False and sources(ns)["fast"] == "env RAFTLOG_FAST"


def test_a_flag_wins_even_when_it_gives_the_default_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAFTLOG_CLIENT_PORT", "2000")
    monkeypatch.setenv("RAFTLOG_LOG_LEVEL", "debug")
    ns = parse([*NODE, "--id", "1", "--data-dir", "/d", "--client-port", "1234"])
    assert ns.client_port == 1234 and sources(ns)["client_port"] == "flag --client-port"
    assert ns.log_level == "debug"
    ns = parse([*NODE, "--id", "1", "--data-dir", "/d", "--log-level=info"])
    assert ns.log_level == "info" and sources(ns)["log_level"] == "flag --log-level"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAFTLOG_CLIENT_PORT", "")
    ns = parse([*NODE, "--id", "1", "--data-dir", "/d"])
    assert ns.client_port == 1234 and sources(ns)["client_port"] == "default"


def test_required_flags_can_come_from_the_environment_or_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(["node", "--id", "1"], capsys)
    assert "--data-dir" in err and "RAFTLOG_DATA_DIR" in err and "[node]" in err
    err = refused(["node", "--data-dir", "/d"], capsys)
    assert "one of the arguments --id --id-from-ordinal is required" in err
    monkeypatch.setenv("RAFTLOG_DATA_DIR", "/from-env")
    path = write(tmp_path, "[node]\nid-from-ordinal = true\n")
    ns = parse(["node", "--config", str(path)])
    assert ns.data_dir == Path("/from-env") and ns.id_from_ordinal is True and ns.id is None
    # The group --id | --id-from-ordinal is one setting: the flag's member wins whole.
    monkeypatch.setenv("RAFTLOG_ID", "3")
    ns = parse(["node", "--config", str(path)])
    assert ns.id == 3 and ns.id_from_ordinal is False  # env beats the file
    ns = parse(["node", "--id-from-ordinal"])
    assert ns.id is None and ns.id_from_ordinal is True
    assert sources(ns)["id"] == "default"
    monkeypatch.setenv("RAFTLOG_ID_FROM_ORDINAL", "false")  # false chooses nothing
    assert parse(["node"]).id == 3
    monkeypatch.setenv("RAFTLOG_ID_FROM_ORDINAL", "true")
    err = refused(["node"], capsys)
    assert err == "raftlog node: RAFTLOG_ID and RAFTLOG_ID_FROM_ORDINAL: not allowed together"


def test_help_shows_required_flags_as_declared_and_mentions_the_mechanism_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse(["node", "--help"])
    out = capsys.readouterr().out
    assert "(--id ID | --id-from-ordinal)" in out
    assert re.search(r" --data-dir DATA_DIR\b", out) and "[--data-dir" not in out
    assert out.count("RAFTLOG_<FLAG>") == 1 and "--config FILE" in out


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[node]\ndatadir = 1\n", {}, "{path} [node] datadir: unknown key (did you mean "
         "data-dir?)"),
        ("[node]\nclient-port = 'abc'\n", {}, "{path} [node] client-port: invalid int "
         "value: 'abc'"),
        ("[node]\nclient-port = 1.5\n", {}, "{path} [node] client-port: invalid int value: "
         "'1.5'"),
        ("[node]\nlog-level = 'loud'\n", {}, "{path} [node] log-level: invalid choice 'loud'"),
        ("[node]\nfast = 'maybe'\n", {}, "{path} [node] fast: expected true or false"),
        # checked even where a flag (here --peers) overrides it
        ("[node]\npeers = true\n", {}, "{path} [node] peers: expected a value like PEERS, "
         "not true"),
        ("[node]\ndata-dir = '/a'\ndata_dir = '/b'\n", {}, "data-dir and data_dir are the "
         "same key"),
        ("id = 1\n", {}, "{path}: id is outside a table; settings go in [node], [cluster], "
         "[client]"),
        ("[nodes]\nid = 1\n", {}, "{path}: unknown table [nodes]"),
        ("[node\n", {}, "config file {path}: Expected ']'"),
        ("", {"RAFTLOG_CLIENT_PORT": "x"}, "RAFTLOG_CLIENT_PORT: invalid int value: 'x'"),
        ("", {"RAFTLOG_EVENT_LOOP": "tokio"}, "RAFTLOG_EVENT_LOOP: invalid choice 'tokio'"),
        ("", {"RAFTLOG_FAST": "maybe"}, "RAFTLOG_FAST: expected true or false"),
        ("", {"RAFTLOG_ELECTION_TIMEUOT": "1-2"},
         "unknown environment variable RAFTLOG_ELECTION_TIMEUOT (did you mean "
         "RAFTLOG_ELECTION_TIMEOUT?)"),
        # Hidden flags (test-only switches, what a parent passes) are command-line only.
        ("", {"RAFTLOG_INJECT_BUG": "vote_not_persisted"},
         "unknown environment variable RAFTLOG_INJECT_BUG"),
        ("", {"RAFTLOG_STOP_WITH_PARENT": "1"}, "unknown environment variable"),
    ],
)  # fmt: skip
def test_unknown_keys_and_bad_values_are_one_line_naming_the_key_and_its_source(
    text: str,
    env: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path, text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    err = refused([*NODE, "--id", "1", "--data-dir", "/d", "--config", str(path)], capsys)
    assert err.startswith("raftlog node: ")
    assert message.format(path=path) in err


def test_a_missing_config_file_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAFTLOG_CONFIG", str(tmp_path / "nope.toml"))
    err = refused([*NODE, "--id", "1", "--data-dir", "/d"], capsys)
    missing = tmp_path / "nope.toml"
    assert err == f"raftlog node: cannot read the config file {missing}: No such file or directory"


def test_a_key_of_another_table_is_unknown_in_this_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[client]\ndata-dir = '/x'\n")
    err = refused(["status", "--config", str(path)], capsys)
    assert f"{path} [client] data-dir: unknown key" in err
    assert "it takes the flags of raftlog append, log, log trim, status, members" in err


def test_variables_that_are_no_setting_are_not_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in config.NON_SETTINGS:
        monkeypatch.setenv(name, "x")
    # Kubernetes' service links for services named raftlog and raftlog-client.
    monkeypatch.setenv("RAFTLOG_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("RAFTLOG_SERVICE_PORT_CLIENT", "1234")
    monkeypatch.setenv("RAFTLOG_PORT", "tcp://10.0.0.1:1234")
    monkeypatch.setenv("RAFTLOG_PORT_1234_TCP_ADDR", "10.0.0.1")
    monkeypatch.setenv("RAFTLOG_CLIENT_PORT", "tcp://10.0.0.2:1234")  # not a port setting
    ns = parse([*NODE, "--id", "1", "--data-dir", "/d"])
    assert ns.client_port == 1234
    # Variables of other commands are known, and do not apply here.
    monkeypatch.setenv("RAFTLOG_CLUSTER", "127.0.0.1:9")
    monkeypatch.setenv("RAFTLOG_NODES", "5")
    assert not hasattr(parse([*NODE, "--id", "1", "--data-dir", "/d"]), "nodes")


def test_the_existing_variables_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAFTLOG_FAST", "1")
    monkeypatch.setenv("RAFTLOG_EVENT_LOOP", "asyncio")
    monkeypatch.setenv("RAFTLOG_CORS_ORIGINS", "http://a,http://b")
    monkeypatch.setenv("RAFTLOG_CLUSTER", "127.0.0.1:7001,127.0.0.1:7002")
    for command in ("node", "cluster"):
        ns = parse(
            [command]
            + ([] if command == "cluster" else [*NODE[1:], "--id", "1", "--data-dir", "/d"])
        )
        assert ns.fast is True and ns.event_loop == "asyncio"
        assert ns.cors_origins == ["http://a", "http://b"]
    for argv in (["status"], ["log"], ["log", "trim", "--before", "3"], ["append", "x"]):
        ns = parse(argv)
        assert ns.cluster == ["http://127.0.0.1:7001", "http://127.0.0.1:7002"], argv
        assert sources(ns)["cluster"] == "env RAFTLOG_CLUSTER"


def test_a_subcommand_takes_its_settings_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[client]\nkeep_last = 100\ntimeout = 5\nlimit = 7\n")
    monkeypatch.setenv("RAFTLOG_CONFIG", str(path))
    ns = parse(["log", "trim"])
    assert ns.keep_last == 100 and ns.timeout == 5.0 and ns.before is None
    ns = parse(["log", "trim", "--before", "9"])  # the group's flag wins whole
    assert ns.before == 9 and ns.keep_last is None
    assert parse(["log"]).limit == 7 and parse(["status"]).timeout == 5.0


def test_config_show_prints_each_value_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[node]\nid = 2\ndata_dir = '/srv/raftlog'\nfast = true\n")
    monkeypatch.setenv("RAFTLOG_CLIENT_PORT", "2001")
    assert main(["config", "show", "node", "--config", str(path), "--heartbeat", "0.1"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["id"] == ("2", f"file {path} [node] id")
    assert rows["data-dir"] == ("/srv/raftlog", f"file {path} [node] data_dir")
    assert rows["fast"] == ("true", f"file {path} [node] fast")
    assert rows["client-port"] == ("2001", "env RAFTLOG_CLIENT_PORT")
    assert rows["heartbeat"] == ("0.1", "flag --heartbeat")
    assert rows["log-level"] == ("info", "default")
    assert "inject-bug" not in rows and "config" not in rows
    # --config before the command, a missing required setting, a client command.
    assert main(["config", "show", "--config", str(path), "node", "--id", "5"]) == 0
    out = capsys.readouterr().out
    assert _rows(out)["id"] == ("5", "flag --id") and "missing" not in out
    monkeypatch.setenv("RAFTLOG_TIMEOUT", "3")
    assert main(["config", "show", "log", "trim"]) == 0
    out = capsys.readouterr().out
    assert _rows(out)["timeout"] == ("3.0", "env RAFTLOG_TIMEOUT")
    assert "missing: --before or --keep-last or --older-than" in out
    assert main(["config", "show"]) == 0  # node by default
    assert "missing: --data-dir, --id or --id-from-ordinal" in capsys.readouterr().out


def test_config_show_refuses_a_command_without_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "show", "bench"]) == 2
    assert "bench takes no settings" in capsys.readouterr().err


def _rows(out: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in out.splitlines():
        if line.startswith("  "):
            key, value, *source = line.split()
            rows[key] = (value, " ".join(source))
    return rows


def _toy() -> config.ConfigArgumentParser:
    root = config.ConfigArgumentParser(prog="raftlog")
    sub = root.add_subparsers(dest="command")
    p = sub.add_parser("node")
    p.add_argument("--data-dir", required=True)
    return root


def test_a_new_flag_is_a_setting_with_no_further_work_and_secrets_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _toy()
    node = next(config._subparsers(root))
    node.add_argument("--peer-key", type=Path)
    node.add_argument("--token")
    node.add_argument("--retries", type=int, default=3)
    config.install(root)
    monkeypatch.setenv("RAFTLOG_TOKEN", "hunter2")
    monkeypatch.setenv("RAFTLOG_DATA_DIR", "/x")
    path = write(tmp_path, "[node]\npeer-key = '/k.pem'\nretries = 9\n")
    ns = root.parse_args(["node", "--config", str(path)])
    assert (ns.token, ns.peer_key, ns.retries) == ("hunter2", Path("/k.pem"), 9)
    assert config.show(node, ["--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "/k.pem" not in out
    assert _rows(out)["token"] == ("********", "env RAFTLOG_TOKEN")
    assert _rows(out)["peer-key"] == ("********", f"file {path} [node] peer-key")
    assert _rows(out)["retries"] == ("9", f"file {path} [node] retries")


def flags_not_settings(root: argparse.ArgumentParser) -> list[tuple[str, list[str]]]:
    """Visible flags of commands in scope that the layer does not handle (an action kind it
    cannot parse would silently be command-line only)."""
    out = []
    for parser in _all_parsers(root):
        if parser.config is None:
            continue
        settings = {s.action for s in parser.config.settings}
        for action in parser._actions:
            visible = action.option_strings and action.help != argparse.SUPPRESS
            if visible and action.dest not in ("help", "config") and action not in settings:
                out.append((parser.config.path, action.option_strings))
    return out


def test_every_flag_of_a_command_in_scope_is_a_setting() -> None:
    root = build_parser()
    commands = {c.path for c in config._registry(root).commands}
    assert {"node", "cluster", "append", "log", "log trim", "status"} <= commands
    assert {"members list", "members add", "leader transfer"} <= commands
    assert not {"bench", "chaos", "demo", "sim", "netcluster", "grade", "config show"} & commands
    assert flags_not_settings(root) == []


def test_the_check_catches_a_flag_the_layer_cannot_parse() -> None:
    root = _toy()
    next(config._subparsers(root)).add_argument("--version", action="version", version="1")
    config.install(root)
    assert flags_not_settings(root) == [("node", ["--version"])]


def _all_parsers(root: argparse.ArgumentParser) -> list[config.ConfigArgumentParser]:
    out = []
    for sub in config._subparsers(root):
        out += [sub, *_all_parsers(sub)]
    return out


# -- the names the project uses ------------------------------------------------------------

NAME = re.compile(r"\bRAFTLOG_[A-Z0-9_]*[A-Z0-9]\b")
PLACEHOLDERS = {
    "RAFTLOG_SOME_FLAG",  # as in the help: RAFTLOG_<FLAG>, --some-flag
    "RAFTLOG_PORT",  # Kubernetes' service link, named in config.py
    "RAFTLOG_DATADIR",  # the README's example of a typo
}


def unexplained(text: str, registry: config.Registry) -> set[str]:
    """RAFTLOG_* names in ``text`` that are neither a setting nor a known variable."""
    known = registry.env_names() | set(config.NON_SETTINGS) | PLACEHOLDERS
    return {n for n in NAME.findall(text) if n not in known and not config.is_service_link(n, "")}


def test_every_raftlog_variable_the_project_names_is_a_setting_or_listed() -> None:
    registry = config._registry(build_parser())
    files = [
        p
        for top in ("src", "tests", "scripts", "docs", "deploy", "examples")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and p.suffix in {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".js"}
    ]
    files += [ROOT / n for n in ("Makefile", "README.md", "CHANGELOG.md", "Dockerfile")]
    files += list(ROOT.glob("docker-compose*.yml"))
    found = {}
    for path in files:
        if path.exists() and path != Path(__file__).resolve():  # this file names bad ones
            for name in unexplained(path.read_text(errors="replace"), registry):
                found[name] = path.relative_to(ROOT)
    assert not found, f"RAFTLOG_* names that raftlog node would refuse: {found}"


def test_the_name_check_can_fail() -> None:
    registry = config._registry(build_parser())
    assert unexplained("RAFTLOG_DATA_DIR RAFTLOG_FAST RAFTLOG_ADMIN_TOKEN", registry) == set()
    assert unexplained("export RAFTLOG_DATA_DIRR=/x", registry) == {"RAFTLOG_DATA_DIRR"}


def test_nodes_started_by_a_parent_get_no_raftlog_variables() -> None:
    env = node_environment(
        "tok", {"RAFTLOG_DATA_DIR": "/x", "RAFTLOG_ID": "7", "RAFTLOG_CONFIG": "f", "HOME": "/h"}
    )
    assert env == {"HOME": "/h", "PYTHONUNBUFFERED": "1", "RAFTLOG_ADMIN_TOKEN": "tok"}
    assert "RAFTLOG_ADMIN_TOKEN" not in node_environment(None, {"RAFTLOG_ADMIN_TOKEN": "old"})


def test_the_example_file_is_valid_for_every_table(monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "examples" / "raftlog.toml"
    monkeypatch.setenv("RAFTLOG_CONFIG", str(path))
    ns = parse(["node"])
    assert ns.id == 1 and ns.data_dir == Path("/var/lib/raftlog")
    assert sources(ns)["data_dir"].startswith("file ")
    parse(["cluster"])
    parse(["status"])
