"""Test support that other packages' tests share (like trio.testing): the Ready contract
checker (:mod:`.contract`) and waiting for a condition with a deadline (:mod:`.waiting`:
``eventually`` and its async twin)."""
