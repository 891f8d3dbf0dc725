#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/mqtt/fuzz_mqtt from the packet tables of test_codec.c.

Each seed is one selector byte (bit 0: server->client, bits 1-2: level 3/4/5, bit 3: a
maximum packet size of 48 + 16 * (byte >> 4)) followed by a byte stream: every valid and
every malformed packet of the tables alone, and streams of many packets per level and
direction (client streams start with a CONNECT of that level).

    tests/unit/mqtt/gen_corpus.py [OUTDIR]      (default: fuzz/mqtt/corpus)
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "test_codec.c")
LEVEL_BITS = {3: 0, 4: 1, 5: 2}
ENTRY = re.compile(r'\{"([^"]+)", "([0-9a-f ]*)", (\d), (C2S|S2C)')


def table(text, start, end):
    body = text[text.index(start):text.index(end)]
    for m in ENTRY.finditer(body):
        yield m.group(1), bytes.fromhex(m.group(2)), int(m.group(3)), m.group(4) == "S2C"


def selector(level, s2c, maxp=None):
    b = (1 if s2c else 0) | (LEVEL_BITS.get(level, 2) << 1)
    if maxp is not None:
        b |= 0x08 | (maxp << 4)
    return bytes([b])


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "fuzz", "mqtt", "corpus")
    os.makedirs(out, exist_ok=True)
    text = open(SRC).read()
    valid = list(table(text, "static const struct vec valid[]", "#define N_VALID"))
    bad = list(table(text, "static const struct bad {", "#define N_BAD"))
    seeds = {}
    for name, pkt, lvl, s2c in valid:
        seeds["ok-" + slug(name)] = selector(lvl, s2c) + pkt
    for name, pkt, lvl, s2c in bad:
        seeds["bad-" + slug(name)] = selector(lvl, s2c) + pkt
    connects = {}
    for name, pkt, lvl, s2c in valid:
        if pkt[0] >> 4 == 1:
            connects.setdefault(lvl, pkt)
    for lvl in (3, 4, 5):
        for s2c in (False, True):
            pkts = [p for n, p, l, d in valid if l == lvl and d == s2c and p[0] >> 4 != 1]
            stream = b"".join(pkts)
            if not s2c:
                stream = connects[lvl] + stream
            d = "s2c" if s2c else "c2s"
            seeds["stream-v%d-%s" % (lvl, d)] = selector(lvl, s2c) + stream
            # the same with a maximum packet size that some packets exceed
            seeds["stream-v%d-%s-max" % (lvl, d)] = selector(lvl, s2c, 0) + stream
            # a stream cut in the middle of its last packet
            seeds["stream-v%d-%s-cut" % (lvl, d)] = selector(lvl, s2c) + stream[:-3]
    # a v3.1.1 CONNECT switching a connection announced as v5, then v3.1.1 packets
    v4 = [p for n, p, l, d in valid if l == 4 and not d and p[0] >> 4 != 1]
    seeds["stream-connect-switches-level"] = selector(5, False) + connects[4] + b"".join(v4)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("%d seeds written to %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
