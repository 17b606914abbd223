"""Fixtures for tests through real processes; the helpers they use are in helpers.py.

- `standin` / `tls_standin`: the Events API stand-in, plain or HTTPS with a test CA.
- `agent`: an installed-like spool and config in a fresh directory, with the
  commands and the daemon (as the unprivileged `pdagent-test` user when root).
"""

import os
import shutil
import signal
import tempfile

import pytest
from helpers import (
    OFFLINE_API,
    OTHER_USER,
    Agent,
    StandIn,
    ensure_daemon_user,
    ensure_user,
)


@pytest.fixture(scope="session")
def daemon_user():
    """(uid, gid) pdagentd runs as: `pdagent-test` when we are root, else ourselves."""
    return ensure_daemon_user()


@pytest.fixture(scope="session")
def other_user():
    """(uid, gid) of a local user who is neither root nor the daemon's user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a third user")
    return ensure_user(OTHER_USER)


@pytest.fixture
def standin(tmp_path):
    server = StandIn(str(tmp_path))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_ca():
    """(cert, key, CA file) for 127.0.0.1, from a test CA made with trustme, readable by the daemon."""
    trustme = pytest.importorskip("trustme")
    directory = tempfile.mkdtemp(prefix="pdagent-ca-")
    os.chmod(directory, 0o755)
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    paths = [os.path.join(directory, name) for name in ("server.pem", "server.key", "ca.pem")]
    server_cert.cert_chain_pems[0].write_to_path(paths[0])
    for blob in server_cert.cert_chain_pems[1:]:
        blob.write_to_path(paths[0], append=True)
    server_cert.private_key_pem.write_to_path(paths[1])
    authority.cert_pem.write_to_path(paths[2])
    for path in paths:
        os.chmod(path, 0o644)
    yield paths
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tls_standin(tmp_path, test_ca):
    server = StandIn(str(tmp_path), tls=test_ca)
    yield server
    server.stop()


@pytest.fixture
def agent_home():
    """A fresh directory every user can traverse (pytest's tmp_path is root-only)."""
    base = tempfile.mkdtemp(prefix="pdagent-test-")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def agent(agent_home, daemon_user, standin):
    home = Agent(agent_home, daemon_user, standin.url)
    yield home
    if home.daemon_running():
        home.stop_daemon(signal.SIGKILL)


@pytest.fixture
def offline_agent(agent_home, daemon_user):
    """The `agent` layout without a stand-in, for commands that never talk to the Events API."""
    return Agent(agent_home, daemon_user, OFFLINE_API)
