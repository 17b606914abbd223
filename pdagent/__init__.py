"""pdagent: queue PagerDuty events on local disk and deliver them to the Events API v2.

The path an event takes, one home each:
    event.py       build and validate a v2 event (or convert an original-agent v1 one)
    enqueue.py     the one queueing path: pd-send, pd-listen, the integrations, the library
    spool/         the crash-safe disk queue (outqueue/{tmp,pdq,suc,err}); writer.py writes
    delivery/      the sender: which key next (schedule.py), what is pending (index.py),
                   the threads (engine.py), moving files on (commit.py)
    events_api.py  one HTTP POST to the Events API, and what its answer means (outcome.py)
    daemon.py      the pdagentd process around the engine

This module stays tiny: pd-send imports it on every call.
"""

__version__ = "2.0.0"
