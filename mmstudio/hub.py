"""Whether the Hugging Face Hub can be reached from here: known, not assumed.

Three answers are told apart: the hub answered ("hub reachable"), the settings say offline
("offline by setting": ``HF_HUB_OFFLINE`` / ``MMSTUDIO_OFFLINE``, and then nothing is asked), or
nothing answered ("no network"). The check is one HEAD request to the hub's address with a short
timeout. ``HubStatus.start`` makes it in a background thread, so the first page never waits for it;
``HubStatus.check`` makes it again (a failed download calls it, to say why it failed). Nothing here
touches the network until one of those two is called.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

log = logging.getLogger(__name__)

REACHABLE = "reachable"
OFFLINE = "offline"
UNREACHABLE = "unreachable"
UNKNOWN = "unknown"  # not checked yet, or the check is still running
LABELS = {
    REACHABLE: "hub reachable",
    OFFLINE: "offline by setting",
    UNREACHABLE: "no network",
    UNKNOWN: "checking the hub",
}
TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Reachability:
    state: str  # REACHABLE, OFFLINE, UNREACHABLE or UNKNOWN
    detail: str  # what was seen, for the log and the Models tab

    @property
    def label(self) -> str:
        return LABELS[self.state]

    @property
    def reachable(self) -> bool:
        return self.state == REACHABLE

    def describe(self) -> str:
        return f"{self.label} ({self.detail})"


def default_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def probe(endpoint: str, timeout: float = TIMEOUT_S) -> Reachability:
    """One HEAD request to ``endpoint``: any HTTP answer means reachable. Honours the proxy
    variables (``HTTPS_PROXY`` ...), as downloads do."""
    import httpx

    host = urlparse(endpoint).netloc or endpoint
    start = time.perf_counter()
    try:
        response = httpx.head(endpoint, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException:
        return Reachability(UNREACHABLE, f"no answer from {host} within {timeout:g} s")
    except (httpx.HTTPError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        return Reachability(UNREACHABLE, f"cannot reach {host}: {reason}")
    seconds = time.perf_counter() - start
    return Reachability(REACHABLE,
                        f"{host} answered (HTTP {response.status_code}) in {seconds:.2f} s")


class HubStatus:
    """The studio's current knowledge of the hub's reachability; thread-safe."""

    def __init__(self, offline: bool, endpoint: str | None = None,
                 timeout: float = TIMEOUT_S) -> None:
        self.offline = offline
        self._endpoint = endpoint
        self.timeout = timeout
        self._lock = threading.Lock()
        self._result: Reachability | None = None
        self._running: threading.Event | None = None
        self.probes = 0  # checks made (for tests: offline makes none)

    @classmethod
    def from_settings(cls, settings) -> HubStatus:  # noqa: ANN001 - config.Settings
        return cls(settings.offline, settings.hub_endpoint)

    @property
    def endpoint(self) -> str:
        return self._endpoint or default_endpoint()

    def current(self) -> Reachability:
        """What is known now; never waits and never touches the network."""
        if self.offline:
            return Reachability(OFFLINE, "HF_HUB_OFFLINE or MMSTUDIO_OFFLINE is set")
        with self._lock:
            if self._result is not None:
                return self._result
            checking = self._running is not None
        return Reachability(UNKNOWN, "checking now" if checking else "not checked yet")

    def start(self) -> None:
        """Check in the background (returns at once); nothing to do when offline by setting."""
        if not self.offline:
            self._begin()

    def check(self) -> Reachability:
        """Check now (or join the check that is running), waiting at most about the timeout."""
        if self.offline:
            return self.current()
        done = self._begin()
        if not done.wait(self.timeout + 1.0):  # a name lookup can outlast the HTTP timeout
            host = urlparse(self.endpoint).netloc
            with self._lock:
                self._result = Reachability(
                    UNREACHABLE, f"no answer from {host} within {self.timeout:g} s")
        return self.current()

    def wait(self, timeout: float) -> Reachability:
        """What is known once the running check (if any) ends, waiting at most ``timeout``."""
        with self._lock:
            running = self._running
        if running is not None:
            running.wait(timeout)
        return self.current()

    def _begin(self) -> threading.Event:
        with self._lock:
            if self._running is not None:
                return self._running
            done = self._running = threading.Event()
            self.probes += 1
        endpoint = self.endpoint

        def work() -> None:
            try:
                result = probe(endpoint, self.timeout)
            except Exception as exc:  # noqa: BLE001 - a check must never take the studio down
                result = Reachability(UNREACHABLE, f"the check failed: {exc!r}")
            with self._lock:
                self._result = result
                self._running = None
            done.set()
            log.info("Hugging Face Hub: %s", result.describe())

        threading.Thread(target=work, name="mmstudio-hub-check", daemon=True).start()
        return done
