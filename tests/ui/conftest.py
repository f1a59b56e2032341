"""Fixtures of the page tests: the demo project, `strata ui` serving it, and headless Chromium driven by Selenium.

Each is made once per test session (per xdist worker) and shared: the demo takes seconds, the
server and the browser about one each. Chromium and its driver are Debian's `chromium` and
`chromium-driver`, installed through apt when missing (as root); without root or apt-get the
browser tests are skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from strata.demo import articles
from strata.ui.serve import page_address, ready_line
from tests.helpers import STRATA, run_strata
from tests.servers import _apt_install

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROWS = 60
"""Articles in the demo source of these tests."""
START_TIMEOUT = 60.0


@dataclass
class Demo:
    """The demo project after `strata demo`, and what the demo printed."""

    root: Path
    out: str


@dataclass
class Server:
    """A running `strata ui`: its address and process."""

    url: str
    process: subprocess.Popen[str]
    line: str
    """The line it printed with its address."""

    def stop(self) -> tuple[int, str]:
        """Stop it (SIGTERM, as Ctrl-C would); its exit code and what it wrote on stderr."""
        self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """`strata demo`, then its source change once more (five bodies back), ingested but not built.

    So the page has something stale: `clean.text` of 5 samples, because `articles.body` changed.
    """
    from strata.demo import write_source

    root = tmp_path_factory.mktemp("ui") / "demo"
    done = run_strata("demo", "--dir", str(root), "--rows", str(ROWS), cwd=root.parent)
    assert done.code == 0, done.err
    write_source(root, articles(ROWS))
    ingested = run_strata("-C", str(root), "run", "tap-jsonl", "target-strata", cwd=root.parent)
    assert ingested.code == 0, ingested.err
    return Demo(root, done.out)


def start_ui(root: Path, *args: str) -> Server:
    """`strata -C ROOT ui --port 0 ARGS…` in a subprocess, once it prints its address (bounded wait)."""
    process = subprocess.Popen(
        [*STRATA, "-C", str(root), "ui", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = ready_line(process, START_TIMEOUT)
    if line is None:
        process.kill()
        out, err = process.communicate(timeout=30)
        pytest.fail(f"`strata ui` did not start: {out[-500:]!r} {err[-2000:]}")
    return Server(page_address(line), process, line)


@pytest.fixture(scope="session")
def ui(demo: Demo) -> Iterator[Server]:
    """`strata ui` serving the demo project, shared by the tests of the session."""
    server = start_ui(demo.root)
    yield server
    server.stop()


def chromium_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver, installed when missing (root only); skip where they cannot be."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if None in found:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(
                "Chromium is not installed and cannot be installed here (not root, or no apt-get): "
                "run `sudo apt-get install -y chromium chromium-driver` to run the page tests"
            )
        _apt_install("chromium", "chromium-driver")
        found = shutil.which("chromium"), shutil.which("chromedriver")
    browser, driver = found
    if browser is None or driver is None:
        pytest.fail("`apt-get install chromium chromium-driver` left no chromium or chromedriver on PATH")
    return browser, driver


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium driven by Selenium through Debian's chromedriver (nothing is downloaded)."""
    from selenium import webdriver

    binary, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()
