"""A real systemd, booted as PID 1 of its own namespaces on a cached Debian root tree.

The system tests (tests/test_system_systemd.py) install the .deb in such a
tree and drive it with systemctl, journalctl and service, as on a host whose
init is systemd. This machine has no init system, and booting systemd on its
own root would empty the real /tmp and start every service installed here,
so everything below keeps the boot away from the host:

- systemd boots on an overlay of a cached tree: the cache stays exactly as
  `cached_tree` built it, and each boot's changes go to a scratch directory
  removed after the boot.
- Every mount is made in a private mount namespace (propagation private) and
  vanishes with it: nothing to unmount afterwards. The boot sees its own
  /proc (with /proc/sys read-only), a read-only /sys, a minimal /dev, and
  tmpfs /run and /tmp. Nothing of the host's is bind-mounted into the tree
  but the console's pty: files go in by copying (`BootedTree.put`). The tree
  is the namespace's root (pivot_root), as a host's is: the kernel refuses a
  chrooted process a user namespace, so a unit with PrivateUsers= would fail.
- New pid, mount, UTS, IPC and cgroup namespaces; the network namespace is the
  host's, so a daemon in the tree reaches a server on the host's 127.0.0.1.
- systemd runs without the capabilities that reach the host's kernel: module
  loading, the clock, raw I/O, audit, the kernel log, network configuration.
- The boot lives in a cgroup of its own. Only the systemd started here is ever
  killed (PID 1 of a pid namespace takes everything in it along), and if the
  process that booted it dies, the kernel kills it (setpriv --pdeathsig). The
  cgroup is removed after the boot.
"""

import contextlib
import ctypes
import datetime
import fcntl
import glob
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CACHE_DIR = "/var/cache/pdagent-test-trees"
MAX_AGE_DAYS = 7  # older trees are rebuilt, so security updates land in them
STAMP = ".pdagent-test-tree"  # written last: a tree without it is incomplete
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEMD = "/lib/systemd/systemd"

# What the tree needs to boot and be driven; procps for ps/pgrep in tests.
BOOT_PACKAGES = ["systemd", "systemd-sysv", "dbus", "procps"]
# What the pdagent .deb depends on, fetched (not installed) into apt's cache
# when the tree is built: the install still resolves them from the mirror.
PDAGENT_DEPENDENCIES = ["python3", "python3-requests", "python3-daemon", "python3-lockfile",
                        "adduser"]
# Units that would touch the host's kernel or devices, or are pointless here.
MASKED_UNITS = [
    "systemd-sysctl.service", "systemd-modules-load.service", "systemd-binfmt.service",
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-udev-settle.service",
    "getty@.service", "console-getty.service", "serial-getty@.service", "getty.target",
    "systemd-remount-fs.service", "systemd-timesyncd.service", "systemd-random-seed.service",
    "systemd-pstore.service", "systemd-firstboot.service", "systemd-update-utmp.service",
    "systemd-journald-audit.socket", "systemd-hwdb-update.service",
    "fstrim.timer", "e2scrub_all.timer", "apt-daily.timer", "apt-daily-upgrade.timer",
    "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount", "dev-hugepages.mount", "dev-mqueue.mount", "tmp.mount",
]
# Capabilities taken from the boot's bounding set (see the module's opening).
DROPPED_CAPABILITIES = ["sys_module", "sys_time", "sys_rawio", "audit_control", "audit_write",
                        "audit_read", "mac_admin", "mac_override", "syslog", "wake_alarm",
                        "net_admin", "sys_pacct", "block_suspend", "perfmon", "checkpoint_restore"]


class MirrorUnreachable(Exception):
    """The Debian mirror (or its security archive) did not answer."""


# -- the Debian mirror, as this host's apt is configured ---------------------------------------

def apt_sources(paths=None):
    """(URI, [suites]) of each `deb` source in one-line (.list) and deb822 (.sources) files."""
    if paths is None:
        paths = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) \
            + sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    sources = []
    for path in paths:
        try:
            with open(path) as source_file:
                text = source_file.read()
        except FileNotFoundError:
            continue
        if path.endswith(".sources"):
            sources += _deb822_sources(text)
        else:
            sources += _one_line_sources(text)
    return sources


