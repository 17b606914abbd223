# --- shared by the maintainer scripts (build-deb.sh pastes this in) ---------
PDAGENT_UNIT=/lib/systemd/system/pdagent.service
PDAGENT_PID_FILE=/var/run/pdagent/pdagentd.pid
PDAGENT_PYTHON_DIR=/usr/lib/python3/dist-packages/pdagent
# The launchers' interpreter (not whatever python3 comes first in PATH).
PDAGENT_PYTHON=/usr/bin/python3
# Proxy lines of the unit kept across an upgrade (see the preinst).
PDAGENT_SAVED_ENVIRONMENT=/var/lib/pdagent/.unit-proxy-environment
PDAGENT_PROXY_LINE='^[[:space:]]*Environment=.*(http|https|ftp|no|all)_proxy='

# True while process $1 exists and is not a zombie.
pdagent_alive() {
    case "$(grep '^State:' "/proc/$1/status" 2>/dev/null)" in
        ''|*Z*|*X*) return 1 ;;
    esac
    return 0
}

pdagent_systemd_running() {
    [ -d /run/systemd/system ]
}

# The pid of a running pdagentd from its pid file (original agent's or ours).
pdagent_running_pid() {
    [ -r "$PDAGENT_PID_FILE" ] || return 1
    pid=$(head -n 1 "$PDAGENT_PID_FILE" 2>/dev/null | tr -d ' \t\r')
    case "$pid" in
        ''|*[!0-9]*) return 1 ;;
    esac
    case "$(tr '\000' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in
        *pdagentd*) echo "$pid"; return 0 ;;
    esac
    return 1
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
