"""Inside the build sandbox: a loopback port that leads to the index proxy's unix socket, and the build.

    python -I -S forwarder.py SOCKET -- COMMAND...

Run by the base's own interpreter in a sandbox (or a container) with no network: it listens on 127.0.0.1,
runs COMMAND (uv) with ``HTTPS_PROXY``/``HTTP_PROXY`` set to that port, relays every connection to SOCKET
(the host's :mod:`mlops.envs.proxy`, which decides what may be reached), and exits with COMMAND's code.
Standard library only: it runs on any base, the legacy image's Python included.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading


def relay(a: socket.socket, b: socket.socket) -> None:
    pair = {a: b, b: a}
    try:
        while True:
            ready, _, _ = select.select(list(pair), [], [], 300)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                pair[sock].sendall(data)
    except OSError:
        return
    finally:
        a.close()
        b.close()


def serve(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()


def main(argv: list[str]) -> int:
    path, command = argv[0], argv[argv.index("--") + 1 :]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    threading.Thread(target=serve, args=(listener, path), daemon=True).start()
    env = dict(os.environ, HTTPS_PROXY=proxy, HTTP_PROXY=proxy, ALL_PROXY=proxy)
    env.pop("NO_PROXY", None)
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
