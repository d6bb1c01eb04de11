"""Opens N event streams to the admin API and never reads them, for HOLD seconds; then reads
what each got first and prints one line: opened=N ok=N refused=N other=N.

    python3 idle-streams.py PORT TOKEN N HOLD
"""
import socket
import sys
import time

port, token, n, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    socks.append(s)
time.sleep(hold)
ok = refused = other = 0
for s in socks:
    try:
        s.settimeout(2)
        head = s.recv(512).decode("latin-1")
    except OSError:
        head = ""
    if head.startswith("HTTP/1.1 200"):
        ok += 1
    elif head.startswith("HTTP/1.1 429") and "too_many_streams" in head:
        refused += 1
    else:
        other += 1
    s.close()
print(f"opened={len(socks)} ok={ok} refused={refused} other={other}")
