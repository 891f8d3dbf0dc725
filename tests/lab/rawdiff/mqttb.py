"""MQTT packets built by hand, byte for byte, and a short decoder to show them.

The builders take every field as given and check nothing: the differential corpus needs
malformed packets as much as valid ones. Strings may be str (encoded UTF-8) or bytes (sent
as is, so invalid UTF-8 is possible). The wire primitives come from the lab's mqlab module.
"""

import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mqlab import mstr, packet, varint  # noqa: E402  (the lab's wire primitives)

# Packet types (high nibble of byte 0).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
TYPE_NAMES = ["RESERVED0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
              "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
              "PINGRESP", "DISCONNECT", "AUTH"]
# The flags nibble the spec requires per type (PUBLISH: any; shown as 0).
VALID_FLAGS = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}

# v5 properties: id -> (name, kind). kind: byte, u16, u32, varint, str, bin, pair.
PROPS = {
    0x01: ("payload-format", "byte"), 0x02: ("message-expiry", "u32"),
    0x03: ("content-type", "str"), 0x08: ("response-topic", "str"),
    0x09: ("correlation-data", "bin"), 0x0B: ("subscription-id", "varint"),
    0x11: ("session-expiry", "u32"), 0x12: ("assigned-client-id", "str"),
    0x13: ("server-keep-alive", "u16"), 0x15: ("auth-method", "str"),
    0x16: ("auth-data", "bin"), 0x17: ("request-problem-info", "byte"),
    0x18: ("will-delay", "u32"), 0x19: ("request-response-info", "byte"),
    0x1A: ("response-info", "str"), 0x1C: ("server-reference", "str"),
    0x1F: ("reason-string", "str"), 0x21: ("receive-maximum", "u16"),
    0x22: ("topic-alias-maximum", "u16"), 0x23: ("topic-alias", "u16"),
    0x24: ("maximum-qos", "byte"), 0x25: ("retain-available", "byte"),
    0x26: ("user-property", "pair"), 0x27: ("maximum-packet-size", "u32"),
    0x28: ("wildcard-sub-available", "byte"), 0x29: ("sub-id-available", "byte"),
    0x2A: ("shared-sub-available", "byte"),
}
PROP_ID = {v[0]: k for k, v in PROPS.items()}


def b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def bstr(s):
    """A UTF-8 string field: 2-byte length and the bytes (str is encoded, bytes kept)."""
    return mstr(b(s))


def prop(pid, value):
    """One property: identifier (a variable byte integer) and value encoded by its kind.
    Unknown identifiers take bytes as they are."""
    name = pid if isinstance(pid, int) else PROP_ID[pid]
    kind = PROPS.get(name, (None, "raw"))[1]
    out = varint(name)
    if kind == "byte":
        return out + bytes([value])
    if kind == "u16":
        return out + struct.pack("!H", value)
    if kind == "u32":
        return out + struct.pack("!I", value)
    if kind == "varint":
        return out + varint(value)
    if kind in ("str", "bin"):
        return out + bstr(value)
    if kind == "pair":
        return out + bstr(value[0]) + bstr(value[1])
    return out + b(value)


# A value of the right kind for every property, for matrices of "property P in packet T".
SAMPLE = {0x01: 0, 0x02: 30, 0x03: "text/plain", 0x08: "rd/reply", 0x09: b"\x01\x02",
          0x0B: 7, 0x11: 10, 0x12: "assigned", 0x13: 30, 0x15: "PLAIN", 0x16: b"\x00\x01",
          0x17: 1, 0x18: 0, 0x19: 0, 0x1A: "info", 0x1C: "elsewhere", 0x1F: "why",
          0x21: 10, 0x22: 5, 0x23: 1, 0x24: 1, 0x25: 1, 0x26: ("k", "v"), 0x27: 100000,
          0x28: 1, 0x29: 1, 0x2A: 1}


def sample_prop(pid):
    return prop(pid, SAMPLE[pid])


def props(*items):
    """A property block: length (variable byte integer) and the concatenated properties."""
    raw = b"".join(items)
    return varint(len(raw)) + raw


