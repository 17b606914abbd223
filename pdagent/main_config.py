"""The [Main] section in full: every key of pdagent.conf, its default and its check.

The daemon's configuration (pdagentd; AgentConfig.get_main_config for the
original agent's scripts). Commands that only queue or read the spool take
config.load_locations() instead: nothing here may stop an event from being
queued, and pd-send's start-up does not import it.
"""

import os

from pdagent.config import (
    ConfigError,
    Locations,
    config_file_path,
    pop_locations,
    read_ini_section,
)
from pdagent.formats import is_ip_address, is_url

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


class MainConfig(Locations):
    """The parsed [Main] section, one attribute per key: the daemon's configuration."""

    def __init__(self, path, values, repeated_keys=()):
        super().__init__(path, values)
        self.repeated_keys = list(repeated_keys)  # one line each, for the daemon's log


def load_main_config(path=None):
    """Every key, checked: the daemon's configuration."""
    path = path or config_file_path()
    repeated = []
    raw = read_ini_section(path, repeated=repeated)
    values = pop_locations(path, raw)
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
