"""``raftlog bench``: measure the server, side by side with etcd and PySyncObj.

- :mod:`raftlog.bench.load`: the load generator (``wrk`` when present, otherwise processes
  of this package's own that are not the bottleneck), with its own CPU use reported;
- :mod:`raftlog.bench.systems`: the systems measured (a raftlog cluster, an etcd cluster)
  behind one small interface: start, the write URL and body, kill the leader, stop;
- :mod:`raftlog.bench.library`: appends in-process (raftlog's embedding API; PySyncObj in
  a virtualenv of its own, since it is not a dependency);
- :mod:`raftlog.bench.suite`: the workloads, the results table with ratios, JSON, chart.
"""
