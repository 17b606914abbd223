"""The sender step: pending events out of the spool, through the Events API, into suc/ or err/.

Rules the modules below keep together:
- A file leaves pdq/ only after the Events API answered: 2xx -> suc/, a
  rejection -> err/ (with the reason). Anything else leaves it in pdq/ and
  backs the key off (events_api.py says which answer means what).
- A move out of pdq/ is durable before the key's next event is sent: the
  key waits (SYNCING) while the syncer thread fsyncs the target folder, then
  pdq/, once for every move made meanwhile (a group commit, started when few
  other keys are ready or after 20 ms: they go on sending meanwhile). A
  power cut so repeats at most the last event of each key.
- With the default `send_concurrency = 1` one event is in flight at a time,
  so a crash (kill -9) can make at most one event be sent twice.
- Every in-memory deadline is on the monotonic clock; wall time is only
  saved (state.json) and shown.
- One lock guards the schedule (guard.py), with a condition senders wait
  on; no thread holds it while it waits for the queue lock, a POST, an
  fsync or a listing.

One module per part, each with one reason to change:
    schedule.py      which key sends next and when (pure; pending.py holds
                     each key's events)
    index.py         what is pending: inotify, rescans, one lstat per entry
    engine.py        the main loop and the sender threads: take a job, send,
                     hand the outcome on
    commit.py        acting on an outcome's file: moves under the queue lock,
                     the fsync batches
    housekeeping.py  state.json saved and restored (restart.py: what of the
                     schedule it keeps); suc/, err/, tmp/ cleaned
"""
