"""`pd-queue check`, the Nagios/Icinga/Sensu plugin, against a running daemon and the stand-in.

OK while events are delivered; WARNING for a backlog past --warning-age and for
events in error; CRITICAL past --critical-age and whenever no pdagentd of the
spool's owner runs (no pid file, a stale one, one naming another process);
UNKNOWN when the spool cannot be read (a user outside the daemon's group, who
is then told how to get access) or the command line is wrong. One line on
stdout, the plugin API's exit codes, and performance data as the Nagios plugin
guidelines write it (checked token by token).
"""

import os
import re
import subprocess
import sys
import time

import pytest
from helpers import (
    aged,
    as_user,
    assert_usage_error,
    command,
    kill_daemon,
    routing_key,
    send,
    start_daemon,
    stop_daemon,
    wait_for,
    write_pid_file,
    write_saved_state,
)

KEY_OK, KEY_SLOW, KEY_BAD = routing_key(1), routing_key(2), routing_key(3)
# 'label'=value[UOM];[warn];[crit];[min];[max], trailing fields may be left out.
PERFDATA = re.compile(r"^([a-z_]+)=(\d+(?:\.\d)?|U)(s|c)?((?:;\d*){0,4})$")


def check(agent, *args, user=None, env=None):
    """(exit code, text before the perfdata, {label: (value, unit, [warn, crit, min, max])});
    a value of U ("cannot tell") is None."""
    result = agent.queue("check", *args, user=user, env=env)
    assert result.stderr == "", result.stderr
    [line] = result.stdout.splitlines()
    text, bar, perf = line.partition(" | ")
    perfdata = {}
    for token in perf.split(" ") if bar else []:
        match = PERFDATA.match(token)
        assert match, token
        fields = match.group(4).split(";")[1:]
        value = None if match.group(2) == "U" else float(match.group(2)) if "." in match.group(2) \
            else int(match.group(2))
        perfdata[match.group(1)] = (value, match.group(3) or "", fields + [""] * (4 - len(fields)))
    return result.returncode, text, perfdata


def until_check(agent, wanted, *args):
    """The check's answer once `wanted(code, text, perfdata)` holds (the daemon saves its
    counters and back-offs within a second)."""
    def answered():
        answer = check(agent, *args)
        return answer if wanted(*answer) else None
    return wait_for(answered, timeout=20, message=f"pd-queue check {' '.join(args)}")


def test_ok_while_the_daemon_delivers(agent, standin):
    pid = start_daemon(agent)
    for number in range(2):
        send(agent, KEY_OK, f"ok-{number}")
    code, text, perfdata = until_check(agent, lambda code, text, perf: perf["delivered"][0] == 2)
    assert (code, text) == (0, f"PDAGENT OK - pdagentd running (pid {pid}); 0 pending; 0 in error")
    saved_age, unit, thresholds = perfdata.pop("counters_saved_age")
    assert saved_age >= 0 and (unit, thresholds) == ("s", ["", "", "", ""])
    assert perfdata == {"pending": (0, "", ["", "", "0", ""]),
                        "oldest_pending_age": (0, "s", ["300", "900", "0", ""]),
                        "error": (0, "", ["0", "", "0", ""]),  # a range: warn above 0
                        "backed_off_keys": (0, "", ["", "", "0", ""]),
                        "delivered": (2, "c", ["", "", "", ""]),
                        "failed": (0, "c", ["", "", "", ""])}


