"""Server processes the harness starts: free ports, readiness, stopping, and their memory.

Memory is read from ``/proc``: the resident set of every process in a server's tree (the
supervisor and its workers), sampled while load runs, and each process's ``VmHWM``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SAMPLE_INTERVAL = 0.1


class StartError(RuntimeError):
    """A subject did not start; the message carries the end of its log."""


def free_port() -> int:
    """A loopback port nobody listens on now: the kernel's pick for port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Service:
    """One running server process (and the workers it forks), its log in a file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)
    processes: int = 1

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_dir: Path,
        processes: int = 1,
    ) -> Service:
        """Start ``argv``; ``processes`` is how many the tree holds once it is up."""
        log_path = log_dir / f"{name}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own argv
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(name, process, log_path, log_file, processes)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, url: str) -> None:
        """Poll ``url`` until it answers 200; fail if the process exits first."""
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=1.0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise StartError(f"{self.name} exited:\n{self.log_tail()}")
                try:
                    answered = probe.get(url).status_code == 200
                    if answered and len(process_tree(self.pid)) >= self.processes:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise StartError(f"{self.name} was not ready in {READY_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the whole process group, then SIGKILL after the deadline."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        # Workers left behind by a supervisor that died first.
        _signal_group(self.process.pid, signal.SIGKILL)
        self.log_file.close()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from each process's ``children`` list in /proc."""
    found = [root]
    index = 0
    while index < len(found):
        pid = found[index]
        index += 1
        for task in _tasks(pid):
            try:
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            except OSError:
                continue
            found.extend(int(child) for child in text.split())
    return found


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def status_kb(pid: int, field_name: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def worker_pids(root: int, tree: list[int]) -> list[int]:
    """The processes that serve requests: the root's descendants except multiprocessing's
    resource tracker; a server running in one process is its own worker."""
    workers = [pid for pid in tree if pid != root and not _is_resource_tracker(pid)]
    return workers or [root]


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass
class MemoryPeak:
    """The largest resident sets seen (kB): the workers summed, the whole tree (supervisor
    included) summed, and any one worker."""

    workers_kb: int = 0
    tree_kb: int = 0
    worker_kb: int = 0

    def merge(self, other: MemoryPeak) -> None:
        self.workers_kb = max(self.workers_kb, other.workers_kb)
        self.tree_kb = max(self.tree_kb, other.tree_kb)
        self.worker_kb = max(self.worker_kb, other.worker_kb)

    def as_mb(self) -> dict[str, float]:
        return {
            "peak_rss_mb": round(self.workers_kb / 1024, 1),
            "peak_tree_rss_mb": round(self.tree_kb / 1024, 1),
            "peak_worker_rss_mb": round(self.worker_kb / 1024, 1),
        }


class MemorySampler:
    """Samples a server's process tree in a thread while a load runs."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = MemoryPeak()
        self._workers = worker_pids(root, process_tree(root))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_INTERVAL)

    def sample(self) -> None:
        sizes = {pid: status_kb(pid, "VmRSS") for pid in process_tree(self.root)}
        workers = [sizes.get(pid, 0) for pid in self._workers]
        self.peak.merge(MemoryPeak(sum(workers), sum(sizes.values()), max(workers)))


def high_water_marks(root: int) -> dict[int, int]:
    """``VmHWM`` (kB) of every process in the tree: each one's peak over its whole life."""
    return {pid: status_kb(pid, "VmHWM") for pid in process_tree(root)}
