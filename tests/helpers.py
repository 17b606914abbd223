"""The one module tests import shared helpers from (conftest.py holds only fixtures).

scripts/harness.py is the sandbox `make demo` and bench/ run the agent in (the
Events API stand-in, an Agent with its spool and commands, users, setpriv);
its names are re-exported here. Added for the tests and bench/soak.py: daemon
restarts that do not trust a stale pid file, events queued in-process exactly
as pd-send queues them, what the stand-in accepted, a second local user, a
tinyproxy that wants credentials, TLS certificates that are wrong in one way
each, and a small tmpfs.
"""

import contextlib
import datetime
import glob
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

from harness import (  # noqa: F401  (re-exported for the test modules)
    OFFLINE_API,
    OTHER_USER,
    ROOT,
    ROUTING_KEY,
    TEST_USER,
    Agent,
    StandIn,
    Tinyproxy,
    as_user,
    assert_usage_error,
    closed_port,
    command,
    ensure_daemon_user,
    ensure_user,
    port_open,
    routing_key,
    wait_for,
)

from pdagent.enqueue import queue_v2_event
from pdagent.event import build_alert, entry_to_request
from pdagent.main_config import load_main_config

SECOND_USER = OTHER_USER  # a local user who is neither root nor the daemon's user
VICTIM_USER = "pdagent-test-victim"  # a monitoring user whose events others try to take
STATES = ("tmp", "pdq", "suc", "err")


LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)


def faketime_settings(offset=None, offset_file=None):
    """Environment for a wall clock `offset` ahead ("+400s") or following `offset_file` (read at
    every call) as a real step would: the monotonic clock and file times are left alone, so a
    command so started sees every entry `offset` older than it is."""
    settings = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1"}
    if offset_file is not None:
        settings.update(FAKETIME_TIMESTAMP_FILE=offset_file, FAKETIME_NO_CACHE="1")
    else:
        settings["FAKETIME"] = offset
    return settings


def aged(agent, seconds):
    """The environment in which agent's commands see the spool `seconds` later than now."""
    return agent.env(**faketime_settings(offset=f"+{seconds}s"))


def report(name, **figures):
    """Print the figures a test measured (shown with `pytest -s` or `-rA`)."""
    print(f"FIGURES {name}: " + json.dumps(figures, sort_keys=True))


# -- users -------------------------------------------------------------------------

def daemon_user_ids():
    """What the daemon_user fixture (conftest.py) gives, for scripts outside pytest."""
    return ensure_daemon_user()


def as_other(agent, *argv, input=None):
    """Run argv (str or bytes items) as the second local user; the CompletedProcess (bytes)."""
    user = ensure_user(SECOND_USER)
    return subprocess.run(as_user(*user, list(argv)), env=agent.env(), input=input,
                          capture_output=True, timeout=30, check=False)


def plant(agent, name, content=b""):
    """The second user puts pdq/<name> (bytes or str) holding `content`, readable by the daemon.

    Written in tmp/ and renamed in whole, so the daemon never reads it half-written.
    """
    path = os.path.join(os.fsencode(agent.path("pdq")), os.fsencode(name))
    staging = os.path.join(os.fsencode(agent.path("tmp")), b"planted-" + os.urandom(4).hex().encode())
    result = as_other(agent, "sh", "-c", 'umask 022; cat > "$1" && mv "$1" "$2"', "sh", staging, path,
                      input=content)
    assert result.returncode == 0, result.stderr
    return path


def forged_entry(body_key, dedup_key):
    """A whole v2 spool entry (text) for `body_key`, as another user could write one by hand."""
    body = alert_body(body_key, 0, tag="forged", dedup_key=dedup_key)
    return json.dumps({"endpoint": "alert", "event": body,
                       "agent": {"agent_id": "x", "queued_by": "attacker", "queued_at": "2020-01-01T00:00:00Z"}})


# -- the daemon, restarted without trusting its pid file ------------------------------------

def launch_daemon(agent, env=None):
    """Start `pdagentd -f` as the daemon user; returns its pid (setpriv and the script exec)."""
    argv = as_user(agent.uid, agent.gid, command("pdagentd") + ["-f"])
    output = open(agent.daemon_output, "ab")  # noqa: SIM115 (closed when the daemon is stopped)
    agent.daemon = subprocess.Popen(argv, env=env or agent.env(), stdout=output,
                                    stderr=subprocess.STDOUT)
    agent._output = output
    return agent.daemon.pid


def wait_started(agent, pid, timeout=20.0):
    """Wait for *this* daemon's start line (a stale pid file and old log lines do not count)."""
    marker = f"started (pid {pid})"

    def started():
        if agent.daemon is not None and agent.daemon.poll() is not None:
            raise AssertionError(f"pdagentd exited {agent.daemon.returncode}: "
                                 f"{read_text(agent.daemon_output)[-2000:]}")
        return marker in agent.log_text()
    wait_for(started, timeout=timeout, message=f"pdagentd (pid {pid}) to start")


