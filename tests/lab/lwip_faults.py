"""Faults for mqoff proxy --stack lwip (tests/lab/test_lwip.sh), run in the cli namespace.

  lwip_faults.py synflood --iface IF --mac MAC --host ADDR --count N
      N SYNs to ADDR:1883 from addresses nobody answers ARP for (198.18.0.100..199), sent as
      raw frames on IF to MAC: each leaves a half-open connection in mqoff until the SYN
      backlog is full. Then an established connection (opened before) still works.
  lwip_faults.py maxconns --host ADDR --limit N
      N + 3 connections: N get a CONNACK, the others are reset; the first N still work.
  lwip_faults.py states --host ADDR
      RST right after the handshake, RST after CONNECT, FIN after CONNECT (half-close),
      FIN before anything; then a fresh client still gets a CONNACK and a round trip.

Every check prints "ok - NAME [lwip]" or "not ok - NAME [lwip]: why".
"""

import argparse
import random
import socket
import struct
import sys
import time

from mqlab import Reporter, connect_pkt, mstr, packet

PORT = 1883


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def syn_frame(smac, dmac, src, dst, sport, dport, seq, flags=0x02):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randrange(65536), 0, 64, 6,
                     0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dmac + smac + b"\x08\x00" + ip + tcp


def mac_bytes(s):
    return bytes(int(x, 16) for x in s.split(":"))


def mqtt_conn(host, cid, timeout=5.0):
    """A raw MQTT 3.1.1 client: connected socket after its CONNACK, or raises."""
    s = socket.create_connection((host, PORT), timeout=timeout)
    s.sendall(connect_pkt(cid, 4))
    ack = recv_n(s, 4)
    if ack[:1] != b"\x20" or ack[3] != 0:
        raise RuntimeError("CONNACK %r" % ack)
    return s


