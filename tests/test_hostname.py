"""An alert names its host: never `localhost`, even where the FQDN lookup says so.

Containers and minimal installs often map the host name to 127.0.0.1 in
/etc/hosts, so the reverse lookup behind socket.getfqdn() answers
`localhost` while `hostname -f` still prints the real name. The daemon runs
here in a UTS and mount namespace of its own (unshare), with such an
/etc/hosts bound over the real one and a host name of its own, so the test
does not depend on how this machine is set up.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
from helpers import ROUTING_KEY, as_user, command, wait_for

from pdagent.hostname import names_a_host

HOST_NAME = "box7"
FQDN = "box7.example.org"
# The first 127.0.0.1 line names what the reverse lookup finds: localhost.
CONTAINER_HOSTS = f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n127.0.0.1 {FQDN} {HOST_NAME}\n"


@pytest.mark.parametrize("name, names", [
    ("db1.example.com", True), ("db1", True), ("localhost-fake.example.com", True), ("10.1.2.3", True),
    ("localhost", False), ("LOCALHOST", False), ("localhost.localdomain", False), ("localhost.", False),
    ("localhost6.localdomain6", False), ("ip6-localhost", False), ("ip6-loopback", False),
    ("box.localhost", False), ("127.0.0.1", False), ("127.0.1.1", False), ("::1", False),
    ("0.0.0.0", False), ("", False), ("  ", False), (None, False),
])
def test_names_a_host(name, names):
    assert names_a_host(name) is names


def in_namespace(hosts_file, argv):
    """argv run with `hosts_file` as /etc/hosts and HOST_NAME as the host name, in namespaces of its own."""
    script = f'mount --bind "$0" /etc/hosts && hostname {HOST_NAME} && exec "$@"'
    return ["unshare", "--uts", "--mount", "sh", "-c", script, hosts_file] + argv


@pytest.fixture
def container_hosts(agent_home):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a host name and /etc/hosts of its own")
    path = os.path.join(agent_home, "hosts")
    with open(path, "w") as hosts:
        hosts.write(CONTAINER_HOSTS)
    os.chmod(path, 0o644)
    probe_fqdn = f"hostname -f; {shlex.quote(sys.executable)} -c 'import socket; print(socket.getfqdn())'"
    probe = subprocess.run(in_namespace(path, ["sh", "-c", probe_fqdn]),
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make namespaces here: {probe.stderr.strip()}")
    assert probe.stdout.split() == [FQDN, "localhost"]  # the case: getfqdn() says localhost
    return path


def start_daemon_in(agent, hosts_file):
    output = open(agent.daemon_output, "ab")  # noqa: SIM115 (closed by the caller's finally)
    argv = in_namespace(hosts_file, as_user(agent.uid, agent.gid, command("pdagentd") + ["-f"]))
    process = subprocess.Popen(argv, env=agent.env(), stdout=output, stderr=subprocess.STDOUT)
    wait_for(lambda: agent.pid() and "started" in agent.log_text(), message="pdagentd to start")
    return process, output


def fqdn_file(agent):
    with open(os.path.join(agent.data_dir, "fqdn.txt")) as cached:
        return cached.read().strip()


@pytest.mark.parametrize("cached", [None, "localhost"])
def test_the_daemon_names_the_host_where_getfqdn_says_localhost(agent, standin, container_hosts, cached):
    if cached:  # left by a daemon that took getfqdn() at its word
        with open(os.path.join(agent.data_dir, "fqdn.txt"), "w") as fqdn:
            fqdn.write(cached + "\n")
    process, output = start_daemon_in(agent, container_hosts)
    try:
        wait_for(lambda: os.path.exists(os.path.join(agent.data_dir, "fqdn.txt")) and fqdn_file(agent) == FQDN,
                 message="the daemon to cache the host's name")
        # pd-send (outside the namespace: it reads the cache, never DNS)...
        sent = agent.send("-k", ROUTING_KEY, "-t", "trigger", "-d", "disk full", "-i", "v2-event")
        assert sent.returncode == 0, sent.stderr
        # ...and an entry the original agent queued, which the daemon gives a source.
        staged = os.path.join(agent.base, "v1-entry")
        with open(staged, "w") as v1_entry:
            json.dump({"service_key": ROUTING_KEY, "event_type": "trigger", "incident_key": "v1-event",
                       "description": "queued by pdagent 1.x"}, v1_entry)
        os.rename(staged, agent.path("pdq", f"1700000000000000_{ROUTING_KEY}.txt"))  # whole, as a writer does
        bodies = wait_for(lambda: len(standin.bodies()) == 2 and standin.bodies(), timeout=20,
                          message="both events at the stand-in")
        assert {body["dedup_key"]: body["payload"]["source"] for body in bodies} \
            == {"v1-event": FQDN, "v2-event": FQDN}
    finally:
        agent.stop_daemon()
        process.wait(10)
        output.close()
