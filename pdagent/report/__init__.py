"""What pd-queue reports, one module per report (read-only: nothing here writes):
    snapshot.py       the counts, ages, saved state and origins the reports share
    status.py         `status` (the original's table, --json) and `list`
    daemon_status.py  whether pdagentd runs, or that it cannot be told
    check.py          `check`, the monitoring plugin
    metrics.py        `metrics`, the Prometheus text format
"""
