"""pdagent: queue PagerDuty events on local disk and deliver them to the Events API v2.

The path an event takes, one module each:
    event.py   build and validate a v2 event (or convert an original-agent v1 one)
    spool.py   the crash-safe disk queue (outqueue/{tmp,pdq,suc,err})
    sender.py  one HTTP POST to the Events API and what its answer means
    delivery.py  the engine: per-key order, back-off, pacing, moving files on
    daemon.py  the pdagentd process around the engine

This module stays tiny: pd-send imports it on every call.
"""

__version__ = "2.0.0"