def test_a_backlog_warns_then_is_critical_and_other_keys_go_on(agent, standin):
    """Ages are how long an event has waited in pdq/ (seen from later on: faketime)."""
    agent.configure(retry_limit_for_possible_errors=1000)
    standin.set_faults([{"match": {"routing_key": KEY_SLOW}, "status": 503, "times": -1}])
    pid = start_daemon(agent)
    send(agent, KEY_SLOW, "slow-1")
    code, text, perfdata = until_check(agent, lambda code, text, perf: perf["backed_off_keys"][0] == 1)
    assert code == 0 and text.endswith("; 1 key(s) backed off")
    code, text, perfdata = check(agent, env=aged(agent, 400))
    age = perfdata["oldest_pending_age"][0]
    assert 400 <= age < 460 and code == 1
    assert text == (f"PDAGENT WARNING - pdagentd running (pid {pid}); 1 pending, the oldest {age} s old "
                    "(warning over 300 s); 0 in error")
    assert perfdata["pending"][0] == 1

    send(agent, KEY_OK, "ok-1")  # another key is not held up
    wait_for(lambda: standin.bodies(KEY_OK), message="the other key's event")
    code, text, _ = check(agent, "--warning-age", "500", "--critical-age", "600", env=aged(agent, 400))
    assert code == 0 and "1 pending, the oldest" in text and "(warning" not in text

    send(agent, KEY_SLOW, "slow-2")
    code, text, perfdata = check(agent, env=aged(agent, 1000))
    assert code == 2 and perfdata["pending"][0] == 2
    assert f"2 pending, the oldest {perfdata['oldest_pending_age'][0]} s old (critical over 900 s)" in text
    code, text, perfdata = check(agent, "--warning-age", "1200", "--critical-age", "3600", env=aged(agent, 1000))
    assert code == 0 and perfdata["oldest_pending_age"][2][:2] == ["1200", "3600"]


def test_events_in_error_warn_until_discarded(agent, standin):
    standin.set_faults([{"match": {"routing_key": KEY_BAD}, "status": 400, "times": -1}])
    pid = start_daemon(agent)
    send(agent, KEY_BAD, "rejected-1")
    code, text, perfdata = until_check(agent, lambda code, text, perf: perf["failed"][0] == 1)
    assert code == 1
    assert text == f"PDAGENT WARNING - pdagentd running (pid {pid}); 0 pending; 1 in error (pd-queue list --state error)"
    assert perfdata["error"] == (1, "", ["0", "", "0", ""])
    code, text, perfdata = check(agent, "--error-warning", "2")
    assert code == 0 and text.endswith("; 1 in error") and perfdata["error"][2][0] == "1"
    code, _, perfdata = check(agent, "--error-warning", "0")  # never
    assert code == 0 and perfdata["error"][2][0] == ""

    assert agent.queue("discard", "-k", KEY_BAD).stdout == "1 event(s) discarded.\n"
    code, text, perfdata = check(agent)
    assert code == 0 and text.endswith("; 0 in error") and perfdata["failed"] == (1, "c", ["", "", "", ""])


def test_no_pdagentd_of_the_spools_owner_is_critical(agent, standin, agent_home):
    pid_file = os.path.join(agent.pid_dir, "pdagentd.pid")
    send(agent, KEY_OK, "queued-1")
    code, text, perfdata = check(agent)
    assert code == 2 and perfdata["pending"][0] == 1
    assert text.startswith(f"PDAGENT CRITICAL - pdagentd is not running: no {pid_file}; 1 pending, the oldest ")

    start_daemon(agent)
    wait_for(lambda: standin.bodies(KEY_OK), message="the queued event")
    assert check(agent)[0] == 0
    stop_daemon(agent)  # a clean stop takes its pid file along
    code, text, _ = check(agent)
    assert (code, text) == (2, f"PDAGENT CRITICAL - pdagentd is not running: no {pid_file}; 0 pending; 0 in error")

    killed = start_daemon(agent)
    kill_daemon(agent)  # leaves the pid file
    user = agent_user_name(agent)
    assert check(agent)[1].startswith(
        f"PDAGENT CRITICAL - pdagentd is not running: pid {killed} in {pid_file} is not a pdagentd of {user};")

    # The pid file names a process that is not the daemon: another of the owner's programs,
    # or root's process running a script named pdagentd; or it is a link to the daemon's.
    look_alike = os.path.join(agent_home, "pdagentd")
    with open(look_alike, "w") as script:
        script.write("import time\ntime.sleep(60)\n")
    others = [subprocess.Popen(as_user(agent.uid, agent.gid, ["sleep", "60"])),
              subprocess.Popen([sys.executable, look_alike])]
    try:
        for process in others:
            cmdline = f"/proc/{process.pid}/cmdline"
            wait_for(lambda: b"setpriv" not in read_bytes(cmdline), message="setpriv to exec")  # noqa: B023
            write_pid_file(agent, process.pid)
            code, text, _ = check(agent)
            assert code == 2 and f"pid {process.pid} in {pid_file} is not a pdagentd of {user};" in text
    finally:
        for process in others:
            process.kill()
            process.wait()
    daemon = start_daemon(agent)
    os.rename(pid_file, pid_file + ".real")
    os.symlink(pid_file + ".real", pid_file)
    code, text, _ = check(agent)
    assert code == 2 and f"pdagentd is not running: pid file {pid_file}: a symbolic link; not followed" in text
    os.unlink(pid_file)
    os.rename(pid_file + ".real", pid_file)
    code, text, _ = check(agent)
    assert code == 0 and f"pdagentd running (pid {daemon})" in text


