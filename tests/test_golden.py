"""Golden scenario scripts (tests/golden/*.txt), in the style of etcd's datadriven tests.

Each script is a list of blocks: one command for the hand-driven cluster of
:mod:`raftlog.sim.harness`, a ``----`` line, and the event lines it must produce. Run
``pytest tests/test_golden.py --update-golden`` to rewrite the files from the actual output
(then read the diff: a golden file is only as good as the review of its changes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raftlog.sim.harness import ScriptError, parse_script, render_script, run_script

GOLDEN = Path(__file__).parent / "golden"
SCRIPTS = sorted(GOLDEN.glob("*.txt"))


def test_there_are_golden_scripts() -> None:
    assert len(SCRIPTS) >= 8, SCRIPTS


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_golden(path: Path, request: pytest.FixtureRequest) -> None:
    text = path.read_text()
    blocks, outputs = run_script(text)
    if request.config.getoption("--update-golden"):
        header = [line for line in text.splitlines() if line.startswith("#")]
        # Keep comment lines that precede the first block only.
        first_block = blocks[0].line if blocks else len(text.splitlines()) + 1
        header = [
            line
            for i, line in enumerate(text.splitlines(), 1)
            if i < first_block and line.startswith("#")
        ]
        path.write_text(
            render_script(
                header, [(b.command, out) for b, out in zip(blocks, outputs, strict=True)]
            )
        )
        return
    for block, output in zip(blocks, outputs, strict=True):
        assert output == block.expected, (
            f"{path.name}:{block.line}: {block.command!r} produced:\n"
            + "\n".join(output)
            + "\n(run pytest --update-golden to accept, after reading the diff)"
        )


def test_golden_parser_rejects_a_block_without_separator() -> None:
    with pytest.raises(ScriptError, match="expected '----'"):
        parse_script("campaign 1\nstabilize\n")


def test_golden_comparison_catches_a_changed_line() -> None:
    script = (GOLDEN / "election.txt").read_text()
    tampered = script.replace(
        "Received 2 votes. State: Leader", "Received 3 votes. State: Leader", 1
    )
    assert tampered != script
    blocks, outputs = run_script(tampered)
    assert any(o != b.expected for b, o in zip(blocks, outputs, strict=True))