def start_daemon(agent, env=None):
    pid = launch_daemon(agent, env)
    wait_started(agent, pid)
    return pid


def kill_daemon(agent):
    """kill -9 the daemon we launched; its pid file stays behind as after a crash."""
    process = agent.daemon
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    agent._output.close()
    agent.daemon = None


def stop_daemon(agent):
    """SIGTERM the daemon we launched and wait for it."""
    process = agent.daemon
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        process.wait(20)
    agent._output.close()
    agent.daemon = None


def restart_daemon(agent, env=None, **settings):
    stop_daemon(agent)
    if settings:
        agent.configure(**settings)
    return start_daemon(agent, env)


def write_pid_file(agent, pid):
    """As the daemon writes it: its user's, in its pid directory."""
    path = os.path.join(agent.pid_dir, "pdagentd.pid")
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, "w") as pid_file:
        pid_file.write(f"{pid}\n")
    if os.geteuid() == 0:
        os.chown(path, agent.uid, agent.gid)


def daemon_alive(agent):
    return agent.daemon is not None and agent.daemon.poll() is None


def read_text(path):
    try:
        with open(path, errors="replace") as text_file:
            return text_file.read()
    except FileNotFoundError:
        return ""


# -- events --------------------------------------------------------------------------

def write_saved_state(agent, delivered, saved_secs_ago):
    """db/state.json with these counters, as if the daemon saved it `saved_secs_ago` seconds ago;
    returns its path."""
    path = os.path.join(agent.data_dir, "db", "state.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as state:
        json.dump({"counters": {"delivered": delivered, "failed": 0, "started_on": None}, "keys": {}}, state)
    saved = time.time() - saved_secs_ago
    os.utime(path, (saved, saved))
    return path


def alert_body(key, seq, tag="fault", action="trigger", dedup_key=None):
    """A trigger (or ack/resolve) whose dedup key and custom details identify it."""
    dedup_key = dedup_key or f"{tag}-{seq}"
    return build_alert(key, action, summary=f"{tag} event {seq}", source="fault-suite",
                       dedup_key=dedup_key, custom_details={"seq": seq, "tag": tag})


def enqueue(agent, bodies):
    """Queue v2 alert bodies in-process through the code pd-send runs; returns the pdq/ names."""
    main_config = load_main_config(agent.config_path)
    return [queue_v2_event(main_config, "alert", body, queued_by="pd-send")[1] for body in bodies]


def all_names(agent):
    names = set()
    for state in ("pdq", "suc", "err"):
        names.update(agent.names(state))
    return names


def send(agent, key, dedup_key, summary="fault suite", *extra, user=None, env=None):
    """pd-send a trigger as a real process; returns (CompletedProcess, new spool name or None)."""
    before = all_names(agent)
    result = agent.send("-k", key, "-t", "trigger", "-i", dedup_key, "-d", summary, *extra,
                        user=user, env=env)
    new = sorted(all_names(agent) - before)
    assert result.returncode == 0, result.stderr
    assert len(new) == 1, new
    return new[0]


def where(agent, name):
    """The state (pdq, suc, err) holding `name`, or None if it is nowhere."""
    for state in ("pdq", "suc", "err"):
        if os.path.lexists(agent.path(state, name)):
            return state
    return None


def check_entry_file(path):
    """The (endpoint, body) of a spool file; AssertionError unless it is a whole, valid entry."""
    with open(path, "rb") as entry_file:
        data = entry_file.read()
    assert data, f"{path} is empty"
    entry = json.loads(data)
    return entry_to_request(entry, "fault-suite")


def recorded(standin):
    """Every event the stand-in accepted (its --record file: kept across resets), in order."""
    events = []
    for line in read_text(standin.record).splitlines():
        if line.endswith("}"):
            events.append(json.loads(line))
    return events


def dedup_keys_received(standin):
    return [event["body"].get("dedup_key") for event in standin.received()]


def attempts(standin, dedup_key):
    """The stand-in's requests carrying this dedup key (faulted or not), in order."""
    return [request for request in standin.requests()
            if isinstance(request.get("body"), dict) and request["body"].get("dedup_key") == dedup_key]


def log_attempts(agent, name, kinds=("failed", "unreachable", "throttled")):
    """Log lines of the daemon's unsuccessful attempts at one spool name."""
    from pdagent.escape import mask_name
    masked = mask_name(name)
    return [line for line in agent.log_text().splitlines()
            if f"event {masked} " in line and any(f"result={kind}" in line for kind in kinds)]


# -- network ---------------------------------------------------------------------------

class ProxyWanting407:
    """A loopback "proxy" that reads each request whole and answers 407 (keep-alive kept).

    tinyproxy answers 407 too, but to a POST it does so before reading the body
    and then closes, so the client often sees a reset instead of the answer.
    """

    def __init__(self):
        import http.server
        import socketserver
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b"proxy credentials wanted"
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="pdagent-test"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_CONNECT = do_POST

            def log_message(self, *args):
                pass

        # http.server.ThreadingHTTPServer, which is Python 3.7+
        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# -- TLS certificates, each wrong in one way ---------------------------------------------------

def make_tls_material(directory):
    """Files (mode 0644) for TLS faults: {"ca", "good", "expired", "wrong_host", "self_signed"}.

    Each server entry is (cert chain, key, CA file for our own control calls).
    """
    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    authority = trustme.CA()
    ca_path = os.path.join(directory, "ca.pem")
    authority.cert_pem.write_to_path(ca_path)
    now = datetime.datetime.now(datetime.timezone.utc)
    material = {"ca": ca_path}

    def write_leaf(name, leaf):
        cert_path = os.path.join(directory, f"{name}.pem")
        key_path = os.path.join(directory, f"{name}.key")
        for index, blob in enumerate(leaf.cert_chain_pems):
            blob.write_to_path(cert_path, append=index > 0)
        leaf.private_key_pem.write_to_path(key_path)
        material[name] = (cert_path, key_path, ca_path)

    write_leaf("good", authority.issue_cert("127.0.0.1", "localhost"))
    write_leaf("expired", authority.issue_cert(
        "127.0.0.1", "localhost", not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1)))
    write_leaf("wrong_host", authority.issue_cert("wrong-host.example"))

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    import ipaddress
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path = os.path.join(directory, "self_signed.pem")
    key_path = os.path.join(directory, "self_signed.key")
    with open(cert_path, "wb") as cert_file:
        cert_file.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as key_file:
        key_file.write(key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    material["self_signed"] = (cert_path, key_path, cert_path)
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o644)
    return material