def _one_line_sources(text):
    sources = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [options]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            sources.append((words[0], [words[1]]))
    return sources


def _deb822_sources(text):
    sources = []
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
            sources += [(uri, fields.get("suites", [])) for uri in fields.get("uris", [])]
    return sources


def debian_mirror(sources=None, codename=None):
    """(mirror, security mirror) URIs: those this host's apt uses for its own release."""
    sources = apt_sources() if sources is None else sources
    codename = codename or _host_codename()
    mirror = security = None
    for uri, suites in sources:
        uri = uri.rstrip("/")
        if mirror is None and codename in suites:
            mirror = uri
        if security is None and f"{codename}-security" in suites:
            security = uri
    if mirror is None:
        raise MirrorUnreachable(f"no Debian mirror for {codename!r} in /etc/apt/sources.list*")
    if security is None and mirror.endswith("/debian"):
        security = mirror + "-security"
    if security is None:
        raise MirrorUnreachable(f"no {codename}-security source in /etc/apt/sources.list*")
    return mirror, security


def _host_codename():
    with open("/etc/os-release") as os_release:
        for line in os_release:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    raise MirrorUnreachable("/etc/os-release names no VERSION_CODENAME")


def check_reachable(mirror, security, release):
    """Raises MirrorUnreachable unless both archives serve `release`'s index."""
    for url in (f"{mirror}/dists/{release}/InRelease", f"{security}/dists/{release}-security/InRelease"):
        try:
            with urllib.request.urlopen(url, timeout=20) as response:
                response.read(1)
        except (urllib.error.URLError, OSError) as error:
            raise MirrorUnreachable(f"{url}: {getattr(error, 'reason', error)}") from None


# -- the cached root tree -------------------------------------------------------------------------

def in_chroot(tree, argv, **kwargs):
    """argv run in `tree` with its own /proc, in private mount and pid namespaces: whatever a
    maintainer script starts dies with the namespace, and the mount with it."""
    return subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
         f"--mount-proc={tree}/proc", "chroot", tree,
         "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", *argv],
        check=True, **kwargs)


def tree_is_fresh(tree, max_age_days=MAX_AGE_DAYS):
    try:
        age = time.time() - os.stat(os.path.join(tree, STAMP)).st_mtime
    except FileNotFoundError:
        return False
    return age < max_age_days * 86400


