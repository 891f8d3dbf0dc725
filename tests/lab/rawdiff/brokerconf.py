#!/usr/bin/python3
"""The broker configuration of each group of the differential corpus.

Usage: brokerconf.py GROUP DIR   writes into DIR:
  broker.conf   lines appended to the lab broker's config (tools/mqoff-lab broker-start FILE)
  mqoff.args    the mqoff options that describe that config, one per line (the options
                common to every target are test_rawdiff.sh's MQOFF_ARGS)
  remote.conf   (bridge group) the config of the second broker, 198.18.0.2:1884
and the files those configs name (password file, acl_file, dynamic-security JSON).

The lab broker listens on 198.18.0.2:1883 (the listener the targets put mqoff in front of, its
only one: mqoff runs with --exclusive); "remote" clients of the bridge group connect to the
bridge's second broker, 198.18.0.2:1884.
"""

import base64
import hashlib
import json
import os
import sys

REMOTE_ADDR, REMOTE_PORT = "198.18.0.2", 1884
DYNSEC = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
USERS = {"alice": "secret", "bob": "other", "admin": "adminpw"}


def pbkdf2(password, salt, iterations=101):
    """Mosquitto's password hash: PBKDF2-HMAC-SHA512, 64 bytes."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)


def b64(x):
    return base64.b64encode(x).decode()


def salt_of(user):
    """A fixed 12-byte salt per user: the files come out the same every time."""
    return hashlib.sha256(b"rawdiff salt " + user.encode()).digest()[:12]


def password_file():
    return "".join("%s:$7$101$%s$%s\n" % (u, b64(salt_of(u)), b64(pbkdf2(p, salt_of(u))))
                   for u, p in USERS.items())


def dynsec_json():
    def client(user, roles):
        return {"username": user, "roles": [{"rolename": r} for r in roles],
                "salt": b64(salt_of(user)), "password": b64(pbkdf2(USERS[user], salt_of(user))),
                "iterations": 101}
    ctl = "$CONTROL/dynamic-security/#"
    return {
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True,
                             "subscribe": False, "unsubscribe": True},
        "clients": [client("admin", ["admin"]), client("alice", ["rw"])],
        "groups": [{"groupname": "anon", "roles": [{"rolename": "ro"}]}],
        "anonymousGroup": "anon",
        "roles": [
            {"rolename": "admin", "acls": [
                {"acltype": "publishClientSend", "topic": ctl, "allow": True},
                {"acltype": "publishClientReceive", "topic": ctl, "allow": True},
                {"acltype": "subscribePattern", "topic": ctl, "allow": True}]},
            {"rolename": "rw", "acls": [
                {"acltype": "publishClientSend", "topic": "rd/#", "allow": True},
                {"acltype": "subscribePattern", "topic": "rd/#", "allow": True}]},
            {"rolename": "ro", "acls": [
                {"acltype": "subscribePattern", "topic": "rd/#", "allow": True}]},
        ],
    }


def write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    g, d = sys.argv[1], sys.argv[2]
    os.makedirs(d, exist_ok=True)
    # mqoff reads the broker's own config (test_rawdiff.sh's target_up puts the path of the
    # generated mosquitto.conf for @BROKER_CONF@): authorization, limits, mount point, bridges
    conf, args = [], ["--mosquitto-conf", "@BROKER_CONF@"]
    if g in ("core", "persist31"):
        pass
    elif g == "msgsize":
        conf = ["message_size_limit 100"]
    elif g == "maxpacket":
        conf = ["max_packet_size 200"]
    elif g == "mount":
        # mount_point belongs to the listener defined last: the lab's 1883 one
        conf = ["mount_point mp/"]
    elif g == "bridge":
        conf = ["connection rdbridge", "address %s:%d" % (REMOTE_ADDR, REMOTE_PORT),
                "topic rd/# both 1", "cleansession true", "notifications false",
                "restart_timeout 1", "start_type automatic"]
        write(d, "remote.conf", "\n".join([
            "per_listener_settings false", "listener %d %s" % (REMOTE_PORT, REMOTE_ADDR),
            "allow_anonymous true", "persistence false", "user root", "log_dest stderr",
            "log_type all", ""]))
    elif g == "auth":
        write(d, "passwd", password_file())
        conf = ["allow_anonymous false", "password_file %s/passwd" % d]
    elif g == "acl":
        write(d, "acl", "\n".join([
            "# anonymous clients",
            "topic read rd/+/pub/#",
            "user alice",
            "topic readwrite rd/#",
            "pattern write rd/+/own/%c/#", ""]))
        conf = ["acl_file %s/acl" % d]
    elif g == "dynsec":
        write(d, "dynsec.json", json.dumps(dynsec_json(), indent=1) + "\n")
        conf = ["plugin %s" % DYNSEC, "plugin_opt_config_file %s/dynsec.json" % d]
    else:
        sys.exit("brokerconf.py: unknown group %s" % g)
    write(d, "broker.conf", "".join(line + "\n" for line in conf))
    write(d, "mqoff.args", "".join(a + "\n" for a in args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