def unverified_control(standin):
    """Let our own control calls reach a stand-in whose certificate is bad on purpose."""
    import ssl
    standin._tls_context = ssl._create_unverified_context()
    return standin


# -- the layouts a spool may have ----------------------------------------------------------

def make_system_root(root):
    """root/{var/lib,var/log,var/run} as root has them, and the sources of layout.COPIES in
    root/usr/share: what `python3 -I -m pdagent.layout --root ROOT` needs."""
    import shutil

    from pdagent import layout
    for system_dir in ("var/lib", "var/log", "var/run"):
        os.makedirs(os.path.join(root, system_dir), mode=0o755)
    for copy in layout.COPIES:
        source = os.path.join(root, copy.source.lstrip("/"))
        os.makedirs(os.path.dirname(source), mode=0o755, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "packaging", os.path.basename(source)), source)


def lay_out(root, user):
    """The layout module as the package scripts run it (-I, from /), under `root`."""
    return subprocess.run([sys.executable, "-I", "-m", "pdagent.layout", "--root", str(root), "--user", user],
                          cwd="/", capture_output=True, text=True, timeout=30, check=False)


# -- a small filesystem for the spool ---------------------------------------------------------

DATA_LAYOUT = [("", 0o755), ("outqueue", 0o755), ("db", 0o750), ("outqueue/tmp", 0o3753),
               ("outqueue/pdq", 0o3753), ("outqueue/suc", 0o2750), ("outqueue/err", 0o2750)]


@contextlib.contextmanager
def tmpfs_data_dir(agent, size="1m", nr_inodes=None):
    """Mount a tmpfs over the agent's data_dir with the installed layout; unmounted afterwards.

    Skips the test when mounting is not permitted (not root, or no CAP_SYS_ADMIN).
    """
    import pytest
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    options = f"size={size},mode=0755"
    if nr_inodes:
        options += f",nr_inodes={nr_inodes}"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", agent.data_dir],
                             check=False, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        for sub, mode in DATA_LAYOUT:
            path = os.path.join(agent.data_dir, sub)
            os.makedirs(path, exist_ok=True)
            os.chown(path, agent.uid, agent.gid)
            os.chmod(path, mode)
        yield agent.data_dir
    finally:
        if daemon_alive(agent):
            stop_daemon(agent)  # it watches and writes the mount
        unmounted = subprocess.run(["umount", agent.data_dir], check=False, capture_output=True)
        if unmounted.returncode != 0:
            subprocess.run(["umount", "-l", agent.data_dir], check=False, capture_output=True)


def remount(path, mode):
    subprocess.run(["mount", "-o", f"remount,{mode}", path], check=True)


def fill_up(directory, chunk=64 * 1024):
    """Write a filler file until the filesystem is full; returns its path."""
    path = os.path.join(directory, "filler")
    block = b"\0" * chunk
    with open(path, "wb", buffering=0) as filler:
        while True:
            try:
                filler.write(block)
            except OSError:
                if chunk == 1:
                    break
                chunk //= 2
                block = block[:chunk]
    return path


def use_up_inodes(directory):
    """Create empty files until no inode is left; returns the directory holding them."""
    holder = os.path.join(directory, "inodes")
    os.makedirs(holder, exist_ok=True)
    number = 0
    while True:
        try:
            os.close(os.open(os.path.join(holder, str(number)), os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError:
            return holder
        number += 1
