"""A sandbox to run the agent for real: the Events API stand-in, a spool, the commands, the daemon.

Shared by the tests (through tests/helpers.py), `make demo` (scripts/demo.py) and
the benchmarks (bench/), so all three run the agent the same way:
- StandIn: scripts/events_api_standin.py as a real server on 127.0.0.1.
- Agent: a spool laid out like the installed one (modes, setgid group of the
  daemon's user) in a directory of its own, a config pointing at the
  stand-in, and the three commands run as subprocesses.
- pdagentd refuses root, so as root it runs as an unprivileged user
  (`pdagent-test`, created once) through `setpriv`; as another user, as you.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

if sys.version_info < (3, 7):  # noqa: UP036 (ruff knows no Python older than 3.7)
    # Python 3.6 (RHEL 8): subprocess has neither text= (Popen, run) nor capture_output= (run),
    # which the tests and this module use. pdagent itself starts no subprocess: only the tests'
    # calls go through these.
    class _PopenWithText(subprocess.Popen):
        def __init__(self, *args, text=None, **kwargs):
            if text is not None:
                kwargs["universal_newlines"] = text
            super().__init__(*args, **kwargs)

    def _run_with_capture_output(*args, capture_output=False, _run=subprocess.run, **kwargs):
        if capture_output:
            kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
        return _run(*args, **kwargs)

    subprocess.Popen, subprocess.run = _PopenWithText, _run_with_capture_output

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.dirname(sys.executable)
STANDIN = os.path.join(ROOT, "scripts", "events_api_standin.py")
# The stand-in plays PagerDuty's service, not the agent: the Python matrix runs it on one Python
# (scripts/python_matrix.py) while the agent runs on each.
STANDIN_PYTHON = os.environ.get("PDAGENT_STANDIN_PYTHON", sys.executable)
TEST_USER = "pdagent-test"
OTHER_USER = "pdagent-test-other"  # a local user who is neither root nor the daemon's user
OFFLINE_API = "http://127.0.0.1:9"  # for tests of commands that never talk to the Events API
ROUTING_KEY = "R0utingKey0000000000000000000001"  # the API takes 32-character keys


def command(name):
    """The installed console script next to this interpreter, else the checkout's bin/ link."""
    installed = os.path.join(BIN_DIR, name)
    return [installed] if os.path.exists(installed) else [sys.executable, os.path.join(ROOT, "bin", name)]


def routing_key(number):
    return f"R0utingKey{number:022d}"


