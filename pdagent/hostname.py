"""This host's name for payload.source: the daemon looks it up and caches it in
data_dir/fqdn.txt; pd-send and the library read the cache and never wait on DNS.

pd-send imports this module on every call: it imports os alone at the top (socket
only where the daemon looks the name up).
"""

import os

from pdagent.spool.files import read_small_file, write_file_atomically

# The daemon writes this host's FQDN here at start-up, so that pd-send never
# waits on a DNS lookup to fill payload.source.
SOURCE_HOST_FILE = "fqdn.txt"


# Names that say nothing of which host an alert is from (as the first label:
# localhost.localdomain, localhost6.localdomain6, ...).
_LOOPBACK_NAMES = ("localhost", "localhost4", "localhost6", "ip6-localhost", "ip6-loopback")


def names_a_host(name):
    """False for a host name no one could find the host by: empty, localhost, a loopback address."""
    name = (name or "").strip().rstrip(".").lower()
    return not (name == "" or name.split(".")[0] in _LOOPBACK_NAMES or name.endswith(".localhost")
                or name.startswith("127.") or name in ("::1", "0.0.0.0", "::"))


def cached_host_name(data_dir):
    """The FQDN the daemon cached in `data_dir`, else the node name; never a DNS lookup.

    A cached name that does not name the host (`localhost`, say) is passed over.
    """
    cached = read_small_file(os.path.join(data_dir, SOURCE_HOST_FILE), limit=256)
    return cached if names_a_host(cached) else os.uname().nodename  # gethostname(), without socket


def default_source(locations):
    """payload.source when none is given (`locations`: config.load_locations())."""
    return cached_host_name(locations.data_dir)



def look_up_host_name():
    """The name alerts give this host: its FQDN (getfqdn's reverse lookup); when
    that names no host, the canonical name `hostname -f` prints; else the node
    name. Containers and minimal installs often map the host name to
    127.0.0.1, whose reverse lookup says `localhost`.
    """
    import socket  # the daemon's lookup alone needs it: pd-send imports this module
    node_name = socket.gethostname()
    for look_up in (socket.getfqdn, _canonical_name):
        try:
            name = look_up(node_name)
        except OSError:  # socket.gaierror: the name does not resolve
            continue
        if names_a_host(name):
            return name
    return node_name  # a host that calls itself localhost has no better name


def _canonical_name(node_name):
    import socket
    found = socket.getaddrinfo(node_name, None, flags=socket.AI_CANONNAME)
    return found[0][3] if found else ""


def cache_host_name(data_dir, name):
    """Write `name` to data_dir/fqdn.txt for pd-send, unless it is there already."""
    path = os.path.join(data_dir, SOURCE_HOST_FILE)
    if name != read_small_file(path):
        write_file_atomically(path, name.encode() + b"\n", mode=0o644)
