#!/usr/bin/python3
"""Differential check of src/acl against the real Mosquitto broker (Debian's 2.0.11).

For each acl text (hand-written cases covering every rule, plus random ones from a small
grammar) it starts /usr/sbin/mosquitto on a loopback port with that acl_file, and compares:
  - acceptance: the broker starts  <->  mqo_acl_parse() returns 0;
  - WRITE: a client (client id, username) publishes QoS 1 on a topic; a probe client
    subscribed to that topic sees the message or not;
  - READ: the probe publishes on the topic; the client, subscribed to it, sees it or not;
against mqo_acl_check() through ctypes (src/acl/acl.c is compiled to a shared object).

The probe is the user "__probe", whose section (appended to each acl text) grants it
everything it needs. A SUBSCRIBE/SUBACK round trip on the receiving connection serves as
the barrier: the broker queues a publication to subscribers before it acknowledges it.

Run: /usr/bin/python3 tests/unit/acl/mosq_diff.py [--random N] [--seed S] [-v]
Needs: mosquitto, python3-paho-mqtt 1.6.1, gcc. Prints "N passed, N failed" last.
"""
import argparse
import ctypes
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MOSQUITTO = "/usr/sbin/mosquitto"
READ, WRITE = 1, 2
TIMEOUT = 5.0

PROBE_SECTION = (
    "\nuser __probe\n"
    "topic readwrite #\n"
    "topic readwrite $SYS/#\n"
    "topic readwrite $foo/#\n"
    "topic readwrite $CONTROLX/#\n"
)


# ---- our implementation, through ctypes ----

class Ours:
    def __init__(self, workdir):
        so = os.path.join(workdir, "libmqoacl.so")
        subprocess.check_call(["gcc", "-std=c11", "-O1", "-g", "-shared", "-fPIC",
                               "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "src"),
                               os.path.join(ROOT, "src", "acl", "acl.c"), "-o", so])
        lib = ctypes.CDLL(so)
        lib.mqo_acl_parse.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                      ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                                      ctypes.c_size_t]
        lib.mqo_acl_parse.restype = ctypes.c_int
        lib.mqo_acl_check.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                      ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                                      ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        lib.mqo_acl_check.restype = ctypes.c_int
        lib.mqo_acl_free.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def parse(self, text):
        b = text.encode()
        out = ctypes.c_void_p()
        err = ctypes.create_string_buffer(256)
        rc = self.lib.mqo_acl_parse(b, len(b), ctypes.byref(out), err, 256)
        return (out if rc == 0 else None), err.value.decode(errors="replace")

    def check(self, acl, cid, user, topic, access):
        c, t = cid.encode(), topic.encode()
        u = user.encode() if user is not None else None
        return self.lib.mqo_acl_check(acl, c, len(c), u, len(u) if u is not None else 0,
                                      1 if user is not None else 0, t, len(t), access) == 1

    def free(self, acl):
        self.lib.mqo_acl_free(acl)


