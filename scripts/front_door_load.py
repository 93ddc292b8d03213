"""Hostile load for scripts/bench-front-door (standard library only).

slow-bodies PORT N KEY SECONDS retry|once: opens N requests to the key's tenant's `echo` agent,
    each declaring a 4 KiB body and sending 16 bytes of it; with `retry`, a request the server
    ends is replaced a second later (the `Retry-After` it gets).
idle-connections PORT N PID: prints the server's resident memory idle, with N open connections
    (each answered one request, then idle), and after they close.
"""

import selectors
import socket
import sys
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def slow_bodies(port, count, key, seconds, retry):
    head = (
        f"POST /a2a/flooder/echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 4096\r\n\r\n" + '{"jsonrpc":"2.0",'
    ).encode()
    selector = selectors.DefaultSelector()

    def open_one():
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)

    for _ in range(count):
        open_one()
    answers = {}
    # A refused request is retried after the `Retry-After: 1` it was given.
    retries = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = time.monotonic()
        while retries and retries[0] <= now:
            retries.pop(0)
            open_one()
        for key_, _ in selector.select(timeout=0.1):
            sock = key_.fileobj
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            status = data[9:12].decode(errors="replace") if data else "closed"
            answers[status] = answers.get(status, 0) + 1
            selector.unregister(sock)
            sock.close()
            if retry:
                retries.append(time.monotonic() + 1.0)
    print(f"slow-body answers while flooding: {answers}", file=sys.stderr)


def idle_connections(port, count, pid):
    idle = rss_mib(pid)
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        socks.append(sock)
    for sock in socks:
        sock.recv(4096)
    held = rss_mib(pid)
    for sock in socks:
        sock.close()
    time.sleep(2)
    after = rss_mib(pid)
    print(
        f"resident memory: idle {idle:.1f} MiB, with {count} idle connections {held:.1f} MiB "
        f"(+{held - idle:.1f} MiB, {(held - idle) * 1024 / count:.1f} KiB each), "
        f"2 s after they close {after:.1f} MiB"
    )


if __name__ == "__main__":
    mode, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if mode == "slow-bodies":
        slow_bodies(port, count, sys.argv[4], float(sys.argv[5]), sys.argv[6] == "retry")
    elif mode == "idle-connections":
        idle_connections(port, count, int(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")
