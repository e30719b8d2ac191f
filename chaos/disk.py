"""A small filesystem for the SQLite store that the campaign can fill: a full disk on demand.

`SmallDisk.mount(dir)` mounts a tmpfs there (root only); `fill()` writes a filler file until
the filesystem answers ENOSPC, `free()` removes it. Where no tmpfs can be mounted, `mount`
returns None with the reason and the campaign reports the phase as skipped.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

CHUNK = 64 * 1024


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    @classmethod
    def mount(cls, path: Path, megabytes: int = 256) -> tuple[SmallDisk | None, str]:
        """Mount a tmpfs of `megabytes` at `path`; return it, or None and why not."""
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return None, "not root: cannot mount a tmpfs"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                              check=False, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"mount -t tmpfs failed: {done.stderr.strip()}"
        return cls(path), ""

    def fill(self) -> int:
        """Write zeros until the filesystem is full; return the bytes written."""
        written, size = 0, CHUNK
        zeros = b"\0" * CHUNK
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while size >= 512:
                try:
                    written += os.write(fd, zeros[:size])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    size //= 2
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self, keep: Path | None = None) -> None:
        """Unmount; copy the store files into `keep` first when it is given."""
        self.free()
        if keep is not None:
            for item in self.path.iterdir():
                shutil.copy2(item, keep / item.name)
        subprocess.run(["umount", str(self.path)], check=False, capture_output=True)
