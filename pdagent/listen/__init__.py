"""pd-listen: a local Events API. Tools that POST to PagerDuty post here instead and get the spool.

- http.py: HTTP/1.1 requests parsed from bytes and answers written as bytes (no sockets).
- api.py: a parsed request -> an answer, through the one enqueue path pd-send uses.
- server.py: the connections: one selector loop, bounded connections, timeouts, a few enqueue threads.
- sockets.py: the listening sockets (TCP, Unix) and how the log names a client.
- settings.py: the listen_* keys of the shared config file.
"""
