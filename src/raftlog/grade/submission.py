"""What to run for a submission: its node command, its directory, its timings.

A submission is a directory. Its node command is, in order:

1. ``--node-cmd`` if given (``{id}``, ``{name}``, ``{data}``, ``{python}`` are replaced);
2. ``{python} node.py {id}`` if it holds ``node.py`` (``{python}``: the interpreter
   running raftlog, in place of the container's ``python3``);
3. the ``command`` (after any ``entrypoint``) of the compose file's ``node_1`` service,
   with ``node_1`` and a lone ``1`` turned into ``{name}`` and ``{id}``, and ``python`` or
   ``python3`` into ``{python}``; node_2's and node_3's commands must then follow from it.

``--timings auto`` scales the lab's timings down when the submission reads
:data:`~raftlog.grade.model.SCALE_ENV` (its name, or an import of the reference node,
appears in one of its ``.py`` files), and keeps the lab's otherwise.
"""

from __future__ import annotations

import importlib
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from raftlog.grade.model import SCALE_ENV, Timings
from raftlog.grade.reference import DIRECTORY as REFERENCE_DIR

COMPOSE_NAMES: Final = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")
AUTO_SCALE: Final = 0.1
"""The scale ``--timings auto`` uses for a submission that reads SCALE_ENV."""
MAX_SOURCE_BYTES: Final = 1 << 20
REFERENCE_MODULE: Final = "raftlog.grade.reference"
"""A node built on the reference node (the tests' broken variants) reads SCALE_ENV."""


class SubmissionError(Exception):
    """The directory cannot be graded as it is (the message says why and what to do)."""


@dataclass(frozen=True)
class Submission:
    name: str
    directory: Path
    command: str
    source: str
    """Where the command came from (``node.py``, a compose file, ``--node-cmd``, ...)."""
    copy: bool = True
    """Run each node in its own copy of ``directory`` (as each container has its own
    file system)."""
    env: dict[str, str] = field(default_factory=dict)

    def honours_scale(self) -> bool:
        """Does a ``.py`` file of it mention SCALE_ENV, or import the reference node (which
        reads it)?"""
        if self.source == "raftlog":
            return True
        for path in sorted(self.directory.rglob("*.py"))[:200]:
            try:
                if path.stat().st_size > MAX_SOURCE_BYTES:
                    continue
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if SCALE_ENV in text or REFERENCE_MODULE in text:
                return True
        return False


def find(directory: Path, node_cmd: str | None = None) -> Submission:
    directory = directory.resolve()
    if not directory.is_dir():
        raise SubmissionError(f"{directory} is not a directory")
    name = directory.name
    if node_cmd:
        return Submission(name, directory, node_cmd, "--node-cmd")
    if (directory / "node.py").is_file():
        return Submission(name, directory, "{python} node.py {id}", "node.py")
    for compose in COMPOSE_NAMES:
        if (directory / compose).is_file():
            command = command_from_compose(directory / compose)
            return Submission(name, directory, command, compose)
    raise SubmissionError(
        f"{directory} has neither node.py nor a compose file ({', '.join(COMPOSE_NAMES)}); "
        "give the command with --node-cmd, e.g. --node-cmd 'python3 mynode.py {id}'"
    )


def reference() -> Submission:
    """The bundled reference lab node (``raftlog grade --reference``)."""
    return Submission("reference", REFERENCE_DIR, "{python} node.py {id}", "reference")


def raftlog_nodes(timings: Timings) -> Submission:
    """raftlog's own node as a submission (``raftlog grade --raftlog``): its timings
    flags set from ``timings``, heartbeats logged (``--log-level debug``)."""
    low, high, beat = timings.election_low, timings.election_high, timings.heartbeat
    command = (
        "{python} -m raftlog node --id {id} "
        "--peers 1=node_1:4321,2=node_2:4321,3=node_3:4321 --data-dir {data} "
        f"--client-port 1234 --election-timeout {low:g}-{high:g} --heartbeat {beat:g} "
        "--log-level debug --color never"
    )
    empty = Path(tempfile.gettempdir())
    return Submission("raftlog", empty, command, "raftlog", copy=False)


def parse_timings(text: str) -> float | None:
    """``lab`` -> 1.0, a factor in (0, 1] -> it, ``auto`` -> None (decided later)."""
    value = text.strip().lower()
    if value == "lab":
        return 1.0
    if value == "auto":
        return None
    try:
        scale = float(value.removeprefix("x"))
    except ValueError:
        raise SubmissionError(
            f"--timings takes lab, auto or a factor such as 0.1, not {text!r}"
        ) from None
    if not 0.01 <= scale <= 1:
        raise SubmissionError(f"a timings factor lies in 0.01..1, not {scale:g}")
    return scale


# --------------------------------------------------------------------------- compose


def _words(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise SubmissionError(f"{what} is neither a string nor a list of strings")


def _service(services: dict[str, Any], i: int) -> dict[str, Any] | None:
    name = f"node_{i}"
    for key, svc in services.items():
        if not isinstance(svc, dict):
            continue
        if name in (key, svc.get("container_name"), svc.get("hostname")):
            return svc
    return None


def _template(words: list[str], i: int) -> list[str]:
    out = []
    for w in words:
        if w in ("python", "python3"):
            out.append("{python}")
        elif w == str(i):
            out.append("{id}")
        else:
            out.append(w.replace(f"node_{i}", "{name}"))
    return out


def command_from_compose(path: Path) -> str:
    """The node command of a compose file's ``node_1`` (see the module's docstring)."""
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        raise SubmissionError(
            f"reading {path.name} needs PyYAML (pip install pyyaml), or give --node-cmd"
        ) from None
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SubmissionError(f"cannot read {path}: {exc}") from None
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict):
        raise SubmissionError(f"{path.name} has no services")
    templates = {}
    for i in (1, 2, 3):
        svc = _service(services, i)
        if svc is None:
            raise SubmissionError(f"{path.name} has no service node_{i}; give --node-cmd")
        words = _words(svc.get("entrypoint"), f"node_{i}'s entrypoint") + _words(
            svc.get("command"), f"node_{i}'s command"
        )
        if not words:
            raise SubmissionError(
                f"{path.name}: node_{i} has no command (the image's CMD is not read); "
                "give --node-cmd"
            )
        templates[i] = _template(words, i)
    if not templates[1] == templates[2] == templates[3]:
        raise SubmissionError(
            f"{path.name}: the nodes' commands differ beyond their number "
            f"({[shlex.join(t) for t in templates.values()]}); give --node-cmd"
        )
    return shlex.join(templates[1])
