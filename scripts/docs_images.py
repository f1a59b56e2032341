"""Make the README's pictures from a real demo run: ``make docs-images``.

1. ``strata demo`` in a temporary directory, then the demo's source change once more (five
   article bodies back to what they were), ingested but not built: the graph has something stale.
2. ``strata -C DIR ui --port 0`` serves its page; headless Chromium (Debian's ``chromium``)
   takes a screenshot of it into ``docs/images/ui.png``.
3. ``strata -C DIR graph render --format svg`` draws the graph with Graphviz's ``dot`` into
   ``docs/images/demo-graph.svg``.

Nothing is drawn by hand; run it again after a change to the page or the renderer. A missing
program (chromium, dot) or a step that fails stops it with one line saying which.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
STRATA = [sys.executable, "-m", "strata"]
ROWS = 200
WINDOW = "1280,760"
TIMEOUT = 120.0


def main() -> int:
    """Make both pictures; 0 when both were written, 1 (and one line saying why) when not."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strata-docs-images-") as scratch:
        demo = Path(scratch) / "demo"
        try:
            make_demo(demo)
            screenshot(demo, IMAGES / "ui.png")
            render_svg(demo, IMAGES / "demo-graph.svg")
        except Failed as exc:
            print(f"docs-images: {exc}", file=sys.stderr)
            return 1
    return 0


class Failed(Exception):
    """A step that did not work, as one line."""


def run(*args: str, what: str) -> str:
    """Run ``strata ARGS…``; its stdout, or :class:`Failed` with the end of its stderr."""
    done = subprocess.run([*STRATA, *args], capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise Failed(f"{what} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def make_demo(demo: Path) -> None:
    """The demo project, with its source change ingested and not built yet."""
    from strata.demo import articles, write_source

    run("demo", "--dir", str(demo), "--rows", str(ROWS), what="`strata demo`")
    write_source(demo, articles(ROWS))
    run("-C", str(demo), "run", "tap-jsonl", "target-strata", what="the ingest after the source change")
    print(f"docs-images: demo project in {demo}")


def screenshot(demo: Path, target: Path) -> None:
    """Serve the demo's page and let headless Chromium take its picture."""
    from strata.ui.serve import started

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise Failed("chromium is not installed; install it (Debian: apt-get install chromium) and run again")
    server = subprocess.Popen(
        [*STRATA, "-C", str(demo), "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = started(server, TIMEOUT)
        if url is None:
            server.kill()
            _, err = server.communicate(timeout=30)
            raise Failed(f"`strata ui` did not start: {err.strip()[-500:]}")
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={WINDOW}"]
        shot = subprocess.run(
            [chromium, *flags, f"--screenshot={target}", url],
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )
        if shot.returncode != 0 or not target.is_file():
            raise Failed(f"chromium took no screenshot ({shot.returncode}): {shot.stderr.strip()[-500:]}")
    finally:
        if server.poll() is None:
            server.terminate()
            server.communicate(timeout=30)
    print(f"docs-images: {target.relative_to(ROOT)} ({target.stat().st_size} bytes)")


def render_svg(demo: Path, target: Path) -> None:
    """The graph as SVG with each field's staleness (``strata graph render --format svg``, Graphviz's dot)."""
    run(
        "-C",
        str(demo),
        "graph",
        "render",
        "--format",
        "svg",
        "--output",
        str(target),
        what="`strata graph render --format svg` (it needs Graphviz's dot: apt-get install graphviz)",
    )
    print(f"docs-images: {target.relative_to(ROOT)} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.exit(main())
