"""The agent's configuration: one INI file, section [Main].

Which file: $PDAGENT_CONFIG if set, else conf/pdagent.conf when the package
runs from a source checkout (the "dev layout"), else /etc/pdagent.conf.

Two readers of the same file, for two kinds of caller:
- `load_locations()` (pd-send, pd-queue, the library): only data_dir, log_dir
  and pid_dir, checked; every other key is the daemon's and is neither read
  nor checked, so no daemon-only setting (an unknown key, a ca_bundle the
  caller cannot read, a proxy_url_file only the daemon may open) ever stops
  an event from being queued.
- `load_main_config()` (pdagentd): every key, each checked.

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

from pdagent.formats import is_ip_address, is_url
from pdagent.spool.tree import db_dir_of

# Installed layout (the .deb / .rpm).
SYSTEM_CONFIG_FILE = "/etc/pdagent.conf"
SYSTEM_DIRS = {
    "data_dir": "/var/lib/pdagent",
    "log_dir": "/var/log/pdagent",
    "pid_dir": "/var/run/pdagent",
}

DEFAULT_EVENTS_API_URL = "https://events.pagerduty.com"
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_MAX_PROXY_URL_BYTES = 4096

# key -> (parser, default). Defaults of the original agent's keys are its own.
_INT_KEYS = {
    "send_interval_secs": 10,
    "cleanup_interval_secs": 10800,
    "cleanup_threshold_secs": 604800,
    "backoff_interval_secs": 60,
    "backoff_max_secs": 600,
    "retry_limit_for_possible_errors": 60,
    "max_events_per_minute_per_key": 120,
    "send_concurrency": 1,
}
_FLOAT_KEYS = {"http_timeout_secs": 10.0}
_STRING_KEYS = {
    "events_api_url": DEFAULT_EVENTS_API_URL,
    "source_address": "0.0.0.0",
    "proxy_url": "",
    "proxy_url_file": "",
    "ca_bundle": "",
    "log_level": "INFO",
    # pd-listen's (pdagent/listen/settings.py checks them); the daemon only accepts them.
    "listen_address": "",
    "listen_socket": "",
    "listen_token_file": "",
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")
# The original agent had these; they are accepted (and ignored) so an old
# /etc/pdagent.conf still loads.
_OBSOLETE_KEYS = {"event_api_url", "check_freq_sec", "cleanup_freq_sec",
                  "send_event_timeout_sec", "max_event_bytes", "backoff_secs"}


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


class MainConfig(Locations):
    """The parsed [Main] section, one attribute per key: the daemon's configuration."""

    def __init__(self, path, values, repeated_keys=()):
        super().__init__(path, values)
        self.repeated_keys = list(repeated_keys)  # one line each, for the daemon's log


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


def _take_locations(path, raw):
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

    Reads the file as load_main_config() does but takes only data_dir, log_dir
    and pid_dir, and the string `keys` a caller asks for (stripped, "" when
    missing); the daemon's keys are not looked at.
    """
    path = path or config_file_path()
    raw = read_ini_section(path)
    values = _take_locations(path, raw)
    values.update((key, raw.get(key, "").strip()) for key in keys)
    return Locations(path, values)


def load_main_config(path=None):
    """Every key, checked: the daemon's configuration."""
    path = path or config_file_path()
    repeated = []
    raw = read_ini_section(path, repeated=repeated)
    values = _take_locations(path, raw)
    for key, default in _INT_KEYS.items():
        values[key] = _parse_number(path, key, raw.pop(key, None), int, default)
    for key, default in _FLOAT_KEYS.items():
        values[key] = _parse_number(path, key, raw.pop(key, None), float, default)
    for key, default in _STRING_KEYS.items():
        value = raw.pop(key, None)
        values[key] = default if value is None or value.strip() == "" else value.strip()
    for key in _OBSOLETE_KEYS:
        raw.pop(key, None)
    if raw:
        unknown = min(raw)
        raise ConfigError(f"{path}: unknown key '{unknown}' in [Main]")
    _check_values(path, values)
    return MainConfig(path, values, [f"{path}: line {number}: key '{key}' given again in [{section}]; "
                                     f"this later value is used" for number, section, key in repeated])


