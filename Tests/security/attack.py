#!/usr/bin/env python3
"""Tests/security/attack.py: what a stranger on the network sends Parley, one attack a command.
Each prints one line `key=value ...` with what it observed and exits 0 (the suite judges); every
loop is bounded in count and time. Loopback only.

  attack.py forged-uri     BUFFER_PORT AGENT_PORT          INVITE ;agent=a1 unsigned, then with a made-up signature
  attack.py forged-message BUFFER_PORT AGENT_PORT VICTIM_PORT  a message/sip handoff whose Contact is a victim's
  attack.py forged-tunnel  TUNNEL_PORT                     WebSocket upgrades without and with a made-up signature
  attack.py spoofed-event  DISTRIBUTOR_PORT                a call event MESSAGE to the distributor
  attack.py spoofed-transfer DISTRIBUTOR_PORT              a transfer event, and a REFER outside any dialog
  attack.py silent-tcp     PORT COUNT SECONDS              COUNT connections that say nothing, held SECONDS
  attack.py half-sent      PORT COUNT SECONDS              COUNT connections each sending half a message
  attack.py trickle        PORT SECONDS                    one message a byte every 0.25 s; when was it cut off
  attack.py oversize       PORT                            a TCP message announcing a 2 MB body
  attack.py flood          PORT COUNT                      COUNT OPTIONS from 127.0.0.2 as fast as it can; how many were answered
  attack.py reflect        PORT SECONDS                    one INVITE from 127.0.0.2, never ACKed; bytes that came back in SECONDS

ATTACK_SRC (default 127.0.0.1) is the address the TCP attacks connect from.
"""
import os, resource, socket, sys, time

IP = "127.0.0.1"

def invite(port, agent, call_id, extra=""):
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    return (f"INVITE sip:buffer@{IP}:{port};agent={agent} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {IP}:{port + 7};branch=z9hG4bK{call_id}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:attacker@{IP}>;tag=atk{call_id}\r\n"
            f"To: <sip:a1@{IP}>\r\n"
            f"Call-ID: {call_id}@attacker\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:attacker@{IP}:{port + 7}>\r\n"
            f"{extra}"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}")