def connect(cid, proto=4, clean=True, keepalive=60, will=None, user=None, password=None,
            v5props=b"", name=None, level=None, flags=None, b0=0x10, extra=b""):
    """CONNECT. proto 3 (MQIsdp/3), 4 (MQTT/4) or 5 (MQTT/5); name/level override the
    protocol name and level byte. will: (topic, payload, qos, retain[, will props]).
    flags overrides the computed connect-flags byte; extra is appended to the packet body."""
    f = 0x02 if clean else 0
    if will is not None:
        f |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    if user is not None:
        f |= 0x80
    if password is not None:
        f |= 0x40
    if flags is not None:
        f = flags
    if name is None:
        name = "MQIsdp" if proto == 3 else "MQTT"
    if level is None:
        level = proto
    vh = bstr(name) + bytes([level, f]) + struct.pack("!H", keepalive)
    if proto == 5:
        vh += v5props_block(v5props)
    pl = bstr(cid)
    if will is not None:
        if proto == 5:
            pl += v5props_block(will[4] if len(will) > 4 else b"")
        pl += bstr(will[0]) + bstr(will[1])
    if user is not None:
        pl += bstr(user)
    if password is not None:
        pl += bstr(password)
    return packet(b0, vh + pl + extra)


def v5props_block(p):
    """p: raw property bytes (wrapped with their length) or a ready block (tuple ('block', bytes))."""
    if isinstance(p, tuple) and p and p[0] == "block":
        return p[1]
    return props(p)


def publish(topic, payload=b"", qos=0, pid=1, retain=False, dup=False, proto=4, v5props=b"",
            b0=None):
    if b0 is None:
        b0 = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = bstr(topic)
    if qos:
        body += struct.pack("!H", pid)
    if proto == 5:
        body += v5props_block(v5props)
    return packet(b0, body + b(payload))


def subscribe(pid, filters, proto=4, v5props=b"", b0=0x82):
    """filters: [(filter, options byte)]."""
    body = struct.pack("!H", pid)
    if proto == 5:
        body += v5props_block(v5props)
    for f, o in filters:
        body += bstr(f) + bytes([o])
    return packet(b0, body)


def unsubscribe(pid, filters, proto=4, v5props=b"", b0=0xA2):
    body = struct.pack("!H", pid)
    if proto == 5:
        body += v5props_block(v5props)
    for f in filters:
        body += bstr(f)
    return packet(b0, body)


def ack(kind, pid, proto=4, rc=None, v5props=None, b0=None):
    """PUBACK/PUBREC/PUBREL/PUBCOMP (kind 4-7). v5: reason code and properties when given."""
    if b0 is None:
        b0 = (kind << 4) | VALID_FLAGS.get(kind, 0)
    body = struct.pack("!H", pid)
    if rc is not None:
        body += bytes([rc])
        if v5props is not None:
            body += v5props_block(v5props)
    return packet(b0, body)


def disconnect(rc=None, v5props=None, b0=0xE0):
    body = b""
    if rc is not None:
        body += bytes([rc])
        if v5props is not None:
            body += v5props_block(v5props)
    return packet(b0, body)


def auth(rc=None, v5props=None, b0=0xF0):
    return disconnect(rc, v5props, b0)


PINGREQ_PKT = b"\xc0\x00"


# ---------------------------------------------------------------------------------------------
# reading

def split_packets(data):
    """Splits a received byte stream into packets. Returns (packets, rest): rest holds the
    bytes of an incomplete (or undecodable) packet at the end."""
    out, i = [], 0
    while i < len(data):
        j, n, mult = i + 1, 0, 1
        while True:
            if j >= len(data) or j - i > 4:
                return out, data[i:]
            n += (data[j] & 0x7F) * mult
            mult *= 128
            j += 1
            if not data[j - 1] & 0x80:
                break
        if j + n > len(data):
            return out, data[i:]
        out.append(data[i:j + n])
        i = j + n
    return out, b""


def header(pkt):
    """(type, flags, offset of the body) of a whole packet."""
    j = 1
    while pkt[j] & 0x80:
        j += 1
    return pkt[0] >> 4, pkt[0] & 0x0F, j + 1


