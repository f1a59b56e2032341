"""Building: running each feature's ``compute`` on what its increment says is missing or stale.

- :mod:`strata.build.runner` walks the graph, resolves, batches, writes and records failures;
- :mod:`strata.build.worker` is what runs on a batch, in this process, a pool worker or Ray;
- :mod:`strata.build.ray` sends batches to Ray (imported only when a build uses it);
- :mod:`strata.build.lock` keeps two builds off one store.
"""
