"""The agent's configuration: one INI file, section [Main].

Which file: $PDAGENT_CONFIG if set, else conf/pdagent.conf when the package
runs from a source checkout (the "dev layout"), else /etc/pdagent.conf.

Two readers of the same file, for two kinds of caller:
- `load_locations()` (pd-send, pd-queue, the library): only data_dir, log_dir
  and pid_dir, checked; every other key is the daemon's and is neither read
  nor checked, so no daemon-only setting (an unknown key, a ca_bundle the
  caller cannot read, a proxy_url_file only the daemon may open) ever stops
  an event from being queued.
- `main_config.load_main_config()` (pdagentd): every key, each checked;
  only the daemon and whoever asks for the whole file import it.

Every problem either reader sees (missing file, missing section, bad value)
raises ConfigError with one line naming the file and the key; the commands
print it and exit non-zero.

The file is read by a small INI reader here rather than configparser, whose
import (regex compiling) pd-send's start-up cannot afford. It reads
a file exactly as configparser.ConfigParser(interpolation=None, strict=False)
does ('=' or ':' between key and value; whole-line '#' and ';' comments, no
inline ones; keys lowercased; continuation lines by indentation, blank lines
kept inside a value; [DEFAULT] inherited by every section; a section given
again adds to the first, a key given again takes the later value, as the
original agent's ConfigParser did), or refuses it with the line number;
tests/test_differential.py proves that against configparser. Not strict on
purpose: the shipped file sets every key, so a line appended for a key
(`echo ... >> /etc/pdagent.conf`, as fleets of the original agent did) must
not stop the daemon; it logs each repeated key at start.

`load_agent_config()` and the AgentConfig methods keep the names the original
agent's integration scripts call.
"""

import os

from pdagent.spool import db_dir_of

# Installed layout (the .deb / .rpm).
SYSTEM_CONFIG_FILE = "/etc/pdagent.conf"
SYSTEM_DIRS = {
    "data_dir": "/var/lib/pdagent",
    "log_dir": "/var/log/pdagent",
    "pid_dir": "/var/run/pdagent",
}

class ConfigError(Exception):
    """A configuration problem, as one line naming the file and key."""


def source_root():
    """The checkout this package runs from, or None when it is installed."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(package_dir)
    if (os.path.isfile(os.path.join(root, "setup.py"))
            and os.path.isfile(os.path.join(root, "conf", "pdagent.conf"))):
        return root
    return None


def config_file_path():
    explicit = os.environ.get("PDAGENT_CONFIG")
    if explicit:
        return explicit
    root = source_root()
    if root:
        return os.path.join(root, "conf", "pdagent.conf")
    return SYSTEM_CONFIG_FILE


def _default_dirs():
    root = source_root()
    if root:
        dev_dir = os.path.join(root, "tmp")
        return {"data_dir": dev_dir, "log_dir": dev_dir, "pid_dir": dev_dir}
    return dict(SYSTEM_DIRS)


class Locations:
    """Where the spool, the log and the pid file are (data_dir, log_dir, pid_dir): all that
    queueing and pd-queue read of the config, and every path derived from them."""

    def __init__(self, path, values):
        self.path = path
        self.__dict__.update(values)

    def as_dict(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("path", "repeated_keys")}

    @property
    def outqueue_dir(self):
        return os.path.join(self.data_dir, "outqueue")

    @property
    def db_dir(self):
        return db_dir_of(self.outqueue_dir)

    @property
    def agent_id_file(self):
        return os.path.join(self.data_dir, "agent_id.txt")

    @property
    def pid_file(self):
        return os.path.join(self.pid_dir, "pdagentd.pid")

    @property
    def log_file(self):
        return os.path.join(self.log_dir, "pdagentd.log")


def read_ini(path, repeated=None):
    """{section: {key: value}} of an INI file, [DEFAULT]'s keys in every section.

    ConfigError (with the line) for what configparser would refuse, and for
    the few things it takes that this reader does not: a section header with
    text after its ']', a '[' line that is not a header. A key given again in
    a section takes the later value; `repeated` (a list), if given, hears
    (line number, section, key) of each such line.
    """
    try:
        with open(path, encoding="utf-8") as config_file:
            text = config_file.read()  # universal newlines: \r\n and \r end lines, as for configparser
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file in UTF-8") from None
    sections = {}
    current, key, key_indent = None, None, 0
    # Split on "\n" only: str.splitlines() would also end lines at \x0c, \x1c, \u2028...
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped[:1] in ("#", ";"):
            continue
        if not stripped:
            if key is not None:
                current[key].append("")  # kept if the value goes on below it
            continue
        indent = len(line) - len(line.lstrip())
        if key is not None and indent > key_indent:
            current[key].append(stripped)
            continue
        key_indent = indent
        if stripped.startswith("["):
            name = stripped[1:-1]
            if not stripped.endswith("]") or not name:
                raise ConfigError(f"{path}: line {number}: bad section header {stripped!r}")
            current, key = sections.setdefault(name, {}), None
            continue
        cut = min(at for at in (stripped.find("="), stripped.find(":"), len(stripped)) if at >= 0)
        if current is None or cut in (0, len(stripped)):
            raise ConfigError(f"{path}: line {number}: expected 'key = value' inside a [section]")
        key = stripped[:cut].rstrip().lower()
        if key in current and repeated is not None:
            repeated.append((number, name, key))
        current[key] = [stripped[cut + 1:].strip()]
    defaults = sections.get("DEFAULT", {})
    return {name: {key: "\n".join(lines).rstrip() for key, lines in {**defaults, **values}.items()}
            for name, values in sections.items()}


def read_ini_section(path, section="Main", repeated=None):
    """{key: value} of one section of an INI file; ConfigError (with the line) if malformed."""
    sections = read_ini(path, repeated)
    if section not in sections:
        raise ConfigError(f"{path}: missing section [{section}]")
    return sections[section]


def pop_locations(path, raw):
    """data_dir, log_dir and pid_dir, popped from `raw`: absolute paths, or the layout's defaults."""
    values = {}
    for key, directory in _default_dirs().items():
        value = raw.pop(key, "")
        if value == "":
            values[key] = directory
        elif not os.path.isabs(value):
            raise ConfigError(f"{path}: key '{key}' must be an absolute path, not '{value}'")
        else:
            values[key] = value
    return values