# ---- the broker ----

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, workdir, text):
        self.dir = workdir
        self.acl = os.path.join(workdir, "acl")
        with open(self.acl, "w") as f:
            f.write(text)
        os.chmod(self.acl, 0o644)
        self.port = free_port()
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nacl_file %s\n"
                    "persistence false\nlog_dest file %s\n"
                    % (self.port, self.acl, os.path.join(workdir, "broker.log")))
        os.chmod(conf, 0o644)
        self.log = open(os.path.join(workdir, "broker.out"), "w")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.ok = self._wait_up()

    def _wait_up(self):
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Conn:
    """A paho client with blocking helpers."""

    def __init__(self, port, cid, user):
        self.c = mqtt.Client(client_id=cid, clean_session=True, protocol=mqtt.MQTTv311)
        if user is not None:
            self.c.username_pw_set(user)
        self.got = set()
        self.acks = {}
        self.cv = threading.Condition()
        self.connected = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_ack
        self.c.on_subscribe = lambda c, u, mid, q: self._on_ack(c, u, mid)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        with self.cv:
            self.cv.wait_for(lambda: self.connected is not None, TIMEOUT)
        if self.connected != 0:
            raise RuntimeError("connect %r/%r failed: %r" % (cid, user, self.connected))
        self.barrier_n = 0

    def _on_connect(self, c, u, flags, rc):
        with self.cv:
            self.connected = rc
            self.cv.notify_all()

    def _on_message(self, c, u, msg):
        with self.cv:
            self.got.add((msg.topic, bytes(msg.payload)))

    def _on_ack(self, c, u, mid):
        with self.cv:
            self.acks[mid] = True
            self.cv.notify_all()

    def _wait_mid(self, mid):
        with self.cv:
            if not self.cv.wait_for(lambda: mid in self.acks, TIMEOUT):
                raise RuntimeError("no ack for mid %d" % mid)

    def publish(self, topic, payload):
        info = self.c.publish(topic, payload, qos=1)
        self._wait_mid(info.mid)

    def subscribe(self, topic):
        rc, mid = self.c.subscribe(topic, qos=0)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError("subscribe failed")
        self._wait_mid(mid)

    def barrier(self):
        self.barrier_n += 1
        self.subscribe("zz/barrier/%d" % self.barrier_n)

    def has(self, topic, payload):
        with self.cv:
            return (topic, payload) in self.got

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


# ---- cases ----

IDENTITIES = [("c1", None), ("c1", "bob"), ("c2", "alice"), ("a/b", None), ("x+y", None),
              ("c3", "u+v"), ("c4", "h#"), ("c5", ""), ("c6", "carol smith"), ("bob", "nobody")]

TOPICS = ["a", "a/b", "a/b/c", "b", "pub/x", "c1", "c1/x", "c1/private", "a/b/x",
          "bob", "bob/x", "u/bob", "u/alice/in", "u/carol smith", "u/", "/", "/a", "read",
          "sp ace/x", "$SYS/broker/uptime", "$SYS/broker/connection/c1/state", "$SYSX/a",
          "$share/g/a", "$foo/bar", "$CONTROLX/a", "c5/x", "u/nobody", "%c/x"]

FIXED = [
    "",
    "topic readwrite #\n",
    "topic read a/#\ntopic write b\n",
    "# comment\n\n  topic   read   a/b  \r\ntopic pub/#\n",
    "topic read\n",
    "topic read sp ace/#\n",
    "topic read a/#\nuser bob\ntopic readwrite bob/#\nuser alice\ntopic read a/b\n",
    "user bob\ntopic a\nuser alice\nuser bob\ntopic deny a\ntopic b\n",
    "topic readwrite a/#\ntopic deny a/b/#\n",
    "topic deny a/b\ntopic readwrite a/#\n",
    "pattern readwrite %c/#\npattern deny %c/private\n",
    "pattern read u/%u/#\npattern write u/%u\n",
    "pattern readwrite %c/#\npattern readwrite u/%u\ntopic read a\n",
    "user bob\ntopic read bob/x\ntopic deny u/#\npattern readwrite u/%u\npattern write bob/#\n",
    "topic readwrite $SYS/#\ntopic readwrite $share/#\ntopic readwrite $foo/#\n",
    "pattern write $SYS/broker/connection/%c/state\n",
    "topic #\ntopic +/#\n",
    "user carol smith\ntopic readwrite u/#\n",
    "topic readwrite u/+\ntopic read /#\n",
    "pattern read %%c/x\ntopic read u/%u\n",
    "user nobody\npattern readwrite %u/#\n",
    # refused by the broker
    " # indented comment\n",
    "\ttopic a\n",
    "topic bogus a\n",
    "topic read a/#/b\n",
    "pattern read %c#\n",
    "user\n",
    "topic\n",
    "foo bar\n",
]


