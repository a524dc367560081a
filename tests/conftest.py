"""Test settings: CPU only, no network, no analytics."""

from __future__ import annotations

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import pytest  # noqa: E402

from mmstudio.config import Settings  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Trainers and evaluators run in-process configure the root logger for their console
    (``logging.basicConfig(force=True)``): undo it after each test, or their handler writes INFO
    lines into the captured stderr of later tests (and into closed files)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def offline_settings(tmp_path: Path) -> Settings:
    """Offline settings with an empty assets folder and an empty hub cache of their own."""
    (tmp_path / "assets" / "models").mkdir(parents=True)
    (tmp_path / "hub").mkdir()
    return Settings(offline=True, assets=tmp_path / "assets", hub_cache=tmp_path / "hub")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory):
    """`python app.py` on a free local port, offline, as a user would start it; yields its URL."""
    yield from serve_app(tmp_path_factory)


def serve_app(tmp_path_factory: pytest.TempPathFactory, **env_overrides: str):
    """Start `python app.py` (with an empty hub cache and ``env_overrides``); yield its URL, then
    stop it."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    hub_cache = tmp_path_factory.mktemp("empty-hub-cache")
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1",
               MMSTUDIO_HUB_CACHE=str(hub_cache), **env_overrides)
    root = Path(__file__).resolve().parent.parent
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited:\n{log_path.read_text()}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        raise RuntimeError(f"app.py did not serve within 120 s:\n{log_path.read_text()}")
    yield url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Expose each phase's report on the item (``item.rep_call``), for screenshots on failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# ------------------------------------------------------------------------------ browser tests
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (see README)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server: str, request: pytest.FixtureRequest):
    """A fresh page that records console errors and requests to foreign hosts."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_errors = []
    page.foreign_requests = []
    own_host = urlparse(app_server).netloc
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))

    def on_request(req) -> None:
        parsed = urlparse(req.url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.netloc != own_host:
            page.foreign_requests.append(req.url)

    page.on("request", on_request)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()
