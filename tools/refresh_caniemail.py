"""Replace the shipped caniemail.com data with the newest ``caniemail`` npm package's.

Usage: ``python tools/refresh_caniemail.py [VERSION]`` (default: the latest).
It runs ``npm pack caniemail@VERSION`` in a temporary folder, takes
``package/data/caniemail.json`` and ``package/LICENSE`` from the tarball and
writes them to ``mailtrap/checks/data/``. Nothing else reads the network:
the HTML check itself only ever reads the shipped copy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "mailtrap" / "checks" / "data"
MEMBERS = {"package/data/caniemail.json": "caniemail.json", "package/LICENSE": "LICENSE.caniemail"}


def main(argv: list[str]) -> None:
    version = argv[0] if argv else "latest"
    with tempfile.TemporaryDirectory() as folder:
        packed = subprocess.run(
            ["npm", "pack", f"caniemail@{version}", "--silent"],
            cwd=folder,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        with tarfile.open(Path(folder) / packed) as archive:
            for member, name in MEMBERS.items():
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise SystemExit(f"{packed} has no {member}")
                content = extracted.read()
                if name.endswith(".json"):
                    json.loads(content)  # never ship a broken file
                (DATA / name).write_bytes(content)
    updated = json.loads((DATA / "caniemail.json").read_text())["last_update_date"]
    print(f"caniemail data from {packed}, updated {updated}, written to {DATA}")


if __name__ == "__main__":
    main(sys.argv[1:])
