"""Postfix's test programs (``smtp-source``, ``smtp-sink``), extracted from Debian's package.

``apt-get download postfix && dpkg -x`` into a cache folder: nothing is
installed, so no Postfix daemon is ever set up or started. The benchmarks use
``smtp-source`` as a load generator, the relay tests ``smtp-sink`` as a real
receiving MTA. Run this file to fetch them ahead (CI does, in ``.ci/run``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(__file__).resolve().parent.parent / "bench" / ".cache"


@dataclass(frozen=True)
class PostfixTool:
    """One program of the extracted package and the private libraries it links against."""

    binary: Path
    lib_dir: Path

    def env(self) -> dict[str, str]:
        # The programs link against libpostfix-*.so, in postfix's private lib dir.
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(self.lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
        )
        return env

    def runs(self) -> bool:
        """Without arguments the programs print their usage and exit 1; a missing library
        does not get that far."""
        try:
            proc = subprocess.run(
                [str(self.binary)], env=self.env(), capture_output=True, text=True, timeout=10
            )
        except OSError:
            return False
        return "usage:" in proc.stderr


def extract_postfix(cache_dir: Path) -> None:
    """Download Debian's postfix package into ``cache_dir`` (once) and unpack it there."""
    debs = sorted(cache_dir.glob("postfix_*.deb"))
    if not debs:
        download = ["apt-get", "download", "postfix"]
        if subprocess.run(download, cwd=cache_dir, capture_output=True).returncode != 0:
            # A fresh machine has no package lists yet.
            subprocess.run(["apt-get", "update"], capture_output=True, check=False)
            subprocess.run(download, cwd=cache_dir, capture_output=True, check=True)
        debs = sorted(cache_dir.glob("postfix_*.deb"))
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(cache_dir / "root")], check=True)


def find_tool(
    name: str, cache_dir: Path = CACHE_DIR, explicit: Path | None = None
) -> tuple[PostfixTool | None, str]:
    """A runnable ``name`` (fetching the package into the cache if needed) and a note."""
    root = cache_dir / "root"
    tool = PostfixTool(explicit or root / "usr/sbin" / name, root / "usr/lib/postfix")
    if explicit is None and not tool.binary.exists():
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            extract_postfix(cache_dir)
        except (OSError, subprocess.CalledProcessError, IndexError) as exc:
            return None, f"could not fetch postfix's {name}: {exc}"
    if not tool.runs():
        return None, f"{tool.binary} does not run (missing file or shared library)"
    return tool, f"{name} at {tool.binary}"


if __name__ == "__main__":
    problems = [note for tool, note in map(find_tool, ("smtp-sink", "smtp-source")) if not tool]
    print("\n".join(problems) or f"postfix's test programs are in {CACHE_DIR / 'root'}")
    sys.exit(1 if problems else 0)
