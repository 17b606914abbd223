"""Security: other local users, routing keys in logs, root, and TLS verification that cannot be switched off.

- A local user who is neither root nor the daemon's user can queue events but
  cannot list the spool or read anyone's events, the state or the log.
- No routing key appears whole in the daemon's log (or its stderr), after a
  run with every kind of error.
- pdagentd refuses to run as root.
- There is no option that turns TLS verification off (the config loader
  refuses any key for it), and no environment variable that does.
"""

import os
import shutil
import stat
import subprocess
import tempfile

import helpers
import pytest
from helpers import StandIn, assert_usage_error, command, routing_key, wait_for

KEY = routing_key(1000)


def _as_other(argv, agent):
    user = helpers.ensure_user(helpers.SECOND_USER)
    return subprocess.run(helpers.as_user(*user, argv), env=agent.env(), capture_output=True, text=True,
                          timeout=30, check=False)


def test_other_users_cannot_read_or_list(agent, standin, daemon_user):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as other users")
    standin.set_faults([{"match": {"dedup_key": "refused"}, "status": 400, "times": -1},
                        {"match": {"dedup_key": "pending"}, "status": 503, "times": -1}])
    helpers.start_daemon(agent)
    delivered = helpers.send(agent, KEY, "delivered", user=daemon_user)
    refused = helpers.send(agent, KEY, "refused", user=daemon_user)
    pending = helpers.send(agent, routing_key(1001), "pending", user=daemon_user)
    wait_for(lambda: helpers.where(agent, delivered) == "suc" and helpers.where(agent, refused) == "err",
             message="one event delivered, one refused")
    helpers.stop_daemon(agent)  # its state and log are written

    # The other user may queue: the spool is a drop box.
    mine = helpers.send(agent, routing_key(1002), "other-user", user=helpers.ensure_user(helpers.SECOND_USER))

    data = agent.data_dir
    for directory in ("pdq", "suc", "err", "tmp"):
        listing = _as_other(["ls", agent.path(directory)], agent)
        assert listing.returncode != 0 and "Permission denied" in listing.stderr, directory
    for path in (agent.path("pdq", pending), agent.path("suc", delivered), agent.path("err", refused),
                 os.path.join(data, "db", "state.json"), os.path.join(agent.log_dir, "pdagentd.log")):
        reading = _as_other(["cat", path], agent)
        assert reading.returncode != 0 and "Permission denied" in reading.stderr, path
        assert "R0utingKey" not in reading.stdout
    assert _as_other(["ls", os.path.join(data, "db")], agent).returncode != 0
    assert _as_other(["ls", agent.log_dir], agent).returncode != 0

    # pd-queue cannot show them either, and says why in one line.
    for argv in (["status"], ["list"], ["list", "--state", "error"], ["retry", "-a"]):
        result = _as_other(command("pd-queue") + argv, agent)
        assert result.returncode != 0 and "Traceback" not in result.stderr, (argv, result.stderr)
        assert "R0utingKey" not in result.stdout

    # Every event file: mode 0640, group = the daemon's group (who reads them), whoever wrote it.
    for state, name in (("pdq", pending), ("suc", delivered), ("err", refused), ("pdq", mine)):
        info = os.lstat(agent.path(state, name))
        assert stat.S_IMODE(info.st_mode) == 0o640, (state, oct(info.st_mode))
        assert info.st_gid == daemon_user[1], (state, info.st_gid)
    for path in (os.path.join(data, "db", "state.json"), os.path.join(agent.log_dir, "pdagentd.log")):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o007 == 0, path