def wait_for(predicate, timeout=10.0, interval=0.02, message="condition"):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def assert_usage_error(result, program, phrase, status=2):
    """Exit 2 (or `status`), nothing on stdout, no traceback; stderr: two lines, ONE
    `<program>[ <subcommand>]: error: <reason>` holding `phrase`, then where help is (no usage
    block). Returns the error line."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    command_name, separator, _ = lines[0].partition(": error: ")
    assert separator and command_name.split(" ")[0] == program and len(command_name.split(" ")) <= 2
    assert phrase in lines[0], lines[0]
    assert lines[1] == f"Try '{command_name} --help' for more information.", lines[1]
    return lines[0]


# -- the unprivileged user the daemon runs as ----------------------------------------

def ensure_user(name):
    """(uid, gid) of the local system user `name`, created (with its own group) if missing; needs root."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True)
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def ensure_daemon_user():
    """(uid, gid) to run pdagentd as: the test user when root, else ourselves."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    return ensure_user(TEST_USER)


def as_user(uid, gid, argv):
    """argv run as uid/gid (with that user's groups) when we are root."""
    if os.geteuid() != 0 or uid == os.geteuid():
        return argv
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--"] + argv


# -- the Events API stand-in ---------------------------------------------------------------

class StandIn:
    def __init__(self, workdir, tls=None, extra_args=()):
        self.workdir = workdir
        prefix = "tls-standin" if tls else "standin"  # a test may run both side by side
        port_file = os.path.join(workdir, f"{prefix}.port")
        self.record = os.path.join(workdir, f"{prefix}-received.jsonl")
        argv = [STANDIN_PYTHON, STANDIN, "--port", "0", "--port-file", port_file,
                "--record", self.record, *extra_args]
        if tls:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        # Open for the server's whole life; stop() closes it.
        self.log = open(os.path.join(workdir, f"{prefix}.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        self.port = int(wait_for(lambda: _read(port_file), message="the stand-in's port"))
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.control = f"http://127.0.0.1:{self.port}" if not tls else None
        self._tls_context = None
        if tls:
            import ssl
            self._tls_context = ssl.create_default_context(cafile=tls[2])
            self.control = self.url

    def _call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.control + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10, context=self._tls_context) as response:
            return json.loads(response.read() or b"null")

    def received(self):
        return self._call("GET", "/_control/received")

    def bodies(self, routing_key=None):
        return [event["body"] for event in self.received()
                if routing_key is None or event["body"].get("routing_key") == routing_key]

    def requests(self):
        return self._call("GET", "/_control/requests")

    def set_faults(self, rules):
        return self._call("POST", "/_control/faults", rules)

    def reset(self):
        return self._call("POST", "/_control/reset", {})

    def stop(self):
        stop_process(self.process)
        self.log.close()


def _read(path):
    try:
        with open(path) as port_file:
            return port_file.read().strip() or None
    except FileNotFoundError:
        return None


# -- an agent home: spool, config, commands ----------------------------------------------------

class Agent:
    """A data/log/pid layout like the installed one, and the three commands run against it."""

    def __init__(self, base, user, api_url, dirs=None, **settings):
        """`dirs`: (data, log, pid) directories the caller has laid out (or left to the
        daemon to make); by default they are made in `base` as the package lays them out."""
        self.base = base
        self.uid, self.gid = user
        self.data_dir, self.log_dir, self.pid_dir = dirs or [os.path.join(base, name)
                                                             for name in ("data", "log", "run")]
        self.outqueue = os.path.join(self.data_dir, "outqueue")
        self.config_path = os.path.join(base, "pdagent.conf")
        self.daemon = None
        self.daemon_output = os.path.join(base, "daemon.out")
        if dirs is None:
            self._make_layout()
        self.configure(events_api_url=api_url, **settings)

    def _make_layout(self):
        for sub in ("outqueue/tmp", "outqueue/pdq", "outqueue/suc", "outqueue/err", "db"):
            os.makedirs(os.path.join(self.data_dir, sub))
        os.makedirs(self.log_dir)
        os.makedirs(self.pid_dir)
        for directory, mode in [(self.base, 0o755), (self.data_dir, 0o755),
                                (self.outqueue, 0o755), (self.log_dir, 0o750),
                                (self.pid_dir, 0o750), (os.path.join(self.data_dir, "db"), 0o750),
                                (self.path("tmp"), 0o3753), (self.path("pdq"), 0o3753),
                                (self.path("suc"), 0o2750), (self.path("err"), 0o2750)]:
            if os.geteuid() == 0:
                os.chown(directory, self.uid, self.gid)
            os.chmod(directory, mode)

    def configure(self, **settings):
        """Rewrite the config: fast back-off and rescans for tests, plus `settings`."""
        values = {"data_dir": self.data_dir, "log_dir": self.log_dir, "pid_dir": self.pid_dir,
                  "backoff_interval_secs": 1, "backoff_max_secs": 2, "send_interval_secs": 2,
                  "http_timeout_secs": 3}
        values.update(getattr(self, "settings", {}))
        values.update(settings)
        self.settings = values
        with open(self.config_path, "w") as config_file:
            config_file.write("[Main]\n")
            config_file.writelines(f"{key} = {value}\n" for key, value in values.items())
        os.chmod(self.config_path, 0o644)

    def path(self, state, name=""):
        return os.path.join(self.outqueue, state, name)

    def names(self, state):
        return sorted(os.listdir(self.path(state)))

    def env(self, **extra):
        env = dict(os.environ, PDAGENT_CONFIG=self.config_path)
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy",
                     "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            env.pop(name, None)
        env.update(extra)
        return env

    def run(self, name, *args, input=None, user=None, env=None, timeout=30):
        argv = command(name) + list(args)
        if user is not None:
            argv = as_user(*user, argv)
        return subprocess.run(argv, input=input, capture_output=True, text=True,
                              env=env or self.env(), timeout=timeout, check=False)

    def send(self, *args, **kwargs):
        return self.run("pd-send", *args, **kwargs)

    def queue(self, *args, **kwargs):
        return self.run("pd-queue", *args, **kwargs)

    def read(self, state, name):
        with open(self.path(state, name)) as entry_file:
            return json.load(entry_file)

    # -- the daemon --

    def start_daemon(self, foreground=True, env=None, wait=True):
        """pdagentd as the daemon user: `-f` under our control, or daemonised (pid file)."""
        argv = as_user(self.uid, self.gid, command("pdagentd") + (["-f"] if foreground else []))
        if foreground:
            self._output = open(self.daemon_output, "ab")  # noqa: SIM115 (closed when it stops)
            self.daemon = subprocess.Popen(argv, env=env or self.env(), stdout=self._output,
                                           stderr=subprocess.STDOUT)
        else:
            result = subprocess.run(argv, env=env or self.env(), capture_output=True, text=True,
                                    timeout=30, check=False)
            assert result.returncode == 0, result.stderr
        if wait:
            wait_for(self._started, message="pdagentd to start")
        return self.pid()

    def _started(self):
        if self.daemon is not None and self.daemon.poll() is not None:
            with open(self.daemon_output, errors="replace") as output:
                raise AssertionError(f"pdagentd exited {self.daemon.returncode}: {output.read()[-2000:]}")
        return self.pid() and "started" in self.log_text()

    def pid(self):
        text = _read(os.path.join(self.pid_dir, "pdagentd.pid"))
        return int(text) if text else None

    def log_text(self):
        try:
            with open(os.path.join(self.log_dir, "pdagentd.log"), errors="replace") as log_file:
                return log_file.read()
        except FileNotFoundError:
            return ""

    def daemon_running(self):
        pid = self.pid()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return self.daemon is None or self.daemon.poll() is None

    def stop_daemon(self, sig=signal.SIGTERM, timeout=20):
        """Signal the daemon and wait for it to exit; returns the seconds it took."""
        pid = self.pid()
        started = time.time()
        if pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            if self.daemon is not None:
                self.daemon.wait(timeout)
            else:
                wait_for(lambda: not _alive(pid), timeout=timeout, message="pdagentd to exit")
        if self.daemon is not None:
            self.daemon.wait(timeout)
            self._output.close()
            self.daemon = None
        return time.time() - started

    def kill_daemon(self):
        """kill -9, leaving its pid file behind as a crash does."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        if self.daemon is not None:
            self.daemon.wait(10)
            self._output.close()
            self.daemon = None
        else:
            wait_for(lambda: not _alive(pid), message="the killed pdagentd to vanish")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_process(process, grace_secs=5):
    """SIGTERM, then SIGKILL if it is still there after `grace_secs`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_secs)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- pd-listen, the local Events API ----------------------------------------------------------

LISTEN_USER = "pdagent-test-listen"  # pd-listen's account: a plain local user, pd-send's rights only


class Listen:
    """pd-listen as a real process for `agent`'s spool, as its own unprivileged user when root.

    It takes listen_address = 127.0.0.1:0 (or `settings`) and is found by the
    address its start-up line in pd-listen.log names. The log directory is
    the daemon's; here it is opened to every user (sticky, as /tmp), where
    the packages give pdagent-listen its own place to write.
    """

    def __init__(self, agent, *args, settings=None, user=None):
        self.agent = agent
        self.user = user or (ensure_user(LISTEN_USER) if os.geteuid() == 0 else (os.getuid(), os.getgid()))
        agent.configure(**(settings or {"listen_address": "127.0.0.1:0"}))
        os.chmod(agent.log_dir, 0o1777)
        self.log_path = os.path.join(agent.log_dir, "pd-listen.log")
        self._log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self._output = open(os.path.join(agent.base, "pd-listen.out"), "ab")  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(as_user(*self.user, command("pd-listen") + list(args)),
                                        env=agent.env(), stdout=self._output, stderr=subprocess.STDOUT)
        self.url = wait_for(self._address, message="pd-listen to start")

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as log_file:
                return log_file.read()
        except FileNotFoundError:
            return ""

    def logged(self, text, count=1):
        """pd-listen.log once it holds `text` `count` times: an answer's line is written just
        after the answer is sent."""
        def enough():
            text_so_far = self.log_text()
            return text_so_far if text_so_far.count(text) >= count else None
        return wait_for(enough, message=f"{count} x {text!r} in pd-listen.log")

    def _address(self):
        if self.process.poll() is not None:
            with open(os.path.join(self.agent.base, "pd-listen.out"), errors="replace") as output:
                raise AssertionError(f"pd-listen exited {self.process.returncode}: {output.read()[-2000:]}")
        for line in self.log_text()[self._log_start:].splitlines():
            if " started (pid " in line and "listening on " in line:
                where = line.split("listening on ", 1)[1].split(";")[0].split(", ")
                return next((url for url in where if url.startswith("http://")), where[0])
        return None

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1])

    def post(self, path, body, headers=None, timeout=10):
        """(status, parsed answer) of one POST with a JSON body (bytes are sent as they are)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers=dict({"Content-Type": "application/json"}, **(headers or {})))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(20)
        self._output.close()
        return self.process.returncode


# -- a real HTTP proxy ------------------------------------------------------------------------

def closed_port():
    """A loopback port nobody listens on (just freed by us)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Tinyproxy:
    """tinyproxy on 127.0.0.1 in the foreground, optionally wanting Basic credentials (407)."""

    def __init__(self, workdir, port=None, auth=None):
        if shutil.which("tinyproxy") is None:
            import pytest
            pytest.skip("tinyproxy is not installed (make test installs it)")
        self.port = port or closed_port()
        self.log_path = os.path.join(workdir, f"tinyproxy-{self.port}.log")
        config_path = os.path.join(workdir, f"tinyproxy-{self.port}.conf")
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30",
                 f'LogFile "{self.log_path}"', "LogLevel Info", "MaxClients 50",
                 "Allow 127.0.0.1", "DisableViaHeader Yes"]
        if auth:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        with open(config_path, "w") as config_file:
            config_file.write("\n".join(lines) + "\n")
        self._output = open(os.path.join(workdir, f"tinyproxy-{self.port}.out"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(["tinyproxy", "-d", "-c", config_path],
                                        stdout=self._output, stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(self.port), message="tinyproxy to listen")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def log_text(self):
        with open(self.log_path, errors="replace") as log_file:
            return log_file.read()

    def stop(self):
        stop_process(self.process)
        self._output.close()
