#!/usr/bin/python3
"""bench/floor.py: load for the floor-pps and floor-bulk scenarios of bench/run.sh.

  floor.py udp-sink ADDR PORT SECS          bind, never read (the kernel drops what overflows)
  floor.py udp-blast ADDR PORT SECS SIZE    send SIZE-byte datagrams for SECS; prints how many
  floor.py tcp-sink ADDR PORT SECS          accept one connection, read it all; prints bytes
  floor.py tcp-send ADDR PORT SECS          send as fast as the connection takes for SECS;
                                            prints bytes
Only lab addresses (198.18.0.0/15) are given to it.
"""
import socket
import sys
import time

mode, addr, port, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
end = time.monotonic() + secs

if mode == "udp-sink":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    time.sleep(secs)
elif mode == "udp-blast":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msg, n, dst = b"m" * int(sys.argv[5]), 0, (addr, port)
    while time.monotonic() < end:
        for _ in range(256):
            try:
                s.sendto(msg, dst)
                n += 1
            except OSError:
                pass
    print(n)
elif mode == "tcp-sink":
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    ls.settimeout(secs)
    c, _ = ls.accept()
    c.settimeout(secs)
    n = 0
    try:
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            n += len(b)
    except socket.timeout:
        pass
    print(n)
elif mode == "tcp-send":
    c = socket.create_connection((addr, port), timeout=5)
    buf, n = b"b" * (1 << 16), 0
    while time.monotonic() < end:
        c.sendall(buf)
        n += len(buf)
    c.close()
    print(n)
else:
    sys.exit("floor.py: unknown mode " + mode)
