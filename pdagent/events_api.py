"""One POST to the Events API v2, and what its answer means for the event.

A thin face over one requests.Session (keep-alive, a small connection pool
shared by the daemon's sender threads). The environment is read once, at
start-up, instead of on every request (`trust_env = False`): proxy from
`proxy_url`, else HTTPS_PROXY / HTTP_PROXY / NO_PROXY; CAs from `ca_bundle`,
else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, else the system's. TLS is always
verified.

Each endpoint's request is prepared once; an event sends a copy with its own
body through `Session.send`, which skips the per-call merging of settings
that `Session.post` does (what it saves: bench/RESULTS.md).

Every answer becomes an Outcome whose `kind` the delivery engine acts on:
    delivered    2xx                                  -> suc/
    rejected     4xx but 408/429 (the event is bad)   -> err/ at once
    throttled    429                                  -> back off the key, never err/
    failed       5xx, 408, read timeout, odd answers  -> back off; err/ after the retry limit
    unreachable  refused, reset, DNS, proxy, TLS      -> back off, never err/
"""

import email.utils
import json
import os
import time

import requests
from requests.adapters import HTTPAdapter

from pdagent import __version__
from pdagent.event import ENDPOINT_PATHS
from pdagent.formats import is_ascii_digits
from pdagent.outcome import DELIVERED, FAILED, REJECTED, THROTTLED, UNREACHABLE, Outcome


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None.

    Whatever the header holds (it may come from any proxy on the way), this
    returns a number or None and never raises: delta-seconds are ASCII digits
    only (int() would also read '٣'), a date that email.utils cannot turn into
    a moment is no date.
    """
    if not value:
        return None
    value = value.strip()
    if is_ascii_digits(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when is None:
            return None
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def classify_response(status, text, retry_after_header):
    reason = f"HTTP {status}: {' '.join(text[:500].split())}"
    retry_after = parse_retry_after(retry_after_header)
    if 200 <= status < 300:
        return Outcome(DELIVERED, status, reason)
    if status == 429:
        return Outcome(THROTTLED, status, reason, retry_after)
    if status == 407:
        # A proxy that wants credentials: the setup's fault, not the event's.
        return Outcome(UNREACHABLE, status, reason, retry_after)
    if 400 <= status < 500 and status != 408:
        return Outcome(REJECTED, status, reason)
    return Outcome(FAILED, status, reason, retry_after)


def proxies_for(url, proxy_url):
    """The proxies to use for `url`: the configured one, else the environment's (NO_PROXY honoured)."""
    if proxy_url:
        return {"http": proxy_url, "https": proxy_url}
    return requests.utils.get_environ_proxies(url)


def ca_bundle_for(configured):
    return configured or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


class _SourceAddressAdapter(HTTPAdapter):
    """Binds outgoing connections (direct and through a proxy) to `source_address`."""

    def __init__(self, source_address, **kwargs):
        self._source = (source_address, 0)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=self._source, **kwargs)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return super().proxy_manager_for(proxy, source_address=self._source, **proxy_kwargs)


class EventsAPI:
    """Posts events to `<events_api_url>/v2/enqueue` or `/v2/change/enqueue`."""

    def __init__(self, events_api_url, timeout_secs, proxy_url="", ca_bundle="",
                 source_address="0.0.0.0", connections=4):
        self.urls = {endpoint: events_api_url + path for endpoint, path in ENDPOINT_PATHS.items()}
        self.timeout = (timeout_secs, timeout_secs)
        session = requests.Session()
        session.trust_env = False
        session.headers.update({"User-Agent": f"pdagent/{__version__}",
                                "Content-Type": "application/json"})
        session.verify = ca_bundle_for(ca_bundle)
        session.proxies = proxies_for(events_api_url, proxy_url)
        if source_address not in ("0.0.0.0", "::"):
            adapter = _SourceAddressAdapter(source_address, pool_maxsize=connections)
        else:
            adapter = HTTPAdapter(pool_maxsize=connections)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self.session = session
        self._prepared = {endpoint: session.prepare_request(requests.Request("POST", url))
                          for endpoint, url in self.urls.items()}

    @property
    def proxy(self):
        return self.session.proxies.get("https") or self.session.proxies.get("http")

    def post(self, endpoint, body):
        request = self._prepared[endpoint].copy()
        request.body = json.dumps(body, separators=(",", ":")).encode("utf-8")
        request.headers["Content-Length"] = str(len(request.body))
        session = self.session
        try:
            response = session.send(request, timeout=self.timeout, allow_redirects=False,
                                    verify=session.verify, proxies=session.proxies)
        except requests.exceptions.SSLError as error:
            return Outcome(UNREACHABLE, reason=f"TLS verification failed: {_first_line(error)}",
                           tls_problem=True)
        except requests.exceptions.ProxyError as error:
            return Outcome(UNREACHABLE, reason=f"proxy error: {_first_line(error)}")
        except requests.exceptions.ConnectTimeout as error:
            return Outcome(UNREACHABLE, reason=f"connect timeout: {_first_line(error)}")
        except requests.exceptions.Timeout:
            return Outcome(FAILED, reason=f"no answer within {self.timeout[1]:g} s")
        except requests.exceptions.RequestException as error:
            return Outcome(UNREACHABLE, reason=f"connection failed: {_first_line(error)}")
        return classify_response(response.status_code, response.text,
                                 response.headers.get("Retry-After"))

    def close(self):
        self.session.close()


def _first_line(error):
    text = str(error) or type(error).__name__
    return " ".join(text.split())[:300]