def load_locations(path=None, keys=()):
    """Where the spool, the log and the pid file are: all that queueing and pd-queue need.

    Reads the file as main_config.load_main_config() does but takes only data_dir, log_dir
    and pid_dir, and the string `keys` a caller asks for (stripped, "" when
    missing); the daemon's keys are not looked at.
    """
    path = path or config_file_path()
    raw = read_ini_section(path)
    values = pop_locations(path, raw)
    values.update((key, raw.get(key, "").strip()) for key in keys)
    return Locations(path, values)


class AgentConfig:
    """What `load_agent_config()` returns: the original agent's accessor API.

    Built on the locations alone, so a script queueing events works for any
    user whatever the daemon's settings; get_main_config() reads and checks
    the whole file when first called.
    """

    def __init__(self, locations):
        self.locations = locations
        self._main_config = None

    def is_dev_layout(self):
        return source_root() is not None and not os.environ.get("PDAGENT_CONFIG")

    def get_main_config(self):
        # The daemon's checks, imported only when asked for.
        from pdagent.main_config import load_main_config
        if self._main_config is None:
            self._main_config = load_main_config(self.locations.path)
        return self._main_config.as_dict()

    def get_conf_dirs(self):
        return {
            "data_dir": self.locations.data_dir,
            "log_dir": self.locations.log_dir,
            "pid_dir": self.locations.pid_dir,
            "pidfile_dir": self.locations.pid_dir,
            "outqueue_dir": self.locations.outqueue_dir,
            "db_dir": self.locations.db_dir,
        }

    def get_outqueue_dir(self):
        return self.locations.outqueue_dir

    def get_db_dir(self):
        return self.locations.db_dir

    def get_agent_id_file(self):
        return self.locations.agent_id_file

    def get_agent_id(self):
        from pdagent.spool.files import read_agent_id
        return read_agent_id(self.locations.agent_id_file)

    def get_enqueuer(self):
        from pdagent.spool.queue import Spool
        return Spool(self.locations.outqueue_dir).enqueuer()

    def get_queue(self):
        from pdagent.spool.queue import Spool
        return Spool(self.locations.outqueue_dir, db_dir=self.locations.db_dir)


def load_agent_config(path=None):
    return AgentConfig(load_locations(path))
