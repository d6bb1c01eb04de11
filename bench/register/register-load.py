#!/usr/bin/env python3
"""register-load.py: N agents (a0 .. aN-1) each register once at a SIP registrar over UDP:
REGISTER -> 401 -> REGISTER with an MD5 digest answer (RFC 2617, with or without qop=auth) -> 200.
At most --window registrations are in flight; a request unanswered for 500 ms is sent again (at
most 6 times). Prints one line: "ok failed seconds". Bounded by --timeout seconds. Loopback only.

Used by bench/run-register.sh instead of SIPp because each agent needs its own digest user name,
which SIPp 3.6 cannot take from an injection file inside [authentication].
"""
import argparse
import hashlib
import os
import select
import socket
import sys
import time


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def param(header, name):
    key = name + "="
    i = header.find(key)
    if i < 0:
        return None
    v = header[i + len(key):]
    if v.startswith('"'):
        return v[1:v.index('"', 1)]
    for end in (",", " ", "\r"):
        j = v.find(end)
        if j >= 0:
            v = v[:j]
    return v


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True, help="IP:PORT of the registrar")
    p.add_argument("--domain", required=True)
    p.add_argument("--agents", type=int, required=True)
    p.add_argument("--password", default="pw{i}", help="password of agent i ({i} is replaced)")
    p.add_argument("--contact-base", type=int, default=40000, help="agent i's contact port is this + i")
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    host, port = a.target.rsplit(":", 1)
    target = (host, int(port))
    if not host.startswith("127.") and host != "::1":
        sys.exit("loopback targets only")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    local_port = sock.getsockname()[1]
    tag = os.urandom(4).hex()
    pending = {}  # call-id -> [agent, cseq, text, sent_at, tries]
    next_agent = 0
    ok = failed = 0
    uri = "sip:" + a.domain

    def request(i, cseq, auth=None):
        call_id = "%s-%d@bench" % (tag, i)
        lines = [
            "REGISTER %s SIP/2.0" % uri,
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s%d.%d;rport" % (local_port, tag, i, cseq),
            "Max-Forwards: 70",
            "From: <sip:a%d@%s>;tag=%s%d" % (i, a.domain, tag, i),
            "To: <sip:a%d@%s>" % (i, a.domain),
            "Call-ID: " + call_id,
            "CSeq: %d REGISTER" % cseq,
            "Contact: <sip:a%d@127.0.0.1:%d>" % (i, a.contact_base + i),
            "Expires: 600",
        ]
        if auth:
            lines.append("Authorization: " + auth)
        lines.append("Content-Length: 0")
        text = ("\r\n".join(lines) + "\r\n\r\n").encode()
        pending[call_id] = [i, cseq, text, time.monotonic(), 1]
        sock.sendto(text, target)

    start = time.monotonic()
    deadline = start + a.timeout
    while (next_agent < a.agents or pending) and time.monotonic() < deadline:
        while next_agent < a.agents and len(pending) < a.window:
            request(next_agent, 1)
            next_agent += 1
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            while True:
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                text = data.decode(errors="replace")
                first, _, rest = text.partition("\r\n")
                parts = first.split(" ")
                if len(parts) < 2 or not parts[0].startswith("SIP/"):
                    continue
                code = int(parts[1])
                headers = {}
                for line in rest.split("\r\n"):
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers.setdefault(k.strip().lower(), v.strip())
                cid = headers.get("call-id") or headers.get("i")
                entry = pending.get(cid)
                if entry is None or code < 200:
                    continue
                i, cseq = entry[0], entry[1]
                if "%d REGISTER" % cseq != headers.get("cseq", ""):
                    continue
                del pending[cid]
                if code == 401 and cseq == 1:
                    ch = headers.get("www-authenticate", "")
                    realm, nonce, qop = param(ch, "realm"), param(ch, "nonce"), param(ch, "qop")
                    user = "a%d" % i
                    ha1 = md5("%s:%s:%s" % (user, realm, a.password.replace("{i}", str(i))))
                    ha2 = md5("REGISTER:" + uri)
                    auth = 'Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=MD5' % (user, realm, nonce, uri)
                    if qop and "auth" in qop.split(","):
                        cnonce = os.urandom(4).hex()
                        response = md5("%s:%s:00000001:%s:auth:%s" % (ha1, nonce, cnonce, ha2))
                        auth += ', qop=auth, nc=00000001, cnonce="%s"' % cnonce
                    else:
                        response = md5("%s:%s:%s" % (ha1, nonce, ha2))
                    auth += ', response="%s"' % response
                    opaque = param(ch, "opaque")
                    if opaque:
                        auth += ', opaque="%s"' % opaque
                    request(i, 2, auth)
                elif 200 <= code < 300 and cseq == 2:
                    ok += 1
                else:
                    failed += 1
        now = time.monotonic()
        for cid, entry in list(pending.items()):
            if now - entry[3] > 0.5:
                if entry[4] >= 7:
                    del pending[cid]
                    failed += 1
                else:
                    entry[3], entry[4] = now, entry[4] + 1
                    sock.sendto(entry[2], target)
    failed += len(pending) + (a.agents - next_agent)
    print("%d %d %.2f" % (ok, failed, time.monotonic() - start))


if __name__ == "__main__":
    main()
