"""Scale-out on Ray (an optional extra, ``pip install 'autonoma[ray]'``; docs/scale-out.md).

Developer and QA agents run as Ray actors on a cluster's nodes; the journal, the
orchestrator, the governor and the merge queue stay in the process of ``autonoma start``.

- `connect`: the only place that imports Ray at start-up, and only with a cluster asked for.
- `bundle`: a repository's state as bytes (a ``git bundle`` and a patch of what is not
  committed) and back; plain git, no Ray.
- `node`: what runs on a node: a clone of its own, the same `Turn` as a local agent.
- `link`: the pykka actor in the crew supervisor that stands for one remote agent.

Dependencies point one way: link -> node -> bundle; only connect and link import Ray.
The node reuses the agents' `Turn` and the workflow's set-up runner and confinement
(leaf modules); workflow reaches this package only through `connect` (run.py) and
`link` (crew.py), each imported only with a cluster asked for.
"""