def cached_tree(release, mirror, security, cache_dir=CACHE_DIR, max_age_days=MAX_AGE_DAYS, log=None):
    """The path of a bootable `release` tree under cache_dir, built if missing or too old."""
    tree = os.path.join(cache_dir, release)
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    with open(os.path.join(cache_dir, f".{release}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per tree; others wait, then reuse it
        if not tree_is_fresh(tree, max_age_days):
            building = tree + ".building"
            shutil.rmtree(building, ignore_errors=True)
            build_tree(building, release, mirror, security, log=log)
            shutil.rmtree(tree, ignore_errors=True)
            os.rename(building, tree)
    return tree


def build_tree(tree, release, mirror, security, log=None):
    """debootstrap (minbase), updates and security suites, systemd, units masked, the .deb's
    dependencies downloaded. `log`: a file for the tools' output."""
    def run(argv):
        subprocess.run(argv, check=True, stdout=log, stderr=subprocess.STDOUT if log else None)

    def chroot(*argv):
        in_chroot(tree, list(argv), stdout=log, stderr=subprocess.STDOUT if log else None)

    # Its own mount namespace: the /proc and /sys debootstrap mounts in the tree never reach
    # the host's, even if it dies half-way.
    run(["unshare", "--mount", "--propagation", "private",
         "debootstrap", "--variant=minbase", release, tree, mirror])
    with open(os.path.join(tree, "etc/apt/sources.list"), "w") as sources:
        sources.write(f"deb {mirror} {release} main\n"
                      f"deb {mirror} {release}-updates main\n"
                      f"deb {security} {release}-security main\n")
    shutil.copyfile("/etc/resolv.conf", os.path.join(tree, "etc/resolv.conf"))
    policy = os.path.join(tree, "usr/sbin/policy-rc.d")
    with open(policy, "w") as policy_file:  # no service starts inside the build's chroot
        policy_file.write("#!/bin/sh\nexit 101\n")
    os.chmod(policy, 0o755)
    chroot("apt-get", "update", "-q")
    chroot("apt-get", "dist-upgrade", "-y", "-q")  # the base at the level of updates/security
    chroot("apt-get", "install", "-y", "-q", "--no-install-recommends", *BOOT_PACKAGES)
    chroot("apt-get", "clean")  # keep in the cache only what the tests install
    chroot("apt-get", "install", "-y", "-q", "--no-install-recommends", "--download-only",
           *PDAGENT_DEPENDENCIES)
    os.unlink(policy)
    for unit in MASKED_UNITS:
        link = os.path.join(tree, "etc/systemd/system", unit)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink("/dev/null", link)
    with open(os.path.join(tree, STAMP), "w") as stamp:
        stamp.write(f"{release} from {mirror}, built {datetime.datetime.now().isoformat()}\n")


# -- booting it -----------------------------------------------------------------------------------

def _cgroup2_root():
    for candidate in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):  # pure v2, hybrid
        if os.path.exists(os.path.join(candidate, "cgroup.controllers")):
            return candidate
    raise RuntimeError("no cgroup2 hierarchy under /sys/fs/cgroup: systemd cannot boot here")


def _own_cgroup():
    with open("/proc/self/cgroup") as cgroups:
        for line in cgroups:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


def _cgroup_of(boot_name):
    """The cgroup a boot of that name lives in: under our own, in the cgroup2 hierarchy."""
    return os.path.join(_cgroup2_root(), _own_cgroup().lstrip("/"), boot_name)


def _remove_cgroup(path, timeout=10.0):
    """rmdir the cgroup and every group systemd made in it, deepest first (emptied by then)."""
    deadline = time.time() + timeout
    while os.path.isdir(path):
        for directory, _subdirs, _files in sorted(os.walk(path), key=lambda walked: -len(walked[0])):
            try:
                os.rmdir(directory)
            except OSError:
                pass  # still has a process leaving; tried again below
        if os.path.isdir(path):
            if time.time() > deadline:
                raise RuntimeError(f"cgroup {path} still has processes after the boot ended")
            time.sleep(0.1)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except FileNotFoundError:
        return []


def _parent(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("PPid:"))
    except FileNotFoundError:
        return None


def _drain(master_fd, log_path):
    """Copies the boot console to a file: a full pty would block systemd's console writes."""
    with open(log_path, "ab") as log:
        while True:
            try:
                data = os.read(master_fd, 65536)
            except OSError:  # EIO: every writer closed the pty
                break
            if not data:
                break
            log.write(data)
            log.flush()
    os.close(master_fd)


class BootedTree:
    """A systemd booted on an overlay of `tree`. Use `booted()`; run commands with `run`."""

    def __init__(self, tree, workdir):
        self.tree = tree
        self.workdir = workdir
        self.console_log = os.path.join(workdir, "console.log")
        self.cgroup = _cgroup_of(os.path.basename(workdir))
        self.process = None  # unshare, in the host's namespaces
        self.pid = None  # systemd, as the host sees it

    def start(self, timeout=60):
        for part in ("upper", "work", "merged"):
            os.mkdir(os.path.join(self.workdir, part))
        os.mkdir(self.cgroup)
        master, slave = os.openpty()  # the tree's /dev/console
        try:
            # sh joins the cgroup, then becomes setpriv, which makes the boot die with us.
            self.process = subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(self.cgroup, "cgroup.procs"),
                 "setpriv", "--pdeathsig=KILL",
                 "unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--uts", "--ipc",
                 "--cgroup", "--propagation", "private",
                 sys.executable, "-I", os.path.abspath(__file__), "boot-inner", self.tree, self.workdir],
                stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        finally:
            os.close(slave)
        threading.Thread(target=_drain, args=(master, self.console_log), daemon=True).start()
        deadline = time.time() + timeout
        while self.pid is None:
            self._check_alive()
            for child in _children(self.process.pid):
                with contextlib.suppress(FileNotFoundError), open(f"/proc/{child}/comm") as comm:
                    if comm.read().strip() == "systemd":
                        self.pid = child
            if time.time() > deadline:
                raise RuntimeError(f"systemd did not start; console:\n{self.console_tail()}")
            time.sleep(0.05)
        while True:  # until systemd answers and has finished booting
            state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=timeout)
            if state.stdout.strip() in ("running", "degraded"):
                return state.stdout.strip()
            self._check_alive()
            if time.time() > deadline:
                raise RuntimeError(f"systemd did not finish booting ({state.stdout.strip()!r} "
                                   f"{state.stderr.strip()!r}); console:\n{self.console_tail()}")
            time.sleep(0.2)

    def _check_alive(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"the boot exited {self.process.returncode}; console:\n{self.console_tail()}")

    def console_tail(self, characters=4000):
        try:
            with open(self.console_log, errors="replace") as log:
                return log.read()[-characters:]
        except FileNotFoundError:
            return ""

    def run(self, argv, check=True, timeout=300):
        """argv run inside the tree (its namespaces and root), with a clean environment."""
        full = ["nsenter", "-t", str(self.pid), "-m", "-p", "-u", "-i", "-C", "-r", "-w",
                "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_COLORS=0",
                "SYSTEMD_PAGER=", "DEBIAN_FRONTEND=noninteractive", *argv]
        result = subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"in the tree: {argv} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def path(self, path):
        """The host's path to `path` inside the running tree (through systemd's root)."""
        return f"/proc/{self.pid}/root/{path.lstrip('/')}"

    def put(self, source, destination):
        """Copies a host file into the tree, readable by all."""
        shutil.copyfile(source, self.path(destination))
        os.chmod(self.path(destination), 0o644)

    def stop(self, timeout=30):
        """Powers off; kills the systemd started here if it does not go. Idempotent."""
        if self.process is None:
            return
        if self.pid is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.run(["systemctl", "poweroff"], check=False, timeout=10)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                if _parent(self.pid) == self.process.pid:  # still our systemd, not a reused pid
                    os.kill(self.pid, signal.SIGKILL)  # this boot's PID 1 only; its namespace goes along
                self.process.wait(timeout)
        elif self.process.poll() is None:  # systemd never appeared: the boot's own unshare
            self.process.kill()
            self.process.wait(timeout)
        _remove_cgroup(self.cgroup)
        self.process = None