def udp(bind_port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((IP, bind_port))
    s.settimeout(0.2)
    return s

def drain(sock, seconds):
    """Every datagram within `seconds`: (count, bytes, first lines)."""
    end, n, size, firsts = time.time() + seconds, 0, 0, []
    while time.time() < end:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            continue
        n += 1
        size += len(data)
        firsts.append(data.split(b"\r\n", 1)[0].decode(errors="replace").replace(" ", "_"))
    return n, size, firsts

def forged_uri(buffer_port, agent_port):
    me, agent = udp(buffer_port + 7), udp(agent_port)
    sent = 0
    for i, extra in enumerate(["", "X-Parley-Auth: t=%d;n=x.1;mac=0123456789abcdef0123456789abcdef\r\n" % int(time.time())]):
        m = invite(buffer_port, "a1", f"forged-uri-{i}", extra).encode()
        sent += len(m)
        me.sendto(m, (IP, buffer_port))
    n, size, firsts = drain(me, 1.5)
    an, _, _ = drain(agent, 0.5)
    print(f"answers={n} answer_lines={','.join(firsts)} agent_received={an} sent={sent} answered_bytes={size}")

def forged_message(buffer_port, agent_port, victim_port):
    me, agent, victim = udp(buffer_port + 7), udp(agent_port), udp(victim_port)
    inner = invite(buffer_port, "a1", "forged-msg")
    m = (f"MESSAGE sip:buffer@{IP}:{buffer_port} SIP/2.0\r\n"
         f"Via: SIP/2.0/UDP {IP}:{buffer_port + 7};branch=z9hG4bKmsg1\r\n"
         "Max-Forwards: 70\r\n"
         f"From: <sip:distributor@{IP}>;tag=m1\r\n"
         f"To: <sip:buffer@{IP}>\r\n"
         "Call-ID: forged-msg@attacker\r\n"
         "CSeq: 1 MESSAGE\r\n"
         f"Contact: <sip:victim@{IP}:{victim_port}>\r\n"
         "Content-Type: message/sip\r\n"
         f"Content-Length: {len(inner)}\r\n\r\n{inner}").encode()
    me.sendto(m, (IP, buffer_port))
    n, size, firsts = drain(me, 1.5)
    vn, vsize, _ = drain(victim, 0.5)
    an, _, _ = drain(agent, 0.2)
    print(f"answers={n} answer_lines={','.join(firsts)} victim_received={vn} victim_bytes={vsize} sent={len(m)} agent_received={an}")

def forged_tunnel(tunnel_port):
    statuses = []
    for header in ["", "X-Parley-Auth: t=%d;n=x.1;mac=0123456789abcdef0123456789abcdef\r\n" % int(time.time())]:
        s = socket.create_connection((IP, tunnel_port), timeout=3)
        s.sendall(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: sip\r\n{header}\r\n").encode())
        try:
            data = s.recv(4096)
        except socket.timeout:
            data = b""
        statuses.append((data.split(b"\r\n", 1)[0].decode(errors="replace") or "nothing").replace(" ", "_"))
        s.close()
    print(f"statuses={','.join(statuses)}")

def spoofed_event(distributor_port):
    me = udp(distributor_port + 8)
    body = "event=ended\ncall=c0000000000001\nagent=a1\n"
    m = (f"MESSAGE sip:distributor@{IP}:{distributor_port} SIP/2.0\r\n"
         f"Via: SIP/2.0/UDP {IP}:{distributor_port + 8};branch=z9hG4bKev1\r\n"
         "Max-Forwards: 70\r\n"
         f"From: <sip:buffer@{IP}>;tag=e1\r\n"
         f"To: <sip:distributor@{IP}>\r\n"
         "Call-ID: spoofed-event@attacker\r\n"
         "CSeq: 1 MESSAGE\r\n"
         "Content-Type: application/vnd.parley.call-event\r\n"
         f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    me.sendto(m, (IP, distributor_port))
    n, _, firsts = drain(me, 1.5)
    print(f"answers={n} answer_lines={','.join(firsts)}")

def spoofed_transfer(distributor_port):
    """A transfer event to the distributor (it would move an answered call to another agent)
    and a REFER to the buffer server outside any of its dialogs: each answer's first line."""
    me = udp(distributor_port + 8)
    body = "event=transfer\ncall=c0000000000001\nagent=a1\ntarget=a2\ncaller=<sip:x@attacker>\n"
    m = (f"MESSAGE sip:distributor@{IP}:{distributor_port} SIP/2.0\r\n"
         f"Via: SIP/2.0/UDP {IP}:{distributor_port + 8};branch=z9hG4bKxf1\r\n"
         "Max-Forwards: 70\r\n"
         f"From: <sip:buffer@{IP}>;tag=x1\r\n"
         f"To: <sip:distributor@{IP}>\r\n"
         "Call-ID: spoofed-transfer@attacker\r\n"
         "CSeq: 1 MESSAGE\r\n"
         "Content-Type: application/vnd.parley.call-event\r\n"
         f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    me.sendto(m, (IP, distributor_port))
    refer = (f"REFER sip:{IP}:{distributor_port + 1} SIP/2.0\r\n"
             f"Via: SIP/2.0/UDP {IP}:{distributor_port + 8};branch=z9hG4bKxf2\r\n"
             "Max-Forwards: 70\r\n"
             f"From: <sip:a1@{IP}>;tag=guess1\r\n"
             f"To: <sip:caller@{IP}>;tag=guess2\r\n"
             "Call-ID: b2b-guessed@attacker\r\n"
             "CSeq: 1 REFER\r\n"
             f"Contact: <sip:a1@{IP}:{distributor_port + 8}>\r\n"
             f"Refer-To: <sip:a2@{IP}>\r\n"
             "Content-Length: 0\r\n\r\n").encode()
    me.sendto(refer, (IP, distributor_port + 1))
    n, _, firsts = drain(me, 1.5)
    print(f"answers={n} answer_lines={','.join(sorted(firsts))}")

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 20000), max(hard, 20000)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def flood(port, count):
    me = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    me.bind(("127.0.0.2", 0))
    me.settimeout(0.2)
    lport = me.getsockname()[1]
    for i in range(int(count)):
        m = (f"OPTIONS sip:distributor@{IP}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{lport};branch=z9hG4bKfl{i}\r\n"
             f"Max-Forwards: 70\r\nFrom: <sip:flood@127.0.0.2>;tag=f{i}\r\nTo: <sip:distributor@{IP}>\r\n"
             f"Call-ID: flood-{i}@127.0.0.2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        me.sendto(m.encode(), (IP, port))
    n, _, _ = drain(me, 2)
    print(f"sent={count} answered={n}")

def reflect(port, seconds):
    me = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    me.bind(("127.0.0.2", 0))
    me.settimeout(0.2)
    lport = me.getsockname()[1]
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    m = (f"INVITE sip:sales@{IP}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{lport};branch=z9hG4bKrefl1\r\n"
         f"Max-Forwards: 70\r\nFrom: <sip:victim@127.0.0.2>;tag=r1\r\nTo: <sip:sales@{IP}>\r\n"
         f"Call-ID: reflect-1@127.0.0.2\r\nCSeq: 1 INVITE\r\nContact: <sip:victim@127.0.0.2:{lport}>\r\n"
         f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    me.sendto(m, (IP, port))
    n, size, firsts = drain(me, float(seconds))
    print(f"sent={len(m)} received={size} messages={n} lines={','.join(firsts)}")

def many(port, count, seconds, payload):
    """Opens up to `count` connections (each sending `payload`); how many were accepted and still
    open after `seconds`, how many the server closed."""
    raise_nofile()
    socks, refused = [], 0
    deadline = time.time() + 30
    for _ in range(count):
        if time.time() > deadline:
            break
        try:
            s = socket.create_connection((IP, port), timeout=2, source_address=(os.environ.get("ATTACK_SRC", IP), 0))
            if payload:
                s.sendall(payload)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
    time.sleep(seconds)
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    print(f"opened={len(socks)} refused={refused} closed_by_server={closed} still_open={len(socks) - closed}")

def trickle(port, limit):
    s = socket.create_connection((IP, port), timeout=2)
    s.settimeout(0.01)
    m = invite(port, "a1", "trickle").encode()
    start, cut = time.time(), None
    for b in m:
        if time.time() - start > limit:
            break
        try:
            s.sendall(bytes([b]))
            if s.recv(1) == b"":
                cut = time.time() - start
                break
        except socket.timeout:
            pass
        except OSError:
            cut = time.time() - start
            break
        time.sleep(0.25)
    s.close()
    print(f"cut_after={'%.1f' % cut if cut is not None else 'never'}")

def oversize(port):
    s = socket.create_connection((IP, port), timeout=3)
    head = invite(port, "a1", "oversize").split("Content-Length:")[0] + "Content-Length: 2000000\r\n\r\n"
    s.sendall(head.encode() + b"x" * 1000)
    try:
        data = s.recv(1)
        print(f"closed={'yes' if data == b'' else 'no'}")
    except socket.timeout:
        print("closed=no")
    except OSError:
        print("closed=yes")

if __name__ == "__main__":
    cmd, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
    {"forged-uri": forged_uri, "forged-message": forged_message, "forged-tunnel": forged_tunnel,
     "spoofed-event": spoofed_event, "spoofed-transfer": spoofed_transfer, "trickle": trickle, "oversize": oversize, "flood": flood, "reflect": reflect,
     "silent-tcp": lambda p, c, s: many(p, c, s, b""),
     "half-sent": lambda p, c, s: many(p, c, s, invite(p, "a1", "half").encode()[:300])}[cmd](*args)
