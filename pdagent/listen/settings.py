"""pd-listen's settings: the listen_* keys of the shared config file, checked.

listen_address is `IP:port` or `[IPv6]:port` (an address, never a name: no
DNS at start-up); listen_socket an absolute path. With neither, pd-listen
has nothing to do and says which line to set. Anyone who can reach a
non-loopback address can page, so one needs listen_token_file, whose
token every request must then carry.
"""

import os

from pdagent.config import ConfigError, load_locations
from pdagent.formats import is_ascii_digits, is_ipv4, is_ipv6
from pdagent.main_config import read_secret_file

LISTEN_KEYS = ("listen_address", "listen_socket", "listen_token_file")
DEFAULT_PORT = 49463  # go-pdagent's
_MAX_TOKEN_BYTES = 4096


class ListenSettings:
    """Where to listen, the token if any, and the spool's locations (config.Locations)."""

    def __init__(self, locations, address, socket_path, token):
        self.locations = locations
        self.address = address  # (host, port) or None
        self.socket_path = socket_path or None
        self.token = token  # str or None


def split_address(text):
    """(host, port) of `IPv4:port` or `[IPv6]:port`; ValueError if it is not one."""
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        if not bracket or not is_ipv6(host) or not port.startswith(":"):
            raise ValueError(text)
        port = port[1:]
    else:
        host, _, port = text.rpartition(":")
        if not is_ipv4(host):
            raise ValueError(text)
    if not (is_ascii_digits(port) and len(port) <= 5 and int(port) <= 65535):
        raise ValueError(text)
    return host, int(port)


def is_loopback(host):
    return host == "::1" or (is_ipv4(host) and host.split(".")[0] == "127")


def load_listen_settings(path=None):
    """The checked settings; ConfigError (one line naming the file and the key) otherwise."""
    locations = load_locations(path, keys=LISTEN_KEYS)
    path = locations.path
    address = None
    if locations.listen_address:
        try:
            address = split_address(locations.listen_address)
        except ValueError:
            raise ConfigError(f"{path}: key 'listen_address' must be IP:port or [IPv6]:port, "
                              f"e.g. 127.0.0.1:{DEFAULT_PORT}, not '{locations.listen_address}'") from None
    socket_path = locations.listen_socket
    if socket_path and not os.path.isabs(socket_path):
        raise ConfigError(f"{path}: key 'listen_socket' must be an absolute path, not '{socket_path}'")
    if address is None and not socket_path:
        raise ConfigError(f"{path}: nothing to listen on: set 'listen_address = 127.0.0.1:{DEFAULT_PORT}' "
                          f"or 'listen_socket = /run/pdagent-listen/events.sock' in [Main]")
    token = None
    if locations.listen_token_file:
        token = _read_token(path, locations.listen_token_file)
    elif address is not None and not is_loopback(address[0]):
        raise ConfigError(f"{path}: listen_address {locations.listen_address} is not a loopback address: "
                          f"set 'listen_token_file' so that only clients with the token can page")
    return ListenSettings(locations, address, socket_path, token)


def _read_token(path, token_file):
    problem = f"{path}: key 'listen_token_file':"
    data = read_secret_file(path, "listen_token_file", token_file, _MAX_TOKEN_BYTES)
    if len(data) > _MAX_TOKEN_BYTES:
        raise ConfigError(f"{problem} {token_file} is over {_MAX_TOKEN_BYTES} bytes")
    token = data.decode("ascii", "replace").strip()  # never quoted in an error: it is a secret
    if not token or any(not "!" <= char <= "~" for char in token):
        raise ConfigError(f"{problem} {token_file} must hold one token of printable ASCII, no spaces")
    return token