def test_a_user_outside_the_daemons_group_is_told_how_to_get_access(agent, standin, other_user):
    """UNKNOWN, with the group to join; in that group (as `adduser` would make it) the
    same user gets the real answer: the spool and the pid directory are group-readable."""
    import grp
    import pwd
    pid = start_daemon(agent)
    send(agent, KEY_OK, "ok-1")
    wait_for(lambda: standin.bodies(KEY_OK), message="the event")
    group = grp.getgrgid(agent.gid).gr_name
    name = pwd.getpwuid(other_user[0]).pw_name
    code, text, perfdata = check(agent, user=other_user)
    assert (code, perfdata) == (3, {})
    assert text == (f"PDAGENT UNKNOWN - cannot list {agent.outqueue}/pdq: Permission denied (add {name} "
                    f"to the group {group} that may read the spool: adduser {name} {group})")

    result = as_group_member(agent, other_user, "check")
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert result.stdout.startswith(f"PDAGENT OK - pdagentd running (pid {pid}); 0 pending; 0 in error | ")


def test_the_counters_say_how_long_ago_they_were_saved(offline_agent):
    """The daemon saves its counters after the fact: the check says how old the figure is."""
    assert check(offline_agent)[2]["counters_saved_age"] == (None, "", ["", "", "", ""])  # never saved: U
    path = write_saved_state(offline_agent, delivered=7, saved_secs_ago=100)
    perfdata = check(offline_agent)[2]
    assert perfdata["delivered"][0] == 7
    saved_age, unit, _ = perfdata["counters_saved_age"]
    assert 100 <= saved_age < 160 and unit == "s"
    os.rename(path, path + ".real")
    os.symlink(path + ".real", path)  # not the daemon's file: no age read through a link
    assert check(offline_agent)[2]["counters_saved_age"][0] is None


