"""A project whose tap and target are small Python scripts given by path: real processes, no PyPI.

The tap emits one record and one state per tick (resuming after the bookmark of ``--state``),
and a stderr line for each; the target prints every state it receives on stdout (it confirms
it) and appends it to ``confirmed.jsonl``. Both write their pid to ``pids/`` at start and, on
SIGINT or SIGTERM, finish what they are doing and write a last ``bye`` line to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers import write_project

STATE_ID = "dev:tap-slow-to-target-echo"

TAP = """\
import json, os, signal, sys, time
args = sys.argv[1:]
pids = json.load(open(args[args.index("--config") + 1]))["pids"]
open(os.path.join(pids, f"tap-{os.getpid()}"), "w").close()
stop = []
signal.signal(signal.SIGINT, lambda *_: stop.append(1))
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a target that quits ends the tap quietly
start = 0
if "--state" in args:
    start = json.load(open(args[args.index("--state") + 1]))["bookmarks"]["s"] + 1
print(json.dumps({"type": "SCHEMA", "stream": "s", "schema": {"properties": {"id": {"type": "integer"}}},
                  "key_properties": ["id"]}), flush=True)
i = start
while not stop and i < start + TICKS:
    print(json.dumps({"type": "RECORD", "stream": "s", "record": {"id": i}}), flush=True)
    print(json.dumps({"type": "STATE", "value": {"bookmarks": {"s": i}}}), flush=True)
    print(f"tap sent {i}", file=sys.stderr, flush=True)
    i += 1
    time.sleep(PAUSE)
print(f"tap bye after {i - 1}", file=sys.stderr, flush=True)
"""

_TARGET_START = """\
import json, os, signal, sys
config = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
pids = config["pids"]
open(os.path.join(pids, f"target-{os.getpid()}"), "w").close()
def confirm(state):
    print(json.dumps(state), flush=True)
    with open(os.path.join(pids, "..", "confirmed.jsonl"), "a") as handle:
        handle.write(json.dumps(state) + "\\n")
last = None
"""

TARGET = (
    _TARGET_START
    + """\
signal.signal(signal.SIGINT, lambda *_: None)
signal.signal(signal.SIGTERM, lambda *_: None)
SECRET_LINES
for line in sys.stdin:
    message = json.loads(line)
    if message["type"] == "STATE":
        last = message["value"]
        confirm(last)
        print(f"target confirmed {last['bookmarks']['s']}", file=sys.stderr, flush=True)
print(f"target bye after {last}", file=sys.stderr, flush=True)
"""
)

BATCH_TARGET = (
    _TARGET_START
    + """\
for line in sys.stdin:
    message = json.loads(line)
    if message["type"] == "STATE":
        last = message["value"]
confirm(last)
"""
)
"""A target that loads in one batch at the end of its input and only then confirms the last state."""


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def scripted_project(
    root: Path, *, ticks: int = 100_000, pause: float = 0.05, secret_lines: str = "", target: str | None = None
) -> Path:
    """A project at ``root`` with ``tap-slow`` and ``target-echo`` (their secret: ``password``).

    ``target`` replaces the target's script (``BATCH_TARGET``).
    """
    work = root / "work"
    (work / "pids").mkdir(parents=True)
    catalog = work / "catalog.json"
    catalog.write_text(json.dumps({"streams": []}))
    tap = _script(work / "tap", TAP.replace("TICKS", str(ticks)).replace("PAUSE", str(pause)))
    body = target if target is not None else TARGET.replace("SECRET_LINES", secret_lines)
    target_path = _script(work / "target", body)
    write_project(
        root,
        f"""
        default_environment: dev
        environments: [{{name: dev}}]
        plugins:
          extractors:
            - name: tap-slow
              executable: {tap}
              catalog: {catalog}
              settings: [{{name: password, kind: password}}]
              config: {{pids: {work / "pids"}}}
          loaders:
            - name: target-echo
              executable: {target_path}
              settings: [{{name: password, kind: password}}]
              config: {{pids: {work / "pids"}}}
        """,
    )
    return work


def plugin_pids(work: Path) -> list[int]:
    """Pids of every plugin process the project's runs started."""
    return [int(p.name.rpartition("-")[2]) for p in (work / "pids").iterdir()]


def confirmed(work: Path) -> list[dict[str, object]]:
    """States the target confirmed, in order."""
    path = work / "confirmed.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