def random_acl(rng):
    levels = ["a", "b", "+", "#", "%c", "%u", "c1", "bob", "", "$SYS", "u", "x"]
    lines = []
    for _ in range(rng.randint(1, 7)):
        k = rng.random()
        if k < 0.15:
            lines.append("user " + rng.choice(["bob", "alice", "u+v", "carol smith", "nobody"]))
            continue
        n = rng.randint(1, 3)
        lv = [rng.choice(levels) for _ in range(n)]
        # keep mostly valid filters: '#' last, '$' only first
        if "#" in lv[:-1] and rng.random() < 0.9:
            lv = lv[:lv.index("#") + 1]
        lv = [x for i, x in enumerate(lv) if x != "$SYS" or i == 0] or ["a"]
        kw = "pattern" if rng.random() < 0.4 else "topic"
        acc = rng.choice(["", "read ", "write ", "readwrite ", "deny "])
        lines.append("%s %s%s" % (kw, acc, "/".join(lv) or "a"))
    return "\n".join(lines) + "\n"


# ---- the comparison ----

def run_case(ours, workdir, text, stats, verbose, tag):
    full = text + PROBE_SECTION
    acl, err = ours.parse(full)
    broker = Broker(workdir, full)
    try:
        if (acl is not None) != broker.ok:
            stats["failed"] += 1
            print("FAIL %s acceptance: broker %s, ours %s (%s)\n---\n%s---"
                  % (tag, "starts" if broker.ok else "refuses",
                     "accepts" if acl is not None else "refuses", err, text))
            return
        stats["passed"] += 1
        if acl is None:
            return
        probe = Conn(broker.port, "__probe", "__probe")
        for t in TOPICS:
            probe.subscribe(t)
        n = 0
        for cid, user in IDENTITIES:
            cl = Conn(broker.port, cid, user)
            for t in TOPICS:
                cl.subscribe(t)
            for t in TOPICS:
                for access in (READ, WRITE):
                    n += 1
                    payload = ("%s/%d" % (tag, n)).encode()
                    if access == WRITE:
                        cl.publish(t, payload)
                        probe.barrier()
                        if t.startswith("$SYS") or t.startswith("$share"):
                            # the probe cannot read these unless the client may write them;
                            # it has read rights on $SYS/# in its section
                            pass
                        real = probe.has(t, payload)
                    else:
                        probe.publish(t, payload)
                        probe.barrier()
                        if not probe.has(t, payload):
                            stats["skipped"] += 1  # probe cannot publish there ($SYS, $share)
                            continue
                        cl.barrier()
                        real = cl.has(t, payload)
                    mine = ours.check(acl, cid, user, t, access)
                    if mine == real:
                        stats["passed"] += 1
                        if verbose:
                            print("ok   %s %r/%r %s %r -> %d" % (tag, cid, user, "RW"[access - 1], t, real))
                    else:
                        stats["failed"] += 1
                        print("FAIL %s client %r user %r %s %r: broker %s, ours %s\n---\n%s---"
                              % (tag, cid, user, "READ" if access == READ else "WRITE", t,
                                 "grants" if real else "denies",
                                 "grants" if mine else "denies", text))
            cl.close()
        probe.close()
        ours.free(acl)
    finally:
        broker.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--random", type=int, default=20, help="random acl texts (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(MOSQUITTO):
        print("mosquitto not installed: skipped")
        print("0 passed, 0 failed")
        return 0
    workdir = tempfile.mkdtemp(prefix="mqoff_acl_diff_")
    os.chmod(workdir, 0o755)  # the broker may drop to the mosquitto user
    stats = {"passed": 0, "failed": 0, "skipped": 0}
    try:
        ours = Ours(workdir)
        rng = random.Random(args.seed)
        cases = [("fixed%d" % i, t) for i, t in enumerate(FIXED)]
        cases += [("rand%d" % i, random_acl(rng)) for i in range(args.random)]
        for tag, text in cases:
            run_case(ours, workdir, text, stats, args.v, tag)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("(%d READ checks skipped: the probe cannot publish there)" % stats["skipped"])
    print("%d passed, %d failed" % (stats["passed"], stats["failed"]))
    return 1 if stats["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
