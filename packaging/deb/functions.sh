# --- shared by the maintainer scripts (build-deb.sh pastes this in, after the
# helpers it takes from pdagent.init and the proxy-line helpers in unit-proxy.sh)
PDAGENT_UNIT=/lib/systemd/system/pdagent.service
PDAGENT_PID_FILE=/var/run/pdagent/pdagentd.pid
PDAGENT_PYTHON_DIR=/usr/lib/python3/dist-packages/pdagent
# The launchers' interpreter (not whatever python3 comes first in PATH).
PDAGENT_PYTHON=/usr/bin/python3

pdagent_systemd_running() {
    [ -d /run/systemd/system ]
}

# The pid of a running pdagentd from its pid file, running as pdagent
# (pdagent_daemon_pid, pasted in from the init script): started as
# /usr/share/pdagent/bin/pdagentd.py (this package's unit and init script, and
# the original agent's), as /usr/bin/pdagentd (earlier versions of this
# package), or as /usr/bin/pdagentd.py (the original agent's first versions).
pdagent_running_pid() {
    pdagent_daemon_pid "$PDAGENT_PID_FILE" pdagent /usr/share/pdagent/bin/pdagentd.py \
        /usr/bin/pdagentd /usr/bin/pdagentd.py
}

# Stops the daemon through the init system, then makes sure it is gone: a
# daemon left running (a policy-rc.d that forbids stopping, or the original
# agent's scripts) would run code that is being replaced or removed.
pdagent_stop() {
    if pdagent_systemd_running; then
        deb-systemd-invoke stop pdagent.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/pdagent ]; then
        invoke-rc.d pdagent stop >/dev/null 2>&1 || true
    fi
    left=$(pdagent_running_pid) || return 0
    echo "pdagent: stopping pdagentd (pid $left)" >&2
    kill -TERM "$left" 2>/dev/null || return 0
    tries=0
    while pdagent_alive "$left" && [ "$tries" -lt 30 ]; do
        sleep 0.5
        tries=$((tries + 1))
    done
    if pdagent_alive "$left"; then
        echo "pdagent: pdagentd did not stop within 15 s; killing it (queued events are kept)" >&2
        kill -KILL "$left" 2>/dev/null || true
        tries=0
        while pdagent_alive "$left" && [ "$tries" -lt 20 ]; do
            sleep 0.5
            tries=$((tries + 1))
        done
    fi
    rm -f "$PDAGENT_PID_FILE"
}
# --- end of the shared part ---------------------------------------------------