def read_props(body, off):
    """Decodes a property block at off: ([(id, value)], offset after it) or raises ValueError."""
    n, mult, j = 0, 1, off
    while True:
        if j >= len(body):
            raise ValueError("short property length")
        n += (body[j] & 0x7F) * mult
        mult *= 128
        j += 1
        if not body[j - 1] & 0x80:
            break
    end, out = j + n, []
    if end > len(body):
        raise ValueError("property block past the end")
    while j < end:
        pid = body[j]
        j += 1
        kind = PROPS.get(pid, (None, "?"))[1]
        if kind == "byte":
            out.append((pid, body[j]))
            j += 1
        elif kind == "u16":
            out.append((pid, struct.unpack_from("!H", body, j)[0]))
            j += 2
        elif kind == "u32":
            out.append((pid, struct.unpack_from("!I", body, j)[0]))
            j += 4
        elif kind == "varint":
            v, mult = 0, 1
            while True:
                v += (body[j] & 0x7F) * mult
                mult *= 128
                j += 1
                if not body[j - 1] & 0x80:
                    break
            out.append((pid, v))
        elif kind in ("str", "bin"):
            ln = struct.unpack_from("!H", body, j)[0]
            out.append((pid, bytes(body[j + 2:j + 2 + ln])))
            j += 2 + ln
        elif kind == "pair":
            k = struct.unpack_from("!H", body, j)[0]
            kk = bytes(body[j + 2:j + 2 + k])
            j += 2 + k
            v = struct.unpack_from("!H", body, j)[0]
            out.append((pid, (kk, bytes(body[j + 2:j + 2 + v]))))
            j += 2 + v
        else:
            raise ValueError("unknown property 0x%02x" % pid)
    return out, end


def packet_id(pkt):
    """The packet identifier of a PUBLISH (QoS > 0) or of an acknowledgement, else None."""
    t, fl, off = header(pkt)
    if t == PUBLISH:
        if not (fl >> 1) & 3:
            return None
        tl = struct.unpack_from("!H", pkt, off)[0]
        return struct.unpack_from("!H", pkt, off + 2 + tl)[0]
    if t in (PUBACK, PUBREC, PUBREL, PUBCOMP) and len(pkt) >= off + 2:
        return struct.unpack_from("!H", pkt, off)[0]
    return None


def describe(pkt, v5=None):
    """A one-line summary of a packet the broker sent, e.g. 'CONNACK sp=0 rc=0x00'. v5: the
    receiver's protocol is 5 (None: guess from the packet). Falls back to the type name."""
    try:
        t, fl, off = header(pkt)
        body = pkt[off:]
        name = TYPE_NAMES[t]
        if t == CONNACK and len(body) >= 2:
            return "CONNACK sp=%d rc=0x%02x%s" % (body[0] & 1, body[1],
                                                  " +props" if len(body) > 3 else "")
        if t == PUBLISH:
            tl = struct.unpack_from("!H", body, 0)[0]
            topic = body[2:2 + tl].decode("utf-8", "replace")
            q = (fl >> 1) & 3
            s = "PUBLISH q%d%s%s %s" % (q, " r" if fl & 1 else "", " d" if fl & 8 else "", topic)
            if q:
                s += " id=%d" % struct.unpack_from("!H", body, 2 + tl)[0]
            return s
        if t in (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) and len(body) >= 2:
            s = "%s id=%d" % (name, struct.unpack_from("!H", body, 0)[0])
            if t in (SUBACK, UNSUBACK) and len(body) > 2:
                rest = body[2:]
                if v5 or (v5 is None and t == UNSUBACK and len(rest) >= 1):
                    try:
                        _, k = read_props(body, 2)
                        rest = body[k:]
                    except (ValueError, IndexError, struct.error):
                        pass
                s += " rc=" + ",".join("0x%02x" % c for c in rest)
            elif len(body) > 2:
                s += " rc=0x%02x" % body[2]
            return s
        if t in (DISCONNECT, AUTH):
            return "%s rc=0x%02x" % (name, body[0]) if body else name
        return name
    except (IndexError, struct.error, ValueError):
        return "?"
