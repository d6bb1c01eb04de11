#!/usr/bin/env python3
"""Tests/security/register.py: attacks on registration, one a command. Each prints one line
`key=value ...` and exits 0 (the suite judges); every loop is bounded in count and time.
Loopback only; SRC is a loopback address to send from (127.0.0.2, 127.0.0.3 ...).

  register.py guess    PORT SRC DOMAIN USER COUNT PASSWORD   COUNT wrong passwords, then the right one, from SRC
  register.py replay   PORT SRC DOMAIN USER PASSWORD COUNT   COUNT registrations, then the first one replayed with another Contact
  register.py contact  PORT SRC DOMAIN USER PASSWORD HOST     a registration whose Contact is at HOST
  register.py stranger PORT SRC DOMAIN USER                  an INVITE to USER's address from SRC
"""
import hashlib, os, re, socket, sys, time

def H(alg, text):
    return (hashlib.sha256 if alg.upper() == "SHA-256" else hashlib.md5)(text.encode()).hexdigest()

class Client:
    def __init__(self, port, src, domain, user):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((src, 0))
        self.s.settimeout(0.5)
        self.dst, self.src, self.domain, self.user = ("127.0.0.1", port), src, domain, user
        self.lport = self.s.getsockname()[1]
        self.cseq = 0
        self.call_id = "sec-%s@%s" % (os.urandom(4).hex(), src)

    def register(self, auth=None, contact_host=None, expires=600):
        self.cseq += 1
        contact = "<sip:%s@%s:%d>" % (self.user, contact_host or self.src, self.lport)
        m = ("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n"
             "From: <sip:%s@%s>;tag=sec1\r\nTo: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\nContact: %s\r\n"
             "Expires: %d\r\n%sContent-Length: 0\r\n\r\n") % (
            self.domain, self.src, self.lport, os.urandom(6).hex(), self.user, self.domain, self.user, self.domain,
            self.call_id, self.cseq, contact, expires, ("Authorization: %s\r\n" % auth) if auth else "")
        self.s.sendto(m.encode(), self.dst)
        return m

    def answer(self, seconds=5.0):
        """The next final response: (code, headers text)."""
        end = time.time() + seconds
        while time.time() < end:
            try:
                data = self.s.recv(65536).decode(errors="replace")
            except socket.timeout:
                continue
            code = int(data.split(" ", 2)[1])
            if code >= 200:
                return code, data
        return 0, ""

    @staticmethod
    def challenge(text):
        line = next(l for l in text.split("\r\n") if l.lower().startswith("www-authenticate:"))
        get = lambda k: (re.search(r'%s="?([^",]+)"?' % k, line) or [None, None])[1]
        return get("realm"), get("nonce"), get("algorithm") or "MD5"

    def credentials(self, text, password, nc):
        realm, nonce, alg = self.challenge(text)
        uri = "sip:" + self.domain
        ha1 = H(alg, "%s:%s:%s" % (self.user, realm, password))
        ha2 = H(alg, "REGISTER:" + uri)
        cnonce = os.urandom(4).hex()
        resp = H(alg, "%s:%s:%08x:%s:auth:%s" % (ha1, nonce, nc, cnonce, ha2))
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s, qop=auth, nc=%08x, '
                'cnonce="%s", response="%s"') % (self.user, realm, nonce, uri, alg, nc, cnonce, resp)

    def login(self, password, contact_host=None):
        self.register(contact_host=contact_host)
        code, text = self.answer()
        if code != 401:
            return code, None
        self.register(self.credentials(text, password, 1), contact_host=contact_host)
        code, _ = self.answer(8)
        return code, text

def guess(port, src, domain, user, count, password):
    c = Client(int(port), src, domain, user)
    c.register()
    code, challenge = c.answer()
    start, codes, nc = time.time(), {}, 0
    # Up to 100 guesses in flight; each answered (2 s late once the source is locked).
    pending, sent, deadline = 0, 0, time.time() + 90
    while (sent < int(count) or pending) and time.time() < deadline:
        while pending < 100 and sent < int(count):
            nc += 1
            c.register(c.credentials(challenge, "guess-%d" % sent, nc))
            sent += 1
            pending += 1
        code, text = c.answer(3)
        if code == 0:
            pending = max(0, pending - 1)
            continue
        pending -= 1
        codes[code] = codes.get(code, 0) + 1
        if code == 401:
            challenge = text
            nc = 0
    took = time.time() - start
    right, _ = Client(int(port), src, domain, user).login(password)
    print("sent=%d answered_403=%d answered_other=%d seconds=%.1f right_password_from_there=%d" % (
        sent, codes.get(403, 0), sum(v for k, v in codes.items() if k != 403), took, right))

def replay(port, src, domain, user, password, count):
    c = Client(int(port), src, domain, user)
    c.register()
    _, challenge = c.answer()
    first = c.credentials(challenge, password, 1)  # captured on the wire by the attacker
    c.register(first)
    first_code, _ = c.answer()
    nc, ok = 1, 0
    for _ in range(int(count)):
        nc += 1
        c.register(c.credentials(challenge, password, nc))
        code, text = c.answer()
        if code == 401:  # a new nonce (the old one went stale)
            challenge, nc = text, 1
            c.register(c.credentials(challenge, password, 1))
            code, _ = c.answer()
        ok += code == 200
    attacker = Client(int(port), src, domain, user)
    attacker.register(first, contact_host="127.0.0.99")
    code, _ = attacker.answer()
    print("first=%d registered=%d replay_answer=%d" % (first_code, ok, code))

def contact(port, src, domain, user, password, host):
    code, _ = Client(int(port), src, domain, user).login(password, contact_host=host)
    print("answer=%d" % code)

def stranger(port, src, domain, user):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(0.5)
    lport = s.getsockname()[1]
    m = ("INVITE sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n"
         "From: <sip:stranger@%s>;tag=s1\r\nTo: <sip:%s@%s>\r\nCall-ID: stranger-%s\r\nCSeq: 1 INVITE\r\n"
         "Contact: <sip:stranger@%s:%d>\r\nContent-Length: 0\r\n\r\n") % (
        user, domain, src, lport, os.urandom(6).hex(), src, user, domain, os.urandom(4).hex(), src, lport)
    s.sendto(m.encode(), ("127.0.0.1", int(port)))
    codes, end = [], time.time() + 3
    while time.time() < end:
        try:
            codes.append(s.recv(65536).decode(errors="replace").split(" ", 2)[1])
        except socket.timeout:
            pass
    print("answers=%s" % (",".join(codes) or "none"))

if __name__ == "__main__":
    {"guess": guess, "replay": replay, "contact": contact, "stranger": stranger}[sys.argv[1]](*sys.argv[2:])