def test_a_daemon_the_user_cannot_see_is_unknown_not_down(agent, standin, other_user):
    """A monitoring user in the daemon's group who may not read the pid file, or from whom
    /proc hides the daemon (hidepid), gets UNKNOWN with the reason, and the queue's state
    and performance data; metrics leave out pdagent_daemon_up and say it is not known."""
    import pwd
    pid = start_daemon(agent)
    send(agent, KEY_OK, "ok-1")
    wait_for(lambda: standin.bodies(KEY_OK), message="the event")
    pid_file = os.path.join(agent.pid_dir, "pdagentd.pid")
    name = pwd.getpwuid(other_user[0]).pw_name
    os.chmod(pid_file, 0o600)  # the daemon's account may make its pid file private

    result = as_group_member(agent, other_user, "check")
    text, _, perfdata = result.stdout.partition(" | ")
    assert (result.returncode, result.stderr) == (3, ""), result.stdout
    assert text == (f"PDAGENT UNKNOWN - cannot tell whether pdagentd is running: pid file {pid_file}: "
                    f"cannot open: Permission denied (add {name} to the group {agent_group(agent)} that may "
                    "read the spool: adduser {name} {group}); 0 pending; 0 in error"
                    .format(name=name, group=agent_group(agent)))
    assert perfdata.startswith("pending=0;;;0 oldest_pending_age=0s;300;900;0 ")
    result = as_group_member(agent, other_user, "metrics")
    assert (result.returncode, daemon_samples(result)) == (0, ["pdagent_daemon_up_known 0"])
    assert result.stderr == (f"pd-queue: cannot tell whether pdagentd is running: pid file {pid_file}: "
                             "cannot open: Permission denied\n")

    os.chmod(pid_file, 0o640)
    hidden = as_group_member(agent, other_user, "check", hide_processes=True)
    assert hidden.returncode == 3, hidden.stdout
    assert hidden.stdout.startswith(f"PDAGENT UNKNOWN - cannot tell whether pdagentd is running: pid {pid} in "
                                    f"{pid_file} is a process /proc does not show {name}; 0 pending; 0 in error | ")
    result = as_group_member(agent, other_user, "metrics", hide_processes=True)
    assert (result.returncode, daemon_samples(result)) == (0, ["pdagent_daemon_up_known 0"])

    # What can be seen still counts: with the pid file readable, the same user sees it run,
    # and a stopped daemon is CRITICAL even where /proc hides other users' processes.
    assert as_group_member(agent, other_user, "check").returncode == 0
    stop_daemon(agent)
    stopped = as_group_member(agent, other_user, "check", hide_processes=True)
    assert stopped.returncode == 2, stopped.stdout
    assert stopped.stdout.startswith(f"PDAGENT CRITICAL - pdagentd is not running: no {pid_file}; ")
    result = as_group_member(agent, other_user, "metrics")
    assert daemon_samples(result) == ["pdagent_daemon_up 0", "pdagent_daemon_up_known 1"]


def as_group_member(agent, user, *argv, hide_processes=False):
    """pd-queue as `user` in the daemon's group (as `adduser` makes a monitoring user); with
    `hide_processes`, in a mount namespace whose /proc shows other users' processes to nobody
    (hidepid=invisible, as hardened hosts mount it)."""
    in_group = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", f"--groups={agent.gid}", "--"]
    argv = in_group + command("pd-queue") + list(argv)
    if hide_processes:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t proc -o hidepid=invisible proc /proc && exec "$@"', "sh"] + argv
    return subprocess.run(argv, capture_output=True, text=True, env=agent.env(), timeout=30, check=False)


def daemon_samples(result):
    """The samples of pdagent_daemon_up and pdagent_daemon_up_known in `pd-queue metrics`' output."""
    return [line for line in result.stdout.splitlines() if line.startswith("pdagent_daemon_up")]


def agent_group(agent):
    import grp
    return grp.getgrgid(agent.gid).gr_name


@pytest.mark.parametrize("args", [["--warning-age", "soon"], ["--critical-age", "-1"], ["--bogus"]])
def test_a_wrong_command_line_is_unknown(offline_agent, args):
    result = offline_agent.queue("check", *args)
    line = assert_usage_error(result, "pd-queue", "", status=3)
    assert line.startswith("pd-queue check: error: ")


def test_a_config_it_cannot_read_is_unknown(offline_agent):
    missing = os.path.join(offline_agent.base, "missing.conf")
    code, text, perfdata = check(offline_agent, env=offline_agent.env(PDAGENT_CONFIG=missing))
    assert (code, perfdata) == (3, {}) and text.startswith("PDAGENT UNKNOWN - ") and missing in text


def agent_user_name(agent):
    import pwd
    return pwd.getpwuid(agent.uid).pw_name


def read_bytes(path):
    with open(path, "rb") as source:
        return source.read()


def test_a_delivery_shows_in_the_counters_within_a_second(agent, standin):
    """A health check run right after a test page sees it delivered (the daemon saves its
    counters at most a second after they change, not at its next timer)."""
    agent.configure(send_interval_secs=30)
    start_daemon(agent)
    time.sleep(1.5)  # past the save at start-up
    send(agent, KEY_OK, "test-page")
    wait_for(lambda: standin.bodies(KEY_OK), message="the test page at the stand-in")
    wait_for(lambda: check(agent)[2]["delivered"][0] == 1, timeout=1.5, message="delivered=1 in the check")
