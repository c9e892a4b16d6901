"""Test support that other packages' tests share (like trio.testing)."""