def recv_n(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise RuntimeError("closed after %d bytes" % len(b))
        b += c
    return b


def roundtrip(s, topic):
    """SUBSCRIBE topic, PUBLISH to it QoS 0 on the same connection, read it back."""
    s.sendall(packet(0x82, b"\x00\x01" + mstr(topic) + b"\x00"))
    suback = recv_n(s, 5)
    if suback[:1] != b"\x90":
        raise RuntimeError("SUBACK %r" % suback)
    body = mstr(topic) + b"hi"
    s.sendall(packet(0x30, body))
    got = recv_n(s, 2 + len(body))
    if got[2:] != body:
        raise RuntimeError("got %r" % got)
    return True


def try_(fn):
    try:
        return fn(), ""
    except Exception as e:  # noqa: BLE001 (the check reports it)
        return False, repr(e)


def synflood(a, rep):
    keep = mqtt_conn(a.host, "flood-keep")
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((a.iface, 0))
    smac = bytes([0x02, 0, 0, 0, 0, 0x77])
    dmac = mac_bytes(a.mac)
    t0 = time.time()
    for i in range(a.count):
        src = "198.18.0.%d" % (100 + i % 100)
        sock.send(syn_frame(smac, dmac, src, a.host, 20000 + i, PORT, random.randrange(1 << 32)))
        if i % 50 == 49:
            time.sleep(0.005)
    rep.note("%d SYNs in %.2f s" % (a.count, time.time() - t0))
    time.sleep(0.5)
    ok, why = try_(lambda: roundtrip(keep, "flood/t"))
    rep.ok("SYN flood: an established connection keeps working", ok, why)
    keep.close()


def maxconns(a, rep):
    conns, refused = [], 0
    for i in range(a.limit + 3):
        try:
            conns.append(mqtt_conn(a.host, "mc%d" % i, timeout=3))
        except Exception:  # noqa: BLE001
            refused += 1
    rep.eq("--max-conns %d: %d connections get a CONNACK" % (a.limit, a.limit), len(conns), a.limit)
    rep.eq("--max-conns %d: 3 more are refused" % a.limit, refused, 3)
    ok, why = try_(lambda: all(roundtrip(c, "mc/%d" % i) for i, c in enumerate(conns)))
    rep.ok("--max-conns: the connections within it work", ok, why)
    for c in conns:
        c.close()
    time.sleep(0.5)
    ok, why = try_(lambda: mqtt_conn(a.host, "mc-after").close() is None)
    rep.ok("--max-conns: once they closed, a new client connects", ok, why)


def rst(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def states(a, rep):
    # RST right after the handshake (no byte sent)
    s = socket.create_connection((a.host, PORT), timeout=3)
    rst(s)
    # RST after CONNECT, before or while its CONNACK comes
    s = socket.create_connection((a.host, PORT), timeout=3)
    s.sendall(connect_pkt("st-rst", 4))
    rst(s)
    # RST after the CONNACK and a SUBSCRIBE
    s = mqtt_conn(a.host, "st-rst2")
    s.sendall(packet(0x82, b"\x00\x01" + mstr("st/#") + b"\x00"))
    rst(s)
    # FIN before anything
    s = socket.create_connection((a.host, PORT), timeout=3)
    s.shutdown(socket.SHUT_WR)
    ok, why = try_(lambda: s.recv(10) == b"")
    rep.ok("FIN before CONNECT: the connection ends (the broker closes it)", ok, why)
    s.close()
    # FIN right after CONNECT: the broker sees CONNECT then FIN, answers, closes
    s = socket.create_connection((a.host, PORT), timeout=3)
    s.sendall(connect_pkt("st-fin", 4))
    s.shutdown(socket.SHUT_WR)
    data = b""
    try:
        while True:
            c = s.recv(100)
            if not c:
                break
            data += c
    except Exception as e:  # noqa: BLE001
        data += repr(e).encode()
    s.close()
    rep.ok("FIN after CONNECT: the client's stream ends cleanly (%r)" % data[:8],
           data == b"" or data.startswith(b"\x20\x02"), data)
    time.sleep(0.3)
    ok, why = try_(lambda: roundtrip(mqtt_conn(a.host, "st-after"), "st/after"))
    rep.ok("after resets and half-closes in every state, a new client works", ok, why)


def memflood(a, rep):
    """Connections (no CONNECT) until mqoff, its address space capped by the test, runs out of
    memory; then they close and the connection opened before is checked."""
    keep = mqtt_conn(a.host, "mem-keep")
    conns, failed = [], 0
    for i in range(a.count):
        s = socket.socket()
        s.settimeout(0.3)
        try:
            s.connect((a.host, PORT))
            conns.append(s)
        except Exception:  # noqa: BLE001
            failed += 1
            s.close()
            if failed >= 20:
                break
    rep.note("%d connections open, %d failed" % (len(conns), failed))
    rep.ok("memory exhaustion: new connections are refused", failed > 0,
           "all %d connected" % len(conns))
    for s in conns:
        s.close()
    time.sleep(1.0)
    keep.settimeout(15)  # frames lost meanwhile come again with TCP's backed-off timers
    ok, why = try_(lambda: roundtrip(keep, "mem/t"))
    rep.ok("memory exhaustion: the connection opened before still works", ok, why)
    keep.close()
    # A new client is not asserted: the broker side of each closed connection stays in
    # TIME_WAIT (lwIP: 2 MSL, 2 minutes), holding memory until then.
    ok, why = try_(lambda: roundtrip(mqtt_conn(a.host, "mem-after"), "mem/after"))
    rep.note("a new client right after: %s" % ("works" if ok else why))


def tcp_frags(smac, dmac, src, dst, sport, dport, seq, ack, payload):
    """One TCP segment (PSH|ACK) cut in two IPv4 fragments: the first carries the TCP header and
    4 bytes of the payload, the second the rest (lwIP wants the TCP header in the first)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x18, 502, 0, 0) + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ident = random.randrange(65536)
    out = []
    for off, part, more in ((0, tcp[:24], 1), (24, tcp[24:], 0)):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(part), ident, (more << 13) | (off // 8),
                         64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        out.append(dmac + smac + b"\x08\x00" + ip + part)
    return out


def tcp_of(frame):
    """(src, sport, dst, dport, seq, ack, payload, flags) of an Ethernet/IPv4/TCP frame, or
    None."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    tot = struct.unpack("!H", frame[16:18])[0]
    t = frame[14 + ihl:14 + tot]
    sport, dport, seq, ack = struct.unpack("!HHII", t[:12])
    return (socket.inet_ntoa(frame[26:30]), sport, socket.inet_ntoa(frame[30:34]), dport, seq,
            ack, t[(t[12] >> 4) * 4:], t[13])


def fragments(a, rep):
    """A TCP segment of an established connection in two IPv4 fragments: lwIP reassembles it
    and the connection takes it (mqoff hands lwIP all of its connections for a fragment, not
    one bucket). Seen on the wire: lwIP acknowledges the segment's bytes (a segment that found
    no connection would get a reset naming the same number)."""
    other = mqtt_conn(a.host, "frag-other")
    s = mqtt_conn(a.host, "frag-1")
    src, lport = s.getsockname()
    sn = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sn.bind((a.iface, 0))
    sn.settimeout(0.5)
    smac = sn.getsockname()[4]
    s.sendall(b"\xc0\x00")  # PINGREQ: the PINGRESP's segment gives the sequence numbers
    recv_n(s, 2)
    seq = ack = None
    t0 = time.time()
    while time.time() - t0 < 3 and seq is None:
        try:
            t = tcp_of(sn.recv(65536))
        except socket.timeout:
            continue
        if t and t[:4] == (a.host, PORT, src, lport) and t[6] == b"\xd0\x00":
            seq, ack = t[5], (t[4] + 2) & 0xFFFFFFFF  # it acknowledges the PINGREQ
    if not rep.ok("fragments: the connection's sequence numbers seen", seq is not None and ack is not None,
                  "seq %r ack %r" % (seq, ack)):
        return
    for f in tcp_frags(smac, mac_bytes(a.mac), src, a.host, lport, PORT, seq, ack, b"\xc0\x00" * 4):
        sn.send(f)
    acked = False
    t0 = time.time()
    while time.time() - t0 < 3 and not acked:
        try:
            f = sn.recv(65536)
        except socket.timeout:
            continue
        t = tcp_of(f)
        acked = bool(t) and t[:4] == (a.host, PORT, src, lport) and t[5] == (seq + 8) & 0xFFFFFFFF \
            and not t[7] & 0x04  # an ACK, not the reset of a segment no connection took
    rep.ok("fragments: a segment in two IPv4 fragments reaches its connection (acknowledged)", acked)
    # its kernel never sent those bytes, so the connection cannot go on, and lwIP would not take
    # the kernel's reset (8 bytes before its window): reset it at the sequence number it expects
    sn.send(syn_frame(smac, mac_bytes(a.mac), src, a.host, lport, PORT, (seq + 8) & 0xFFFFFFFF, 0x04))
    rst(s)
    ok, why = try_(lambda: roundtrip(other, "frag/t"))
    rep.ok("fragments: another connection keeps working", ok, why)
    other.close()
    sn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["synflood", "maxconns", "states", "memflood", "fragments"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--iface")
    ap.add_argument("--mac")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--limit", type=int, default=5)
    a = ap.parse_args()
    rep = Reporter("lwip")
    {"synflood": synflood, "maxconns": maxconns, "states": states,
     "memflood": memflood, "fragments": fragments}[a.what](a, rep)
    sys.exit(1 if rep.failed else 0)


if __name__ == "__main__":
    main()
