"""What 300 slow clients cost ``mlops serve``, and how long a real push waits for its answer meanwhile.

    python bench/bench_webhook.py [--clients 300] [--pushes 20]

The server runs in a process of its own (the webhook application on uvicorn, as ``mlops serve`` runs it,
with a worker that records each push instead of training it). Figures, each the median of ``--pushes``
signed pushes of distinct commits:

- the time from sending a push to its 202, with the server idle;
- the same while ``--clients`` connections are held open (silent, slow-loris, a stalled body, abandoned,
  reset: ``tests/support/slow_clients.py``), and the server's resident memory and threads then;
- how long the server took to end every held connection (its request timeout is the default, 10 s).

Goal: a push is answered as fast with 300 slow clients as without (well under a second), with no thread per
connection; ``http.server``, which served it before, gave 92 BrokenPipe tracebacks and a thread per
connection for the same load.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops.webhook.pushes import PushQueue, Worker  # noqa: E402
from mlops.webhook.server import make_server  # noqa: E402
from tests.support.slow_clients import HELD, SlowClients  # noqa: E402

SECRET = "bench-secret"
CLONE_URL = "https://example.com/bench/models.git"


def serve(workspace: Path, url_file: Path) -> None:
    """The server process: the webhook on loopback, a worker that records pushes (nothing trains)."""
    queue = PushQueue(workspace)
    worker = Worker(queue, lambda *push: None)
    worker.start()
    server = make_server("127.0.0.1", 0, SECRET, "main", queue, repositories=(CLONE_URL,))
    url_file.write_text(server.url)
    server.run()


def push(url: str, number: int) -> float:
    """Seconds from sending a signed push of a new commit to its answer (which must be 202)."""
    commit = hashlib.sha1(f"{number}-{time.time_ns()}".encode()).hexdigest()
    body = json.dumps({"ref": "refs/heads/main", "after": commit, "repository": {"clone_url": CLONE_URL}})
    signature = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    started = time.perf_counter()
    answer = requests.post(url, data=body, headers=headers, timeout=30)
    took = time.perf_counter() - started
    if answer.status_code != 202:
        raise SystemExit(f"push {number}: {answer.status_code} {answer.text}")
    return took


def pushes(url: str, count: int, first: int) -> list[float]:
    return [push(url, first + n) for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=300, help="slow clients held at once (default 300)")
    parser.add_argument("--pushes", type=int, default=20, help="pushes timed per figure (default 20)")
    parser.add_argument("--serve", nargs=2, type=Path, metavar=("WORKSPACE", "URL_FILE"), help="(internal)")
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    with tempfile.TemporaryDirectory() as folder:
        url_file = Path(folder) / "url"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(Path(folder) / "ws"), str(url_file)],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        try:
            while not url_file.exists() or not url_file.read_text():
                time.sleep(0.05)
            measure(url_file.read_text(), psutil.Process(server.pid), args.clients, args.pushes)
        finally:
            server.terminate()
            server.wait(timeout=30)


def measure(url: str, process: psutil.Process, count: int, times: int) -> None:
    idle = pushes(url, times, 0)
    idle_rss, idle_threads = process.memory_info().rss, process.num_threads()
    port = int(url.split(":")[2].split("/")[0])
    clients = SlowClients("127.0.0.1", port, count)
    clients.open()
    watcher = threading.Thread(target=clients.watch, args=(60,))
    watcher.start()
    try:
        loaded = pushes(url, times, times)
        loaded_rss, loaded_threads = process.memory_info().rss, process.num_threads()
        watcher.join()
    finally:
        clients.close()
    held = [h for h in clients.held if h.kind in HELD]
    ended = [h.ended_after_s for h in held if h.ended_after_s is not None]
    print(
        f"push answered, server idle:           median {statistics.median(idle) * 1000:.1f} ms, "
        f"max {max(idle) * 1000:.1f} ms ({times} pushes)"
    )
    print(
        f"push answered, {count} slow clients:     median {statistics.median(loaded) * 1000:.1f} ms, "
        f"max {max(loaded) * 1000:.1f} ms ({times} pushes)"
    )
    print(
        f"server memory (RSS):                  {idle_rss / 1e6:.1f} MB idle, {loaded_rss / 1e6:.1f} MB with "
        f"{count} slow clients (+{(loaded_rss - idle_rss) / 1e6:.1f} MB)"
    )
    print(
        f"server threads:                       {idle_threads} idle, {loaded_threads} with {count} slow clients"
    )
    print(f"held connections ended by the server: {len(ended)} of {len(held)}, the last after "
          f"{max(ended, default=float('nan')):.1f} s (request timeout 10 s), "
          f"{sum(h.answer.startswith(b'HTTP/1.1 408 ') for h in held)} with 408")  # fmt: skip


if __name__ == "__main__":
    main()
