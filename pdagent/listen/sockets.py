"""pd-listen's sockets: the listening ones from the settings, and how the log names a client.

A TCP socket binds the address as given (IPv6 only for an IPv6 address). The
Unix socket may be connected to by any local user (mode 0666): queueing is a
right every local user has through pd-send. A socket file left by a killed
pd-listen is replaced; anything else at the path, or a socket someone still
listens on, is not.
"""

import errno
import os
import socket
import stat
import struct

_BACKLOG = 1024


def client_name(sock, address):
    """How the log names a client: ip:port, [ipv6]:port, or the Unix socket peer's uid and pid."""
    if sock.family == socket.AF_UNIX:
        try:
            pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              struct.calcsize("3i")))
            return f"unix:uid={uid},pid={pid}"
        except OSError:
            return "unix"
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    return f"{address[0]}:{address[1]}"


def open_listening_sockets(settings):
    """The bound, listening sockets of `settings` (TCP and/or Unix); OSError if one cannot be had."""
    sockets = []
    if settings.address is not None:
        host, port = settings.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
        sockets.append(sock)
    if settings.socket_path:
        sockets.append(_unix_socket(settings.socket_path))
    return sockets


def _unix_socket(path):
    """A listening socket at `path`, any local user may connect (pd-send's rights); a stale one is replaced."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as error:
        if error.errno != errno.EADDRINUSE or _socket_in_use(path):
            sock.close()
            raise
        os.unlink(path)  # a socket nobody listens on: left by a killed pd-listen
        sock.bind(path)
    os.chmod(path, 0o666)
    sock.listen(_BACKLOG)
    return sock


def _socket_in_use(path):
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return True  # not a socket: never removed
    except OSError:
        return True
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
