"""scripts/systemd_tree.py's decisions that need no boot: which Debian mirror, and is it reachable.

The boot itself is exercised by tests/test_system_systemd.py (`make test-system`).
"""

import pytest
import systemd_tree  # scripts/, on the path through helpers.py
from helpers import closed_port


def write(directory, name, text):
    path = directory / name
    path.write_text(text)
    return str(path)


def test_one_line_and_deb822_sources_are_both_read(tmp_path):
    one_line = write(tmp_path, "sources.list",
                     "# deb http://commented.example/debian bookworm main\n"
                     "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ bookworm main contrib\n"
                     "deb-src http://src.example/debian bookworm main\n"
                     "deb http://one.example/debian-security bookworm-security main # the security one\n")
    deb822 = write(tmp_path, "debian.sources",
                   "Types: deb deb-src\nURIs: http://822.example/debian\nSuites: trixie trixie-updates\n"
                   "Components: main\n\n"
                   "# Enabled: no below\nTypes: deb\nURIs: http://off.example/debian\nSuites: trixie\n"
                   "Enabled: no\n\n"
                   "Types: deb-src\nURIs: http://src822.example/debian\nSuites: trixie\n")
    assert systemd_tree.apt_sources([one_line, deb822, str(tmp_path / "missing.list")]) == [
        ("http://one.example/debian/", ["bookworm"]),
        ("http://one.example/debian-security", ["bookworm-security"]),
        ("http://822.example/debian", ["trixie", "trixie-updates"]),
    ]


def test_the_mirror_is_the_one_serving_the_hosts_release():
    sources = [("https://packages.example.com/apt", ["cloud-sdk-bookworm"]),
               ("http://mirror.example/debian/", ["bookworm", "bookworm-updates"]),
               ("http://security.example/debian-security", ["bookworm-security"])]
    assert systemd_tree.debian_mirror(sources, "bookworm") == (
        "http://mirror.example/debian", "http://security.example/debian-security")
    # No security source listed: the mirror's own debian-security archive.
    assert systemd_tree.debian_mirror(sources[:2], "bookworm") == (
        "http://mirror.example/debian", "http://mirror.example/debian-security")


@pytest.mark.parametrize("sources, reason", [
    ([("http://mirror.example/debian", ["bullseye"])], "no Debian mirror for 'bookworm'"),
    ([("http://mirror.example/ubuntu", ["bookworm"])], "no bookworm-security source"),
])
def test_no_usable_mirror_is_said(sources, reason):
    with pytest.raises(systemd_tree.MirrorUnreachable, match=reason):
        systemd_tree.debian_mirror(sources, "bookworm")


def test_an_unreachable_mirror_is_said_in_one_line():
    mirror = f"http://127.0.0.1:{closed_port()}/debian"
    with pytest.raises(systemd_tree.MirrorUnreachable) as raised:
        systemd_tree.check_reachable(mirror, mirror + "-security", "bookworm")
    message = str(raised.value)
    assert message.startswith(f"{mirror}/dists/bookworm/InRelease: ") and "refused" in message
    assert "\n" not in message