def _parse_number(path, key, text, kind, default):
    if text is None or text.strip() == "":
        return default
    try:
        value = kind(text.strip())
    except ValueError:
        raise ConfigError(f"{path}: key '{key}' must be a number, not '{text.strip()}'") from None
    if value - value != 0:  # float() takes "nan" and "inf" (whose difference is nan)
        raise ConfigError(f"{path}: key '{key}' must be a finite number, not '{text.strip()}'")
    if value < 0:
        raise ConfigError(f"{path}: key '{key}' must not be negative, not '{text.strip()}'")
    return value


def _url_kinds(schemes):
    return " or ".join(f"{scheme}://" for scheme in schemes)


def _check_url(path, key, url, schemes):
    if not is_url(url, schemes):
        raise ConfigError(f"{path}: key '{key}' must be a {_url_kinds(schemes)} URL, not '{url}'")


def read_secret_file(path, key, file_name, limit):
    """At most `limit` + 1 bytes of the file that `key` of config file `path` names, which
    holds a secret (a proxy's credentials, pd-listen's token).

    ConfigError if the name is not absolute or the file cannot be read. Neither
    this nor its callers ever quote the content in an error: the message may end
    up in a log that more people read than the file.
    """
    if not os.path.isabs(file_name):
        raise ConfigError(f"{path}: key '{key}': must be an absolute path, not '{file_name}'")
    try:
        with open(file_name, "rb") as secret_file:
            return secret_file.read(limit + 1)
    except OSError as error:
        raise ConfigError(f"{path}: key '{key}': cannot read {file_name}: {error.strerror}") from None


def _read_proxy_url_file(path, url_file_name):
    """The proxy URL from the file proxy_url_file names, which may hold credentials."""
    problem = f"{path}: key 'proxy_url_file':"
    data = read_secret_file(path, "proxy_url_file", url_file_name, _MAX_PROXY_URL_BYTES)
    try:
        url = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        url = None
    if url == "":
        raise ConfigError(f"{problem} {url_file_name} is empty")
    if url is None or len(data) > _MAX_PROXY_URL_BYTES or not is_url(url, PROXY_SCHEMES):
        raise ConfigError(f"{problem} {url_file_name} must hold one {_url_kinds(PROXY_SCHEMES)} URL")
    return url


def _check_values(path, values):
    _check_url(path, "events_api_url", values["events_api_url"], ("https", "http"))
    values["events_api_url"] = values["events_api_url"].rstrip("/")
    if values["proxy_url_file"]:
        if values["proxy_url"]:
            raise ConfigError(f"{path}: keys 'proxy_url' and 'proxy_url_file' exclude each other: set one")
        values["proxy_url"] = _read_proxy_url_file(path, values["proxy_url_file"])
    elif values["proxy_url"]:
        _check_url(path, "proxy_url", values["proxy_url"], PROXY_SCHEMES)
    for key in ("send_interval_secs", "cleanup_interval_secs", "backoff_interval_secs",
                "http_timeout_secs"):
        if values[key] == 0:
            raise ConfigError(f"{path}: key '{key}' must be greater than 0")
    if not 1 <= values["send_concurrency"] <= 16:
        raise ConfigError(f"{path}: key 'send_concurrency' must be from 1 to 16")
    if values["backoff_max_secs"] < values["backoff_interval_secs"]:
        raise ConfigError(f"{path}: key 'backoff_max_secs' must be at least backoff_interval_secs")
    if values["ca_bundle"]:
        _check_readable_file(path, "ca_bundle", values["ca_bundle"])
    level = values["log_level"].upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{path}: key 'log_level' must be one of {', '.join(_LOG_LEVELS)}")
    values["log_level"] = "WARNING" if level == "WARN" else level
    if not is_ip_address(values["source_address"]):
        raise ConfigError(f"{path}: key 'source_address' must be an IP address, "
                          f"not '{values['source_address']}'")


def _check_readable_file(path, key, file_name):
    """A file this process may read: the daemon's TLS would fail on it later, less clearly."""
    if not (os.path.isfile(file_name) and os.access(file_name, os.R_OK)):
        raise ConfigError(f"{path}: key '{key}' names no file this user can read: '{file_name}'")


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
