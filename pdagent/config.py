"""The agent's configuration: one INI file, section [Main].

Which file: $PDAGENT_CONFIG if set, else conf/pdagent.conf when the package
runs from a source checkout (the "dev layout"), else /etc/pdagent.conf.

Every problem (missing file, missing section, bad value) raises ConfigError
with one line naming the file and the key; the commands print it and exit
non-zero.

The file is read by a small INI reader here rather than configparser, whose
import alone costs pd-send several milliseconds of regex compiling: it takes
`[Section]` headers, `key = value` or `key: value` lines, `#`/`;` comment
lines and indented continuation lines, which is what configparser takes from
such a file, and rejects anything else with the line number.

`load_agent_config()` and the AgentConfig methods keep the names the original
agent's integration scripts call.
"""

import math
import os

from pdagent.event import is_url

# Installed layout (the .deb / .rpm).
SYSTEM_CONFIG_FILE = "/etc/pdagent.conf"
SYSTEM_DIRS = {
    "data_dir": "/var/lib/pdagent",
    "log_dir": "/var/log/pdagent",
    "pid_dir": "/var/run/pdagent",
}

DEFAULT_EVENTS_API_URL = "https://events.pagerduty.com"

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
    "ca_bundle": "",
    "log_level": "INFO",
    "data_dir": None,
    "log_dir": None,
    "pid_dir": None,
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


class MainConfig:
    """The parsed [Main] section, one attribute per key."""

    def __init__(self, path, values):
        self.path = path
        self.__dict__.update(values)

    def as_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "path"}

    # Derived locations, in one place so every module agrees.
    @property
    def outqueue_dir(self):
        return os.path.join(self.data_dir, "outqueue")

    @property
    def db_dir(self):
        return os.path.join(self.data_dir, "db")

    @property
    def agent_id_file(self):
        return os.path.join(self.data_dir, "agent_id.txt")

    @property
    def pid_file(self):
        return os.path.join(self.pid_dir, "pdagentd.pid")

    @property
    def log_file(self):
        return os.path.join(self.log_dir, "pdagentd.log")


def read_ini_section(path, section="Main"):
    """{key: value} of one section of an INI file; ConfigError (with the line) if malformed."""
    try:
        with open(path, encoding="utf-8") as config_file:
            lines = config_file.read().splitlines()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file in UTF-8") from None
    sections = {}
    current, last_key = None, None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text[0] in "#;":
            continue
        if line[0].isspace() and last_key is not None:
            current[last_key] = (current[last_key] + "\n" + text).strip()
            continue
        if text.startswith("["):
            name = text[1:-1].strip()
            if not text.endswith("]") or not name or name in sections:
                raise ConfigError(f"{path}: line {number}: bad or repeated section header {text!r}")
            current, last_key = sections.setdefault(name, {}), None
            continue
        cut = min((at for at in (text.find("="), text.find(":")) if at > 0), default=-1)
        if current is None or cut < 0:
            raise ConfigError(f"{path}: line {number}: expected 'key = value' inside a [section]")
        last_key = text[:cut].strip().lower()
        if last_key in current:
            raise ConfigError(f"{path}: line {number}: key '{last_key}' given twice")
        current[last_key] = text[cut + 1:].strip()
    if section not in sections:
        raise ConfigError(f"{path}: missing section [{section}]")
    return sections[section]


def load_main_config(path=None):
    path = path or config_file_path()
    raw = read_ini_section(path)
    values = {}
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

    for key, directory in _default_dirs().items():
        if values[key] is None:
            values[key] = directory
        elif not os.path.isabs(values[key]):
            raise ConfigError(f"{path}: key '{key}' must be an absolute path, not '{values[key]}'")
    _check_values(path, values)
    return MainConfig(path, values)


def _parse_number(path, key, text, kind, default):
    if text is None or text.strip() == "":
        return default
    try:
        value = kind(text.strip())
    except ValueError:
        raise ConfigError(f"{path}: key '{key}' must be a number, not '{text.strip()}'") from None
    if not math.isfinite(value):  # float() takes "nan" and "inf"
        raise ConfigError(f"{path}: key '{key}' must be a finite number, not '{text.strip()}'")
    if value < 0:
        raise ConfigError(f"{path}: key '{key}' must not be negative, not '{text.strip()}'")
    return value


def _check_url(path, key, url, schemes):
    if not is_url(url, schemes):
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ConfigError(f"{path}: key '{key}' must be a {wanted} URL, not '{url}'")


def _check_values(path, values):
    _check_url(path, "events_api_url", values["events_api_url"], ("https", "http"))
    values["events_api_url"] = values["events_api_url"].rstrip("/")
    if values["proxy_url"]:
        _check_url(path, "proxy_url", values["proxy_url"], ("http", "https", "socks5", "socks5h"))
    for key in ("send_interval_secs", "cleanup_interval_secs", "backoff_interval_secs",
                "http_timeout_secs"):
        if values[key] == 0:
            raise ConfigError(f"{path}: key '{key}' must be greater than 0")
    if not 1 <= values["send_concurrency"] <= 16:
        raise ConfigError(f"{path}: key 'send_concurrency' must be from 1 to 16")
    if values["backoff_max_secs"] < values["backoff_interval_secs"]:
        raise ConfigError(f"{path}: key 'backoff_max_secs' must be at least backoff_interval_secs")
    if values["ca_bundle"] and not os.path.isfile(values["ca_bundle"]):
        raise ConfigError(f"{path}: key 'ca_bundle' names no file: '{values['ca_bundle']}'")
    level = values["log_level"].upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{path}: key 'log_level' must be one of {', '.join(_LOG_LEVELS)}")
    values["log_level"] = "WARNING" if level == "WARN" else level
    _check_source_address(path, values["source_address"])


def _check_source_address(path, address):
    """An IPv4 or IPv6 literal (checked by hand: socket and ipaddress cost pd-send milliseconds)."""
    parts = address.split(".")
    if len(parts) == 4 and all(part.isdigit() and int(part) < 256 for part in parts):
        return
    if ":" in address and address.count("::") <= 1 \
            and all(char in "0123456789abcdefABCDEF:." for char in address):
        return
    raise ConfigError(f"{path}: key 'source_address' must be an IP address, not '{address}'")


class AgentConfig:
    """What `load_agent_config()` returns: the original agent's accessor API."""

    def __init__(self, main_config):
        self.main = main_config

    def is_dev_layout(self):
        return source_root() is not None and not os.environ.get("PDAGENT_CONFIG")

    def get_main_config(self):
        return self.main.as_dict()

    def get_conf_dirs(self):
        return {
            "data_dir": self.main.data_dir,
            "log_dir": self.main.log_dir,
            "pid_dir": self.main.pid_dir,
            "pidfile_dir": self.main.pid_dir,
            "outqueue_dir": self.main.outqueue_dir,
            "db_dir": self.main.db_dir,
        }

    def get_outqueue_dir(self):
        return self.main.outqueue_dir

    def get_db_dir(self):
        return self.main.db_dir

    def get_agent_id(self):
        from pdagent.spool import read_agent_id
        return read_agent_id(self.main.agent_id_file)

    def get_enqueuer(self):
        from pdagent.spool import Spool
        return Spool(self.main.outqueue_dir).enqueuer()

    def get_queue(self):
        from pdagent.spool import Spool
        return Spool(self.main.outqueue_dir, db_dir=self.main.db_dir)


def load_agent_config(path=None):
    return AgentConfig(load_main_config(path))