def test_symlink_planted_by_another_user_is_not_followed(agent, standin):
    """A link to a file only the daemon may read (its state) is passed over: never read, sent or moved."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as other users")
    state = os.path.join(agent.data_dir, "db", "state.json")
    helpers.start_daemon(agent)
    helpers.send(agent, KEY, "first")
    wait_for(lambda: os.path.exists(state), message="the daemon's state file")
    planted = f"1_{KEY}.txt"
    result = _as_other(["ln", "-s", state, agent.path("pdq", planted)], agent)
    assert result.returncode == 0, result.stderr
    after = helpers.send(agent, KEY, "after")
    wait_for(lambda: helpers.where(agent, after) == "suc", message="the next event delivered")
    assert os.path.islink(agent.path("pdq", planted)) and helpers.where(agent, planted) == "pdq"
    assert "not a regular file" in agent.log_text()
    assert "counters" not in agent.log_text()
    assert all("counters" not in str(body) for body in standin.bodies())


# -- routing keys in logs -----------------------------------------------------------------------

def _assert_no_key_in_logs(agent, keys):
    logs = agent.log_text() + helpers.read_text(agent.daemon_output)
    for rotated in range(1, 6):
        logs += helpers.read_text(os.path.join(agent.log_dir, f"pdagentd.log.{rotated}"))
    leaked = [key for key in keys if key in logs]
    assert not leaked, f"routing keys logged whole: {leaked}"
    return logs


def test_no_routing_key_in_log_after_http_and_network_errors(agent, standin):
    keys = [routing_key(1100 + number) for number in range(10)]
    faults = [{"status": 400}, {"status": 404}, {"status": 413}, {"status": 500},
              {"status": 503, "retry_after": "1"}, {"status": 429}, {"action": "reset"},
              {"action": "close"}, {"delay": 2.0}, {"status": 500}]
    standin.set_faults([dict(fault, match={"routing_key": key}, times=2)
                        for key, fault in zip(keys, faults)])
    agent.configure(http_timeout_secs=1, retry_limit_for_possible_errors=1)
    helpers.start_daemon(agent)
    names = [helpers.send(agent, key, f"logged-{number}") for number, key in enumerate(keys)]
    wait_for(lambda: all(helpers.where(agent, name) in ("suc", "err") for name in names), timeout=30,
             message="every event answered for good")
    # And the way to the API broken: refused, then an unresolvable name.
    for number, url in enumerate((f"http://127.0.0.1:{helpers.closed_port()}", "http://pdagent-test.invalid")):
        helpers.restart_daemon(agent, events_api_url=url)
        name = helpers.send(agent, keys[number + 1], f"unreachable-{number}")
        wait_for(lambda name=name: helpers.log_attempts(agent, name), message="a failed attempt logged")
    helpers.stop_daemon(agent)
    logs = _assert_no_key_in_logs(agent, keys)
    assert "result=rejected" in logs and "result=failed" in logs and "result=unreachable" in logs


def test_no_routing_key_in_log_after_bad_entries(agent, standin):
    keys = [routing_key(1200 + number) for number in range(3)]
    for key, content in zip(keys, (b"{not json", b"", b"[1]")):
        with open(agent.path("pdq", f"1_{key}.txt"), "wb") as planted:
            planted.write(content)
    os.symlink("/etc/hostname", agent.path("pdq", f"2_{keys[0]}.txt"))
    helpers.start_daemon(agent)
    wait_for(lambda: len(agent.names("err")) == 3 and "not a regular file" in agent.log_text(),
             message="the bad entries in err/, the link passed over")
    helpers.stop_daemon(agent)
    _assert_no_key_in_logs(agent, keys)


def test_no_routing_key_in_log_after_wrong_file_names(agent, standin):
    keys = [routing_key(1300 + number) for number in range(3)]
    for key, name in zip(keys, ("pdq_{}.txt", "{}.txt", "1_{}.txt.tmp")):
        with open(agent.path("pdq", name.format(key)), "w") as planted:
            planted.write("{}")
    helpers.start_daemon(agent)
    wait_for(lambda: agent.log_text().count("not an event file name") == 3, message="three skips logged")
    helpers.stop_daemon(agent)
    _assert_no_key_in_logs(agent, keys)


def test_proxy_password_not_in_log(agent, standin, tmp_path):
    proxy = helpers.Tinyproxy(str(tmp_path), auth=("pdagent", "Pr0xyPassw0rd"))
    try:
        agent.configure(proxy_url=f"http://pdagent:Pr0xyPassw0rd@127.0.0.1:{proxy.port}")
        helpers.start_daemon(agent)
        name = helpers.send(agent, KEY, "via-proxy")
        wait_for(lambda: helpers.where(agent, name) == "suc", message="delivery through the proxy")
        helpers.stop_daemon(agent)
    finally:
        proxy.stop()
    assert "Pr0xyPassw0rd" not in agent.log_text() + helpers.read_text(agent.daemon_output)


# -- root ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemonised"])
def test_daemon_refuses_root(agent, foreground):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    result = agent.run("pdagentd", *(["-f"] if foreground else []), timeout=20)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "should not be run as root" in lines[0], result.stderr
    assert agent.pid() is None and not os.listdir(agent.pid_dir)
    assert agent.names("pdq") == []


def test_fifos_the_daemons_account_plants_never_block_root(agent, standin):
    """FIFOs put by the daemon's account at every file of its tree root's commands open (the
    queue lock, the state, a rejection's reason, the pid file, agent_id.txt, fqdn.txt): root's
    pd-queue and pd-send never wait on one. retry and discard refuse the lock in one line and
    move nothing; the rest read on as if the file were not there, and delivery goes on."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    standin.set_faults([{"match": {"dedup_key": "refused"}, "status": 400, "times": -1}])
    helpers.start_daemon(agent)
    refused = helpers.send(agent, KEY, "refused")
    wait_for(lambda: helpers.where(agent, refused) == "err", message="a rejected event in err/")
    db = os.path.join(agent.data_dir, "db")
    planted = [os.path.join(db, "queue.lock"), os.path.join(db, "state.json"),
               os.path.join(db, "errors", refused + ".json"), os.path.join(agent.pid_dir, "pdagentd.pid"),
               os.path.join(agent.data_dir, "agent_id.txt"), os.path.join(agent.data_dir, "fqdn.txt")]
    pid = agent.pid()
    script = " && ".join(f"rm -f {path} && mkfifo -m 0644 {path}" for path in planted)
    subprocess.run(helpers.as_user(agent.uid, agent.gid, ["sh", "-c", script]), check=True)
    try:
        for verb in ("retry", "discard"):
            for scope in (["-a"], ["-k", KEY]):
                line = assert_usage_error(agent.queue(verb, *scope, timeout=20), "pd-queue",
                                          f"cannot open the queue lock {planted[0]}")
                assert line.endswith(": not a regular file"), line
        assert helpers.where(agent, refused) == "err"
        for argv in (["status"], ["status", "--json"], ["list", "--state", "error"], ["metrics"]):
            result = agent.queue(*argv, timeout=20)
            assert (result.returncode, result.stderr) == (0, ""), (argv, result.stderr)
        assert "no reason recorded" in agent.queue("list", "--state", "error", timeout=20).stdout
        check = agent.queue("check", timeout=20)
        assert check.returncode == 2 and "pid file" in check.stdout and "not a pid file" in check.stdout
        # pd-send (root's) and the running daemon, which moves events without the lock it cannot take.
        delivered = helpers.send(agent, KEY, "delivered")
        wait_for(lambda: helpers.where(agent, delivered) == "suc", message="delivery with the lock a FIFO")
        assert all(stat.S_ISFIFO(os.lstat(path).st_mode) for path in (planted[0], planted[2], planted[3]))
    finally:  # the harness (and python-daemon, at stop) read the pid file as a file
        for path in planted:
            os.unlink(path)
        helpers.write_pid_file(agent, pid)
        helpers.stop_daemon(agent)


# -- TLS verification cannot be switched off ------------------------------------------------------

@pytest.mark.parametrize("key", ["verify_tls", "tls_verify", "ssl_verify", "verify", "insecure",
                                 "insecure_skip_verify", "ca_verify"])
def test_no_option_switches_tls_verification_off(agent, key):
    path = os.path.join(agent.base, "insecure.conf")
    with open(path, "w") as config_file:
        config_file.write("[Main]\n" + "".join(f"{name} = {value}\n" for name, value in
                                                  dict(agent.settings, **{key: "false"}).items()))
    os.chmod(path, 0o644)
    result = subprocess.run(helpers.as_user(agent.uid, agent.gid, command("pdagentd") + ["-f"]),
                            env=agent.env(PDAGENT_CONFIG=path), capture_output=True, text=True,
                            timeout=20, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and f"unknown key '{key}'" in lines[0], result.stderr


@pytest.fixture(scope="module")
def wrong_ca():
    trustme = pytest.importorskip("trustme")
    directory = tempfile.mkdtemp(prefix="pdagent-wrong-ca-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "wrong-ca.pem")
    trustme.CA().cert_pem.write_to_path(path)
    os.chmod(path, 0o644)
    yield path
    shutil.rmtree(directory, ignore_errors=True)


def test_environment_cannot_switch_tls_verification_off(agent, tls_standin, test_ca, wrong_ca):
    """REQUESTS_CA_BUNDLE at a wrong CA, empty CA variables, PYTHONHTTPSVERIFY=0: still verified."""
    agent.configure(events_api_url=tls_standin.url)
    name = helpers.send(agent, KEY, "tls-env")
    failures = 0
    for extra in ({"REQUESTS_CA_BUNDLE": wrong_ca}, {"CURL_CA_BUNDLE": wrong_ca},
                  {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}, {"PYTHONHTTPSVERIFY": "0"}):
        helpers.start_daemon(agent, env=agent.env(**extra))
        wait_for(lambda before=failures: agent.log_text().count("TLS VERIFICATION FAILED") > before,
                 timeout=15, message=f"a loud TLS failure with {extra}")
        failures = agent.log_text().count("TLS VERIFICATION FAILED")
        helpers.stop_daemon(agent)
        assert helpers.where(agent, name) == "pdq" and agent.names("err") == []
        assert tls_standin.requests() == []
    # The right CA through the same variable: delivered (so the variable is honoured).
    helpers.start_daemon(agent, env=agent.env(REQUESTS_CA_BUNDLE=test_ca[2]))
    wait_for(lambda: helpers.where(agent, name) == "suc", timeout=15, message="delivery with the right CA")
    assert [body["dedup_key"] for body in tls_standin.bodies()] == ["tls-env"]


def test_tls_ca_bundle_of_another_ca_fails_loudly(agent, tmp_path, wrong_ca, test_ca):
    """ca_bundle naming a CA that did not sign the server's certificate: loud, retried, never err/."""
    server_dir = tmp_path / "tls"
    server_dir.mkdir()
    server = StandIn(str(server_dir), tls=test_ca)
    try:
        agent.configure(events_api_url=server.url, ca_bundle=wrong_ca)
        helpers.start_daemon(agent)
        name = helpers.send(agent, KEY, "wrong-ca")
        wait_for(lambda: len(helpers.log_attempts(agent, name)) >= 2, timeout=15, message="two failures")
        assert all("TLS VERIFICATION FAILED" in line and " ERROR " in line
                   for line in helpers.log_attempts(agent, name))
        assert helpers.where(agent, name) == "pdq" and server.requests() == []
    finally:
        server.stop()
