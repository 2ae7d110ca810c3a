#!/usr/bin/env python3
"""A burst of new connections: ROUNDS times, CONNECTIONS sockets call connect() within a few
milliseconds (non-blocking, in one tight loop), then each sends one GET and reads the answer.
Prints p50/p99/max of connect+answer and how many took over 900 ms: a SYN the listener drops
because its accept queue (the listen backlog) is full is retried by the client's kernel after
1 s, so those are the connections that overflowed. Standard library only.

    python3 load-tests/bench/burst.py http://127.0.0.1:18091/health 1000 10
"""
import errno
import selectors
import socket
import sys
import time
from urllib.parse import urlsplit


def burst(host, port, path, n):
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    sel = selectors.DefaultSelector()
    started, answers = {}, {}
    for s in socks:
        s.setblocking(False)
    for s in socks:  # the burst: every SYN leaves within a few milliseconds
        started[s] = time.perf_counter()
        rc = s.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, "connect")
        sel.register(s, selectors.EVENT_WRITE)
    times, statuses, deadline = [], [], time.perf_counter() + 30
    while len(times) < n and time.perf_counter() < deadline:
        for key, events in sel.select(timeout=1):
            s = key.fileobj
            if events & selectors.EVENT_WRITE:
                s.send(request)
                sel.modify(s, selectors.EVENT_READ)
                answers[s] = b""
                continue
            chunk = s.recv(65536)
            if chunk:
                answers[s] += chunk
                continue
            times.append((time.perf_counter() - started[s]) * 1000)
            statuses.append(answers[s].split(b" ", 2)[1:2] == [b"200"])
            sel.unregister(s)
            s.close()
    for s in list(sel.get_map().values()):
        s.fileobj.close()
    return times, statuses, n - len(times)


def main():
    url = urlsplit(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    times, not_ok, lost = [], 0, 0
    for _ in range(rounds):
        t, ok, missing = burst(url.hostname, url.port or 80, url.path or "/", n)
        times += t
        not_ok += ok.count(False)
        lost += missing
        time.sleep(0.5)
    times.sort()
    pct = lambda p: times[min(len(times) - 1, int(len(times) * p))] if times else float("nan")
    print(
        f"{rounds} bursts x {n} connections: p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, "
        f"max {times[-1] if times else float('nan'):.1f} ms, over 900 ms: {sum(t > 900 for t in times)}, "
        f"non-200: {not_ok}, unanswered in 30 s: {lost}"
    )


if __name__ == "__main__":
    main()
