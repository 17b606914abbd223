"""Monitoring-tool integrations: pd-nagios, pd-zabbix and pd-sensu.

Each turns what its monitor passes (Nagios macros, a Zabbix alert message, a
Sensu event on stdin) into an Events API v2 alert, with the monitor's state as
the event's severity, and queues it like pd-send does; pdagentd delivers it.
They keep the command lines the original agent's integrations took, so the
monitor's configuration need not change.
"""
