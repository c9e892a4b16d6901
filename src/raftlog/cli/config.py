"""Settings from flags, the environment and a TOML file: one definition serves all three.

The argparse definitions of each command are the only definition of its settings. For
every optional, visible flag ``--some-flag`` of a command in scope, this module derives

- the environment variable ``RAFTLOG_SOME_FLAG``, and
- the key ``some-flag`` (or ``some_flag``) in the command's table of the ``--config`` file
  (``[node]``, ``[cluster]``, or ``[client]`` for the commands that talk to a running
  cluster: those with ``--cluster``),

and parses their values with the flag's own ``type``, ``choices`` and ``action``
(``store_true`` flags take true/false, ``append`` flags a list or a comma list). The
effective value of a setting comes from the first of: the flag, the environment, the
file, the flag's default. Flags added later are picked up with no further work; hidden
flags (``help=SUPPRESS``: test-only switches and what a parent process passes its
children) are command-line only.

Errors (an unknown key or ``RAFTLOG_*`` variable, a value the flag would refuse, a
missing required setting) are one line naming the key and where it came from, and exit
status 2. The hook is :class:`ConfigArgumentParser`: a command's parser fills in what the
command line left out right after parsing it, and records each value's source
(``raftlog config show``).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "RAFTLOG_"
CONFIG_ENV = "RAFTLOG_CONFIG"
"""The config file when ``--config`` is not given (it is the generic name of --config)."""

NON_SETTINGS: Mapping[str, str] = {
    # Variables raftlog reads that are no flag of a command in scope: never "unknown".
    "RAFTLOG_ADMIN_TOKEN": "a node's admin token (raftlog cluster gives its nodes one)",
    "RAFTLOG_CONTROL_TOKEN": "the token of raftlog cluster's control API",
    "RAFTLOG_TOKEN": "the cluster's write token, where no --token-file is given",
    "RAFTLOG_TEST_TLS": "the test suite: the process tests' clusters on TLS",
    "RAFTLOG_BENCH_PYSYNCOBJ_PYTHON": "raftlog bench: a Python with pysyncobj",
    "RAFTLOG_SCREENSHOTS": "the test suite: write the dashboard's screenshots",
    "RAFTLOG_SNAPSHOT_APPENDS": "the test suite: appends in the snapshot test",
}

TABLES = ("node", "cluster", "client")
SECRET_WORDS = frozenset({"token", "key", "password", "secret", "passphrase"})
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})

# Kubernetes gives every pod variables for each service of its namespace (service links):
# a service "raftlog" yields RAFTLOG_SERVICE_HOST, RAFTLOG_PORT=tcp://10.0.0.1:1234, ...
_K8S_NAME = re.compile(r"_SERVICE_HOST$|_SERVICE_PORT(_[A-Z0-9_]+)?$|_PORT_\d+_(TCP|UDP|SCTP)")
_K8S_PORT_VALUE = re.compile(r"^(tcp|udp|sctp)://")


class ConfigError(Exception):
    """A setting that cannot be used; the message names it and where it came from."""


@dataclass(frozen=True)
class Source:
    kind: str
    """``flag``, ``env``, ``file`` or ``default``."""
    where: str = ""
    """The flag as typed, the variable, or ``FILE [table] key``."""

    def describe(self) -> str:
        return f"{self.kind} {self.where}".strip()


DEFAULT = Source("default")


@dataclass(frozen=True)
class Setting:
    """One flag of a command, with its names in the environment and the file."""

    action: argparse.Action
    flag: str
    """Its long option, e.g. ``--election-timeout``."""

    @property
    def key(self) -> str:
        return self.flag[2:]

    @property
    def env(self) -> str:
        return PREFIX + self.key.replace("-", "_").upper()

    @property
    def secret(self) -> bool:
        return bool(SECRET_WORDS & set(re.split(r"[-_]", self.key.lower())))


@dataclass
class CommandConfig:
    """What the config layer knows of one command in scope."""

    path: str
    """The command, e.g. ``node`` or ``members add``."""
    table: str
    settings: list[Setting]
    required: list[argparse.Action] = field(default_factory=list)
    """Required flags (argparse's check is off: the environment or the file may give them)."""
    groups: list[argparse._MutuallyExclusiveGroup] = field(default_factory=list)
    required_groups: list[argparse._MutuallyExclusiveGroup] = field(default_factory=list)
    registry: Registry | None = None


@dataclass
class Registry:
    """Every command in scope, for the checks that span them (unknown names)."""

    commands: list[CommandConfig] = field(default_factory=list)

    def env_names(self) -> set[str]:
        return {s.env for c in self.commands for s in c.settings} | {CONFIG_ENV}

    def keys(self, table: str) -> set[str]:
        return {s.key for c in self.commands if c.table == table for s in c.settings}

    def commands_of(self, table: str) -> list[str]:
        return [c.path for c in self.commands if c.table == table]


# -- the parser ---------------------------------------------------------------------------


class ConfigArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose in-scope command parsers fill what the command line left out
    from the environment and the config file (every subparser inherits the class)."""

    config: CommandConfig | None = None
    check_required = True
    """``raftlog config show`` turns this off: it shows what is missing instead."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given: dict[str, str] = {}
        ns, extras = super().parse_known_args(args, namespace)
        if self.config is not None:
            try:
                resolve(self, self.config, ns, os.environ)
            except ConfigError as exc:
                self.exit(2, f"{self.prog}: {exc}\n")
        return ns, extras

    def format_usage(self) -> str:
        with self._as_declared():
            return super().format_usage()

    def format_help(self) -> str:
        with self._as_declared():
            return super().format_help()

    @contextlib.contextmanager
    def _as_declared(self) -> Iterator[None]:
        """Help shows required flags as declared (the check itself runs after the
        environment and the file had their say)."""
        config = self.config
        if config is None:
            yield
            return
        _set_required(config, True)
        try:
            yield
        finally:
            _set_required(config, False)


def _set_required(config: CommandConfig, required: bool) -> None:
    for action in config.required:
        action.required = required
    for group in config.required_groups:
        group.required = required


_TRACKED: dict[type, type] = {}


def _track(action: argparse.Action) -> None:
    """Make ``action`` note, on its parser, that the command line gave it."""
    action.__class__ = _tracked(type(action))


def _tracked(cls: type[argparse.Action]) -> type[argparse.Action]:
    if cls not in _TRACKED:

        def __call__(  # noqa: N807
            self: argparse.Action,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            given = getattr(parser, "_given", None)
            if given is not None and option_string is not None:
                given.setdefault(self.dest, option_string)
            cls.__call__(self, parser, namespace, values, option_string)

        _TRACKED[cls] = type(f"Tracked{cls.__name__}", (cls,), {"__call__": __call__})
    return _TRACKED[cls]


SUPPORTED = (
    argparse._StoreAction,
    argparse._StoreConstAction,  # store_true, store_false too
    argparse._AppendAction,  # extend too
    argparse._CountAction,
    argparse.BooleanOptionalAction,
)

CONFIG_HELP = (
    "read settings from this TOML file's [{table}] table (default $RAFTLOG_CONFIG). "
    "Every flag can also be set as RAFTLOG_<FLAG> in the environment (--some-flag: "
    "RAFTLOG_SOME_FLAG) or as some-flag in the file; a flag beats the environment, which "
    "beats the file. `raftlog config show {command}` shows what applies."
)


def table_for(path: str, parser: argparse.ArgumentParser) -> str | None:
    """The file's table of a command, or None if the command reads no settings (the tools:
    their command line is the record of what they did)."""
    if path in ("node", "cluster"):
        return path
    if "--cluster" in parser._option_string_actions:  # talks to a running cluster
        return "client"
    return None


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[ConfigArgumentParser]:
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if id(sub) not in seen and isinstance(sub, ConfigArgumentParser):
                    seen.add(id(sub))
                    yield sub


def command_path(parser: argparse.ArgumentParser) -> str:
    return parser.prog.split(" ", 1)[1] if " " in parser.prog else parser.prog


def install(root: argparse.ArgumentParser) -> Registry:
    """Give every command in scope its settings (call once all commands are defined)."""
    registry = Registry()

    def walk(parser: argparse.ArgumentParser) -> None:
        for sub in _subparsers(parser):
            path = command_path(sub)
            table = table_for(path, sub)
            if table is not None:
                registry.commands.append(_setup(sub, path, table, registry))
            walk(sub)

    walk(root)
    return registry


def _setup(
    parser: ConfigArgumentParser, path: str, table: str, registry: Registry
) -> CommandConfig:
    if "--config" not in parser._option_string_actions:
        parser.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help=CONFIG_HELP.format(table=table, command=path),
        )
    _track(parser._option_string_actions["--config"])
    settings: list[Setting] = []
    required: list[argparse.Action] = []
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or action.help == argparse.SUPPRESS or action.dest in ("help", "config"):
            continue
        if not isinstance(action, SUPPORTED):
            continue  # a test checks that no command in scope has such a flag
        _track(action)
        settings.append(Setting(action, longs[0]))
        if action.required:
            action.required = False
            required.append(action)
    groups = [g for g in parser._mutually_exclusive_groups if g._group_actions]
    required_groups = [g for g in groups if g.required]
    for g in required_groups:
        g.required = False
    config = CommandConfig(path, table, settings, required, groups, required_groups, registry)
    parser.config = config
    return config


# -- resolving -----------------------------------------------------------------------------


def resolve(
    parser: ConfigArgumentParser,
    config: CommandConfig,
    ns: argparse.Namespace,
    environ: Mapping[str, str],
) -> None:
    """Fill ``ns`` with what the command line left out, from ``environ`` and the config
    file; record each setting's source in ``ns._config_sources``."""
    assert config.registry is not None
    given: dict[str, str] = getattr(parser, "_given", {})
    check_environment(environ, config.registry)
    path, path_source = _config_path(ns, given, environ)
    table: dict[str, Any] = {}
    if path is not None:
        table = load_file(path, config.table, config.registry)
    sources: dict[str, Source] = dict(getattr(ns, "_config_sources", None) or {})
    ns._config_sources = sources
    ns._config_file = (path, path_source)
    grouped = {a.dest: g for g in config.groups for a in g._group_actions}
    # Every value is checked, also those a flag overrides: a bad file is noticed at once.
    env_lookup, file_lookup = _from_env(environ), _from_file(table, path, config.table)
    from_env = {s.flag: hit for s in config.settings if (hit := env_lookup(s)) is not None}
    from_file = {s.flag: hit for s in config.settings if (hit := file_lookup(s)) is not None}
    done: set[str] = set()
    for setting in config.settings:
        dest = setting.action.dest
        if dest in done:
            continue
        if dest in sources and dest not in given:
            continue  # a subcommand's parser (log trim, for log) has resolved it
        group = grouped.get(dest)
        members = [s for s in config.settings if group and s.action in group._group_actions]
        members = members or [setting]
        done.update(s.action.dest for s in members)
        flagged = [s for s in members if s.action.dest in given]
        if flagged:
            for s in members:
                sources[s.action.dest] = (
                    Source("flag", given[s.action.dest]) if s in flagged else DEFAULT
                )
            continue
        for s in members:
            sources[s.action.dest] = DEFAULT
        for kind, hits in (("env", from_env), ("file", from_file)):
            found = [(s, *hits[s.flag]) for s in members if s.flag in hits]
            if len(members) > 1:  # a group: a false switch does not choose its member
                found = [hit for hit in found if not _is_default(hit[0], hit[1])]
            if len(found) > 1:
                names = " and ".join(where for _, _, where in found)
                raise ConfigError(f"{names}: not allowed together")
            if found:
                s, value, where = found[0]
                setattr(ns, s.action.dest, value)
                sources[s.action.dest] = Source(kind, where)
                break
    if parser.check_required:
        check_required(config, ns, sources)


def _config_path(
    ns: argparse.Namespace, given: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[Path | None, Source]:
    if "config" in given:
        path: Path | None = ns.config
        return path, Source("flag", given["config"])
    raw = environ.get(CONFIG_ENV, "")
    if raw:
        ns.config = Path(raw)
        return ns.config, Source("env", CONFIG_ENV)
    return None, DEFAULT


def _from_env(environ: Mapping[str, str]) -> Any:
    def lookup(s: Setting) -> tuple[Any, str] | None:
        raw = environ.get(s.env, "")
        if raw == "" or is_service_link(s.env, raw):
            return None  # an empty variable is as good as unset
        return convert(s, raw, s.env), s.env

    return lookup


def _from_file(table: Mapping[str, Any], path: Path | None, name: str) -> Any:
    def lookup(s: Setting) -> tuple[Any, str] | None:
        for key in (s.key, s.key.replace("-", "_")):
            if key in table:
                where = f"{path} [{name}] {key}"
                return convert(s, table[key], where), where
        return None

    return lookup


def _is_default(s: Setting, value: Any) -> bool:
    return isinstance(s.action, argparse._StoreConstAction) and value == s.action.default


def check_required(
    config: CommandConfig, ns: argparse.Namespace, sources: dict[str, Source]
) -> None:
    for action in config.required:
        if getattr(ns, action.dest, None) is None:
            setting = next(s for s in config.settings if s.action is action)
            raise ConfigError(
                f"the following arguments are required: {setting.flag} (or {setting.env}, "
                f"or {setting.key} in the [{config.table}] table of the --config file)"
            )
    for group in config.required_groups:
        if all(sources.get(a.dest, DEFAULT).kind == "default" for a in group._group_actions):
            flags = " ".join(a.option_strings[-1] for a in group._group_actions)
            raise ConfigError(
                f"one of the arguments {flags} is required (as a flag, RAFTLOG_<FLAG> or "
                f"in the [{config.table}] table of the --config file)"
            )


# -- values --------------------------------------------------------------------------------


def convert(s: Setting, raw: Any, where: str) -> Any:
    """A value from the environment (a string) or the file (any TOML value) as the flag
    would have parsed it."""
    action = s.action
    try:
        if isinstance(action, argparse._StoreConstAction | argparse.BooleanOptionalAction):
            on = _boolean(raw)
            if isinstance(action, argparse.BooleanOptionalAction):
                return on
            return action.const if on else action.default
        if isinstance(action, argparse._CountAction):
            if isinstance(raw, bool):
                raise ConfigError("expected a count, not true/false")
            return int(raw)
        if isinstance(action, argparse._AppendAction) or action.nargs not in (None, "?"):
            items = raw if isinstance(raw, list) else _split(raw)
            return [_one(action, item) for item in items]
        return _one(action, raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in TRUE | FALSE:
        return raw.strip().lower() in TRUE
    raise ConfigError(f"expected true or false (1/0, yes/no, on/off), not {_quote(raw)}")


def _split(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    raise ConfigError(f"expected a list or a comma-separated string, not {_quote(raw)}")


def _one(action: argparse.Action, raw: Any) -> Any:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ConfigError(f"expected a value like {_metavar(action)}, not {_quote(raw)}")
    text = str(raw)
    value: Any = text
    if action.type is not None:
        convert_fn: Any = action.type
        try:
            value = convert_fn(text)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(str(exc)) from None
        except (TypeError, ValueError):
            name = getattr(action.type, "__name__", repr(action.type))
            raise ConfigError(f"invalid {name} value: {text!r}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"invalid choice {text!r} (choose from {choices})")
    return value


def _quote(raw: Any) -> str:
    """A value as the file or the environment wrote it."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return repr(raw)


def _metavar(action: argparse.Action) -> str:
    meta = action.metavar
    if isinstance(meta, str):
        return meta
    return action.dest.upper()


# -- the environment and the file ----------------------------------------------------------


def is_service_link(name: str, value: str) -> bool:
    """One of the variables Kubernetes sets for a service (``RAFTLOG_SERVICE_HOST``,
    ``RAFTLOG_PORT=tcp://...``): not ours, whatever its name."""
    if _K8S_NAME.search(name):
        return True
    return name.endswith("_PORT") and bool(_K8S_PORT_VALUE.match(value))


def check_environment(environ: Mapping[str, str], registry: Registry) -> None:
    """A RAFTLOG_* variable that is neither a setting of a command in scope nor one of
    the variables raftlog reads otherwise is an error (a typo must not pass unseen)."""
    known = registry.env_names() | set(NON_SETTINGS)
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known:
            continue
        if is_service_link(name, environ[name]):
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ConfigError(
            f"unknown environment variable {name}{hint}: RAFTLOG_<FLAG> sets a flag of "
            "raftlog node, cluster or a client command"
        )


def load_file(path: Path, table_name: str, registry: Registry) -> dict[str, Any]:
    """The file's table for this command (empty if it has none), after checking every
    table and key of the file."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    tables = ", ".join(f"[{t}]" for t in TABLES)
    for name, value in doc.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {name} is outside a table; settings go in {tables}")
        if name not in TABLES:
            raise ConfigError(f"{path}: unknown table [{name}] (the file has {tables})")
        keys = registry.keys(name)
        seen: dict[str, str] = {}
        for key in value:
            norm = key.replace("_", "-")
            if norm not in keys:
                near = difflib.get_close_matches(norm, sorted(keys), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                commands = ", ".join(registry.commands_of(name)) or name
                raise ConfigError(
                    f"{path} [{name}] {key}: unknown key{hint}; it takes the flags of "
                    f"raftlog {commands}"
                )
            if norm in seen:
                raise ConfigError(f"{path} [{name}]: {seen[norm]} and {key} are the same key")
            seen[norm] = key
    table: dict[str, Any] = doc.get(table_name, {})
    return {k: v for k, v in table.items()}


# -- raftlog config show ------------------------------------------------------------------


SHOW_HELP = """\
Show the settings a command would run with, each with its source: a flag, an environment
variable (RAFTLOG_<FLAG>), the config file (--config FILE or $RAFTLOG_CONFIG: a TOML file
with a table per command, [node], [cluster] and [client] for the commands that talk to a
running cluster) or the default. Flags given after COMMAND count as on that command's
command line. Secrets (settings named token, key, password) are masked.

  raftlog config show node --config /etc/raftlog.toml
  RAFTLOG_CLUSTER=10.0.0.1:1234 raftlog config show status"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "config",
        help="show the effective settings of a command and where they come from",
        description=SHOW_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_sub = p.add_subparsers(dest="config_command", metavar="{show}")
    show = config_sub.add_parser(
        "show",
        help="each setting's value and source",
        description=SHOW_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="[COMMAND] [--config FILE] [FLAG ...]",
        help="the command (default: node), then its flags",
    )
    show.add_argument("--config", type=Path, metavar="FILE", help=argparse.SUPPRESS)
    show.set_defaults(handler=run_show)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def run_show(args: argparse.Namespace) -> int:
    from raftlog.cli.main import build_parser  # noqa: PLC0415 (main imports this module)

    root = build_parser()
    rest = list(args.rest)
    if args.config is not None:  # given before COMMAND
        rest += ["--config", str(args.config)]
    target: argparse.ArgumentParser = root
    while rest and not rest[0].startswith("-"):
        subs = {
            name: p
            for a in target._actions
            if isinstance(a, argparse._SubParsersAction)
            for name, p in a.choices.items()
        }
        if rest[0] not in subs:
            break
        target = subs[rest.pop(0)]
    if target is root:
        target = next(p for p in _subparsers(root) if command_path(p) == "node")
    if not isinstance(target, ConfigArgumentParser) or target.config is None:
        in_scope = ", ".join(c.path for c in _registry(root).commands)
        print(
            f"raftlog config show: {command_path(target)} takes no settings from the "
            f"environment or a file (those that do: {in_scope})",
            file=sys.stderr,
        )
        return 2
    return show(target, rest)


def _registry(root: argparse.ArgumentParser) -> Registry:
    for sub in _subparsers(root):
        if isinstance(sub, ConfigArgumentParser) and sub.config is not None:
            assert sub.config.registry is not None
            return sub.config.registry
    return Registry()


def show(target: ConfigArgumentParser, argv: Sequence[str], out: Any = None) -> int:
    out = out or sys.stdout
    config = target.config
    assert config is not None
    positional = [a for a in target._actions if not a.option_strings and a.required]
    target.check_required = False
    for a in positional:
        a.required = False
    try:
        ns, extras = target.parse_known_args(list(argv))
    finally:
        target.check_required = True
        for a in positional:
            a.required = True
    if extras:
        print(
            f"raftlog config show: not flags of {config.path}: {' '.join(extras)}", file=sys.stderr
        )
        return 2
    sources: dict[str, Source] = ns._config_sources
    path, path_source = ns._config_file
    file_text = f"{path} ({path_source.describe()})" if path else "none"
    print(f"raftlog {config.path}: flag > environment > file > default", file=out)
    print(f"config file: {file_text}; table [{config.table}]", file=out)
    missing = []
    rows = []
    for s in config.settings:
        value = getattr(ns, s.action.dest, None)
        source = sources.get(s.action.dest, DEFAULT)
        text = _render(value)
        if s.secret and value not in (None, "", []):
            text = "********"
        if s.action in config.required and value is None:
            missing.append(s.flag)
            text = "(required, not set)"
        rows.append((s.key, text, source.describe()))
    width = max(len(r[0]) for r in rows)
    vwidth = min(max(len(r[1]) for r in rows), 40)
    for key, text, where in rows:
        print(f"  {key:<{width}}  {text:<{vwidth}}  {where}", file=out)
    for group in config.required_groups:
        if all(sources.get(a.dest, DEFAULT).kind == "default" for a in group._group_actions):
            missing.append(" or ".join(a.option_strings[-1] for a in group._group_actions))
    if missing:
        print(f"missing: {', '.join(missing)}", file=out)
    return 0


def _render(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if value else "-"
    return str(value)