IN_USE = ".in-use"  # in a boot's work directory, locked (flock) for as long as its booter lives


@contextlib.contextmanager
def booted(tree, workdir_parent=None):
    """A BootedTree of `tree`, powered off and cleaned up (overlay, cgroup) on exit."""
    parent = workdir_parent or os.path.join(os.path.dirname(tree.rstrip("/")), "boots")
    os.makedirs(parent, mode=0o755, exist_ok=True)
    remove_dead_boots(parent)
    # Its name is also its cgroup's, beside whatever else runs here: say whose it is.
    workdir = tempfile.mkdtemp(prefix=f"pdagent-systest-{os.path.basename(tree.rstrip('/'))}-", dir=parent)
    with open(os.path.join(workdir, IN_USE), "w") as in_use:
        fcntl.flock(in_use, fcntl.LOCK_EX)
        system = BootedTree(tree, workdir)
        try:
            system.start()
            yield system
        finally:
            try:
                system.stop()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)


def remove_dead_boots(parent):
    """Work directories and cgroups left by a booter that was killed (its boot died with it)."""
    for name in os.listdir(parent):
        try:
            in_use = open(os.path.join(parent, name, IN_USE))  # noqa: SIM115 (closed below)
        except OSError:
            continue  # not a boot's, or one being made this instant
        with in_use:
            try:
                fcntl.flock(in_use, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its booter is alive
            _remove_cgroup(_cgroup_of(name), timeout=1.0)
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


# -- inside the new namespaces: PID 1 until it becomes systemd ------------------------------------

def _boot_inner(tree, workdir):
    """Makes the tree's mounts (all in this private mount namespace) and execs systemd in it."""
    root = os.path.join(workdir, "merged")

    def mount(*args):
        subprocess.run(["mount", *args], check=True)

    def character_device(name, major, minor):
        os.mknod(f"{root}/dev/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(f"{root}/dev/{name}", 0o666)  # past the umask

    console = os.ttyname(0)
    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir={tree},upperdir={workdir}/upper,workdir={workdir}/work", root)
    # /proc for the new pid namespace; no sysctl or sysrq writes reach the host's kernel.
    mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", f"{root}/proc")
    for entry in ("sys", "sysrq-trigger"):
        if os.path.exists(f"{root}/proc/{entry}"):
            mount("--bind", f"{root}/proc/{entry}", f"{root}/proc/{entry}")
            mount("-o", "remount,bind,ro", f"{root}/proc/{entry}")
    # /sys read-only; cgroup2 rooted at this boot's own cgroup (the cgroup namespace).
    mount("-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", f"{root}/sys")
    mount("-t", "cgroup2", "-o", "nosuid,nodev,noexec", "cgroup2", f"{root}/sys/fs/cgroup")
    # /dev: a tmpfs with the usual character devices only, no host block device.
    mount("-t", "tmpfs", "-o", "mode=755,nosuid,size=16m", "tmpfs", f"{root}/dev")
    for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                                 "urandom": (1, 9), "tty": (5, 0)}.items():
        character_device(name, major, minor)
    for name in ("pts", "shm"):
        os.mkdir(f"{root}/dev/{name}")
    mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620,gid=5", "devpts", f"{root}/dev/pts")
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", f"{root}/dev/shm")
    for link, target in {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                         "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}.items():
        os.symlink(target, f"{root}/dev/{link}")
    open(f"{root}/dev/console", "w").close()
    mount("--bind", console, f"{root}/dev/console")
    # The tree's own /run and /tmp: boot-time tmpfiles never see the host's.
    mount("-t", "tmpfs", "-o", "mode=755,nosuid,nodev", "tmpfs", f"{root}/run")
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", f"{root}/tmp")
    shutil.copyfile("/etc/resolv.conf", f"{root}/etc/resolv.conf")  # into the overlay: the cache stays
    bounding = ",".join(f"-{capability}" for capability in DROPPED_CAPABILITIES)
    os.execvp("setpriv", ["setpriv", f"--bounding-set={bounding}",
                          sys.executable, "-I", os.path.abspath(__file__), "boot-root", root])


MNT_DETACH = 2


def _boot_root(root):
    """Makes `root` the mount namespace's root, the host's root unmounted under it, and execs
    systemd there. Everything it needs after the pivot (ctypes) is loaded before it."""
    libc = ctypes.CDLL(None, use_errno=True)
    os.chdir(root)
    subprocess.run(["pivot_root", ".", "."], check=True)  # the old root now lies over the new one
    if libc.umount2(b".", MNT_DETACH) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unmounting the host's root after pivot_root: {os.strerror(error)}")
    os.chdir("/")
    os.execve(SYSTEMD, [SYSTEMD, "--system"], {"container": "pdagent-systest", "TERM": "vt100", "PATH": PATH})


if __name__ == "__main__":
    if sys.argv[1:2] == ["boot-inner"] and len(sys.argv) == 4:
        _boot_inner(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["boot-root"] and len(sys.argv) == 3:
        _boot_root(sys.argv[2])
    else:
        sys.exit("usage: systemd_tree.py boot-inner TREE WORKDIR | boot-root ROOT  (run by BootedTree.start)")
