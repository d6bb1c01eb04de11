#!/usr/bin/env python3
"""bench/tls/call-load.py: a SIP caller for bench/run-tls.sh that speaks UDP or TLS (Debian's
SIPp has no TLS). Places COUNT calls at RATE a second to sip:sales@TARGET: INVITE, its 200, the
ACK and after HOLD seconds the BYE to the 2xx's Contact, each over the transport given (TLS: one
connection to the distributor for the INVITEs, one to the buffer server for each dialog's ACK and
BYE, both checked against --ca). Prints `ok=N failed=N seconds=S`. Bounded by --timeout.
"""
import argparse, asyncio, os, re, ssl, time

BODY = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


def header(msg, name):
    m = re.search(r"^%s:\s*(.*)$" % name, msg, re.M | re.I)
    return m.group(1).strip() if m else ""


class Calls:
    def __init__(self, a):
        self.a = a
        self.waiting = {}  # (call-id, cseq method) -> future
        self.ok = self.failed = 0

    def request(self, method, uri, call_id, cseq, from_tag, to, via, contact, body=""):
        return (f"{method} {uri} SIP/2.0\r\nVia: {via};branch=z9hG4bK{os.urandom(6).hex()};rport\r\nMax-Forwards: 70\r\n"
                f"From: <sip:caller@127.0.0.1>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <{contact}>\r\n" + ("Content-Type: application/sdp\r\n" if body else "") +
                f"Content-Length: {len(body)}\r\n\r\n{body}")

    def answer(self, msg):
        if not msg.startswith("SIP/2.0"):
            return
        code = int(msg.split(" ", 2)[1])
        if code < 200:
            return
        key = (header(msg, "Call-ID"), header(msg, "CSeq").split(" ")[-1])
        f = self.waiting.pop(key, None)
        if f and not f.done():
            f.set_result((code, msg))

    def wait(self, call_id, method):
        f = asyncio.get_running_loop().create_future()
        self.waiting[(call_id, method)] = f
        return f


class UDP(asyncio.DatagramProtocol):
    def __init__(self, calls):
        self.calls = calls

    def datagram_received(self, data, addr):
        self.calls.answer(data.decode(errors="replace"))


class Stream:
    """One TLS connection, SIP messages framed by Content-Length."""

    def __init__(self, calls, reader, writer):
        self.calls, self.reader, self.writer = calls, reader, writer
        asyncio.get_running_loop().create_task(self.read())

    async def read(self):
        buf = b""
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                head, rest = buf.split(b"\r\n\r\n", 1)
                n = int(header(head.decode(errors="replace"), "Content-Length") or 0)
                if len(rest) < n:
                    break
                self.calls.answer((head + b"\r\n\r\n" + rest[:n]).decode(errors="replace"))
                buf = rest[n:]

    def send(self, text):
        self.writer.write(text.encode())


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--transport", choices=["udp", "tls"], required=True)
    p.add_argument("--target", required=True, help="the distributor, IP:PORT (its TLS port for tls)")
    p.add_argument("--local-port", type=int, required=True)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--hold", type=float, default=0.5)
    p.add_argument("--ca")
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    ip, port = a.target.rsplit(":", 1)
    calls = Calls(a)
    loop = asyncio.get_running_loop()
    tls = None
    if a.transport == "tls":
        tls = ssl.create_default_context(cafile=a.ca)
        tls.check_hostname = False
        r, w = await asyncio.open_connection(ip, int(port), ssl=tls)
        front = Stream(calls, r, w)
        me = f"127.0.0.1:{w.get_extra_info('sockname')[1]}"
        via, contact, suffix = f"SIP/2.0/TLS {me}", f"sip:caller@{me};transport=tls", ";transport=tls"
        buffers = {}

        async def to_contact(uri_hostport, text):
            s = buffers.get(uri_hostport)
            if s is None:
                h, pt = uri_hostport.rsplit(":", 1)
                r2, w2 = await asyncio.open_connection(h, int(pt), ssl=tls)
                s = buffers[uri_hostport] = Stream(calls, r2, w2)
            s.send(text)
        send_front = front.send
    else:
        transport, _ = await loop.create_datagram_endpoint(lambda: UDP(calls), local_addr=("127.0.0.1", a.local_port))
        me = f"127.0.0.1:{a.local_port}"
        via, contact, suffix = f"SIP/2.0/UDP {me}", f"sip:caller@{me}", ""

        async def to_contact(uri_hostport, text):
            h, pt = uri_hostport.rsplit(":", 1)
            transport.sendto(text.encode(), (h, int(pt)))
        send_front = lambda text: transport.sendto(text.encode(), (ip, int(port)))

    async def one(i):
        cid = f"tls-bench-{i}-{os.urandom(4).hex()}@127.0.0.1"
        tag = os.urandom(4).hex()
        to = f"<sip:sales@{ip}>"
        f = calls.wait(cid, "INVITE")
        send_front(calls.request("INVITE", f"sip:sales@{ip}:{port}{suffix}", cid, 1, tag, to, via, contact, BODY))
        try:
            code, msg = await asyncio.wait_for(f, 20)
        except asyncio.TimeoutError:
            calls.failed += 1
            return
        if code != 200:
            calls.failed += 1
            return
        to2 = header(msg, "To")
        m = re.search(r"<sip:([^;>]+)", header(msg, "Contact") or header(msg, "m"))
        hostport = m.group(1).split("@")[-1]
        target = f"sip:{hostport}{suffix}"
        await to_contact(hostport, calls.request("ACK", target, cid, 1, tag, to2, via, contact))
        await asyncio.sleep(a.hold)
        f = calls.wait(cid, "BYE")
        await to_contact(hostport, calls.request("BYE", target, cid, 2, tag, to2, via, contact))
        try:
            code, _ = await asyncio.wait_for(f, 20)
        except asyncio.TimeoutError:
            code = 0
        if code == 200:
            calls.ok += 1
        else:
            calls.failed += 1

    start = time.time()
    tasks = []
    for i in range(a.calls):
        delay = start + i / a.rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i)))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), a.timeout)
    except asyncio.TimeoutError:
        pass
    print(f"ok={calls.ok} failed={a.calls - calls.ok} seconds={time.time() - start:.1f}")


asyncio.run(main())
