"""`python -m raftlog` runs the command-line interface."""

from raftlog.cli.main import main

raise SystemExit(main())
