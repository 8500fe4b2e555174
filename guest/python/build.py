#!/usr/bin/env python3
"""Builds a Python plugin into a WebAssembly component for `easycaching run` (or `serve`).

    python build.py [--world plugin|http-handler] PLUGIN_DIR OUT.wasm

PLUGIN_DIR holds the plugin's module `app` (`PLUGIN_DIR/app.py`, with a class `Run`; an HTTP
handler's has a class `IncomingHandler` and is built with `--world http-handler`). This
script gives componentize-py the easycaching WIT and SDK of the checkout it is in, so a plugin
anywhere needs neither a copy of them nor their paths. Run it with the Python of the
virtualenv componentize-py is installed in (`guest/python/.venv/bin/python`, which
`make guest-python` sets up); `--wit DIR` builds against another WIT directory.

What a new user gets wrong is said in one line before componentize-py starts: no `app.py`, a
syntax error in it, a componentize-py that is not installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORLDS = ("plugin", "http-handler")


def fail(message: str) -> None:
    """Ends the build with `message` on stderr and exit status 1."""
    print(f"build.py: {message}", file=sys.stderr)
    sys.exit(1)


def componentize_py() -> str:
    """The componentize-py beside this Python (the virtualenv's), or else the one on PATH."""
    beside = Path(sys.executable).parent / "componentize-py"
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if found is None:
        fail(
            "componentize-py is not installed: run this with the virtualenv's Python "
            f"({HERE / '.venv/bin/python'}, made by `make guest-python`), or "
            f"`pip install -r {HERE / 'requirements.txt'}`"
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=WORLDS, default="plugin", help="plugin (default) or http-handler")
    parser.add_argument("--wit", type=Path, default=HERE.parent.parent / "wit", help="the easycaching WIT directory")
    parser.add_argument("plugin", type=Path, metavar="PLUGIN_DIR", help="the folder holding app.py")
    parser.add_argument("output", type=Path, metavar="OUT.wasm", help="the component to write")
    args = parser.parse_args()

    app = args.plugin / "app.py"
    if not app.is_file():
        fail(f"no plugin at {app.resolve()}: PLUGIN_DIR must hold the plugin's module, app.py")
    try:
        # Compiled in memory only: nothing is written beside the plugin.
        compile(app.read_bytes(), str(app), "exec")
    except SyntaxError as error:
        fail(f"{app}, line {error.lineno}: {error.msg} (a syntax error; nothing was built)")
    if not (args.wit / "worlds.wit").is_file():
        fail(f"{args.wit.resolve()} is not the easycaching WIT directory (no worlds.wit in it)")
    args.output.resolve().parent.mkdir(parents=True, exist_ok=True)

    command = [
        componentize_py(),
        "-d", str(args.wit),
        "-w", f"easycaching:cache/{args.world}",
        "componentize",
        "-p", str(HERE),
        "-p", str(args.plugin),
        "app",
        "-o", str(args.output),
    ]
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
