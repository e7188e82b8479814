"""Engines: `analytical` (closed forms over the fold arrays) and `event` (simpy, the reference).

The event engine (and simpy) is imported only when it is used.
"""

#: engine name -> version (bump a version when its figures change)
ENGINES = {"analytical": "0.2", "event": "0.2"}
