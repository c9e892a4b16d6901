"""``raftlog chaos``: a Jepsen-style test of a real cluster, and its report."""
