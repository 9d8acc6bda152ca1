#!/usr/bin/env python3
"""Turns VM-lab captures (e2e/qemu/record/capture.sh) into seed corpora for the fuzz targets
in fuzz/ (docs/fuzzing.md), in each target's own input format.

    e2e/fuzz/seeds-from-pcap.py OUTDIR CAPTURE.pcap...      # e.g. OUTDIR = fuzz/corpus

A guest console log next to a pcap (NAME.*serial.log, as capture.sh leaves it) with charon's
level-4 log (e2e/qemu/record/fuzz-seeds-ipsec) gives the IKE keys: the encrypted IKE messages
(Main Mode 5/6, Quick Mode, Informational) are then decrypted, and their real plaintexts
seed isakmp_parse and the structure-aware IKE targets.

From the wire: PPTP control streams (both directions), GRE packets and the PPP frames in
them, L2TP control and data messages and the PPP frames in the data messages, IKE messages
(UDP 500, and 4500 behind the non-ESP marker), ESP packets, the outer IPv4 packets. Also
written: IP_PKTINFO control buffers as this machine's kernel fills them (a loopback socket),
the repository's test certificates and lab manifests, and the programs of the
structure-aware IKE targets (their plaintexts are what the in-repo engines exchange).

Seeds are deduplicated by content and capped per target (MAX_SEEDS, MAX_SEED_LEN): the
corpora stay small; the fuzzer grows its own working copy from them.
"""
import glob
import hashlib
import os
import socket
import struct
import sys

MAX_SEEDS = 48
MAX_SEED_LEN = 4096
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


# ---------------------------------------------------------------- pcap reading

def pcap_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit(f"{path}: not a pcap file (pcapng is not read; use tcpdump -w)")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:  # Ethernet
            etype = struct.unpack(">H", frame[12:14])[0]
            body = frame[14:]
            if etype == 0x8100:
                etype = struct.unpack(">H", frame[16:18])[0]
                body = frame[18:]
            if etype == 0x0800:
                yield body
        elif linktype in (101, 228):  # raw IPv4
            yield frame
        elif linktype == 113:  # Linux cooked
            if struct.unpack(">H", frame[14:16])[0] == 0x0800:
                yield frame[16:]


def ipv4_packets(path):
    """(src, dst, proto, l4 payload, whole IP packet), fragments reassembled."""
    frags = {}
    for pkt in pcap_frames(path):
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            continue
        ihl = (pkt[0] & 15) * 4
        total = struct.unpack(">H", pkt[2:4])[0]
        pkt = pkt[:total]
        ident, fl = struct.unpack(">HH", pkt[4:8])
        proto, src, dst = pkt[9], pkt[12:16], pkt[16:20]
        more, offset = fl & 0x2000, (fl & 0x1FFF) * 8
        payload = pkt[ihl:]
        if more or offset:
            key = (src, dst, ident, proto)
            parts = frags.setdefault(key, {})
            parts[offset] = payload
            if not more:
                parts["end"] = offset + len(payload)
            end = parts.get("end")
            if end is None:
                continue
            buf, at = b"", 0
            while at < end and at in parts:
                buf += parts[at]
                at += len(parts[at])
            if at != end:
                continue
            del frags[key]
            payload = buf
            pkt = pkt[:ihl] + payload
        yield src, dst, proto, payload, pkt


# ---------------------------------------------------------------- protocol helpers

def gre_payload(g):
    """PPP frame of an enhanced GRE packet (RFC 2637 §4.1), or None."""
    if len(g) < 8:
        return None
    flags = g[0]
    n = 8 + (4 if flags & 0x10 else 0) + (4 if g[1] & 0x80 else 0)
    plen = struct.unpack(">H", g[4:6])[0]
    return g[n:n + plen] if plen else None


def l2tp_data_payload(d):
    """PPP frame of an L2TP data message (RFC 2661 §3.1), or None."""
    if len(d) < 6:
        return None
    flags = struct.unpack(">H", d[:2])[0]
    if flags & 0x8000:
        return None
    n = 2 + (2 if flags & 0x4000 else 0) + 4 + (4 if flags & 0x0800 else 0)
    if flags & 0x0200:
        if len(d) < n + 2:
            return None
        n += 2 + struct.unpack(">H", d[n:n + 2])[0]
    return d[n:]


def tcp_streams(packets):
    """Per (src, sport, dst, dport): the byte stream, in sequence order, deduplicated."""
    segs = {}
    for src, dst, proto, p, _ in packets:
        if proto != 6 or len(p) < 20:
            continue
        sport, dport, seq = struct.unpack(">HHI", p[:8])
        off = (p[12] >> 4) * 4
        data = p[off:]
        if data:
            segs.setdefault((src, sport, dst, dport), {})[seq] = data
    out = {}
    for k, by_seq in segs.items():
        buf, nxt = b"", None
        for seq in sorted(by_seq):
            d = by_seq[seq]
            if nxt is not None and seq < nxt:
                d = d[nxt - seq:]
            buf += d
            nxt = seq + len(by_seq[seq]) if nxt is None or seq + len(by_seq[seq]) > nxt else nxt
        out[k] = buf
    return out


def pptp_messages(stream):
    msgs, at = [], 0
    while at + 2 <= len(stream):
        n = struct.unpack(">H", stream[at:at + 2])[0]
        if n < 12 or at + n > len(stream):
            break
        msgs.append(stream[at:at + n])
        at += n
    return msgs


def u8(n):
    return bytes([n & 0xFF])


def u16(n):
    return struct.pack(">H", n & 0xFFFF)


# ---------------------------------------------------------------- seed collection

class Seeds:
    def __init__(self):
        self.by_target = {}

    def add(self, target, data, prefix_len=0):
        if len(data) <= prefix_len:
            return
        data = bytes(data[:MAX_SEED_LEN])
        self.by_target.setdefault(target, {})[hashlib.sha1(data).hexdigest()] = data

    def write(self, outdir):
        for target, seeds in sorted(self.by_target.items()):
            d = os.path.join(outdir, target)
            os.makedirs(d, exist_ok=True)
            have = set(os.listdir(d))
            # Shortest first: the cap keeps many small, distinct seeds.
            for h, data in sorted(seeds.items(), key=lambda kv: (len(kv[1]), kv[0]))[:MAX_SEEDS]:
                name = "seed-" + h[:16]
                if name not in have:
                    with open(os.path.join(d, name), "wb") as f:
                        f.write(data)
            print(f"{target}: {min(len(seeds), MAX_SEEDS)} seeds")


def from_capture(path, seeds, keys):
    packets = list(ipv4_packets(path))
    # Which side is the client: the gateway's protocols' well-known ports.
    # PPTP control.
    for (src, sport, dst, dport), stream in tcp_streams(packets).items():
        msgs = pptp_messages(stream)
        if not msgs:
            continue
        for chunk in (255, 7, 1):
            seeds.add("control_framer", u8(chunk) + stream[:4096])
        for m in msgs:
            seeds.add("control_framer", u8(255) + m)
        if dport == 1723:  # client → gateway: the PAC's input
            seeds.add("pac_engine", b"".join(u8(len(m)) + u8(0) + m for m in msgs if len(m) < 256))
            seeds.add("pac_engine", b"".join(u8(len(m)) + u8(1) + m for m in msgs[:3] if len(m) < 256))
            for i in range(1, len(msgs)):
                seeds.add("pac_engine", b"".join(u8(len(m)) + u8(0) + m for m in msgs[:i + 1] if len(m) < 256))
        else:  # gateway → client: the PNS's input
            seeds.add("pptp_pns_engine", b"".join(b"\x02" + u8(len(m)) + m for m in msgs if len(m) < 256))
            seeds.add("pptp_pns_engine", b"".join(b"\x02" + u8(len(m)) + m + b"\x00" for m in msgs[:4] if len(m) < 256))
            for m in msgs:
                if len(m) < 256:
                    seeds.add("pptp_pns_engine", b"\x00\x02" + u8(len(m)) + m + b"\x00")

    gre = {"to_gw": [], "to_client": []}
    l2tp = {"to_gw": [], "to_client": []}
    udp_l2tp_to_gw = []
    ike = {"to_gw": [], "to_client": []}
    ike_ordered = []
    esp = []
    outer = []
    for src, dst, proto, p, pkt in packets:
        if len(outer) < 400 and len(pkt) <= 1500:
            outer.append((src, pkt))
        if proto == 47:
            to_gw = gre_payload(p) is not None and p[0] & 0x20 == 0x20
            # Direction: the lab's gateway is 10.99.0.1.
            d = "to_gw" if dst == bytes([10, 99, 0, 1]) else "to_client"
            gre[d].append(p)
        elif proto == 50:
            esp.append(p)
        elif proto == 17 and len(p) >= 8:
            sport, dport = struct.unpack(">HH", p[:4])
            body = p[8:]
            d = "to_gw" if dst == bytes([10, 99, 0, 1]) else "to_client"
            if 1701 in (sport, dport):
                l2tp[d].append(body)
                if d == "to_gw":
                    udp_l2tp_to_gw.append(p)
            elif 500 in (sport, dport):
                ike[d].append(body)
                ike_ordered.append((d, body))
            elif 4500 in (sport, dport):
                if body[:4] == b"\0\0\0\0":
                    ike[d].append(body[4:])
                    ike_ordered.append((d, body[4:]))
                elif body != b"\xff":
                    esp.append(body)

    # GRE and the PPP frames in it.
    ppp = {"to_gw": [], "to_client": []}
    for d, pkts in gre.items():
        small = [g for g in pkts if len(g) < 256]
        for i in range(0, min(len(small), 256), 32):
            seeds.add("gre_packet", b"".join(u8(len(g)) + g for g in small[i:i + 32]))
        for g in small[:64]:
            seeds.add("gre_packet", u8(len(g)) + g)
        for g in pkts:
            f = gre_payload(g)
            if f:
                ppp[d].append(f)
    # L2TP.
    for d, msgs in l2tp.items():
        for m in msgs[:200]:
            seeds.add("header_avp", m)
            f = l2tp_data_payload(m)
            if f:
                ppp[d].append(f)
        ctl = [m for m in msgs if m and m[0] & 0x80]
        if d == "to_gw":
            seeds.add("lns_endpoint", b"\x00" + b"".join(u8(len(m)) + b"\x01\x00\x00" + m for m in ctl if len(m) < 256), 1)
            seeds.add("daemon_l2tp_datagram", b"\x00" + b"".join(b"\x00" + u16(len(m)) + m for m in msgs[:48]), 1)
            for m in ctl:
                seeds.add("lns_endpoint", b"\x00" + u8(len(m)) + b"\x01\x00\x00" + m if len(m) < 256 else b"")
                seeds.add("daemon_l2tp_datagram", b"\x00\x00" + u16(len(m)) + m)
            for m in msgs[:64]:
                f = l2tp_data_payload(m)
                if f:
                    # The frame again as a data message for the glue's own session (op 1).
                    seeds.add("daemon_l2tp_datagram", b"\x04\x01" + u16(len(f)) + f)
        else:
            seeds.add("l2tp_lac_endpoint", b"\x00" + b"".join(b"\x02" + u16(len(m)) + m for m in ctl), 1)
            seeds.add("l2tp_lac_endpoint", b"\x00" + b"".join(b"\x02" + u16(len(m)) + m + b"\x00" for m in ctl), 1)
            for m in ctl:
                seeds.add("l2tp_lac_endpoint", b"\x00\x00\x02" + u16(len(m)) + m + b"\x00")
    # The inner UDP (header and L2TP) as ESP plaintext, as if it had come inside ESP.
    for i in range(0, min(len(udp_l2tp_to_gw), 192), 24):
        seeds.add("daemon_esp_inner", b"\x00" + b"".join(b"\x00" + u16(len(u)) + u for u in udp_l2tp_to_gw[i:i + 24]))
    # PPP frames.
    for d, frames in ppp.items():
        lcp = [f for f in frames if f[:4] == b"\xff\x03\xc0\x21" or f[:2] == b"\xc0\x21"]
        for f in lcp:
            seeds.add("lcp_options", f[4:] if f[:2] == b"\xff\x03" else f[2:])
        control = [f for f in frames if not (f[:4] == b"\xff\x03\x00\xfd" or f[:2] == b"\x00\xfd" or f[:1] == b"\xfd")]
        comp = [f for f in frames if f not in control]
        ip = [f[4:] for f in frames if f[:4] == b"\xff\x03\x00\x21"]
        if d == "to_gw":
            seeds.add("frame_input", b"\x7e".join(control[:64]))
            seeds.add("frame_input", b"\x7e".join(control[:64] + [b"\x00"] + comp[:8]))
            for f in control:
                seeds.add("frame_input", f)
            # IP from the client inside PPP (plain L2TP carries it in clear): anti-spoofing
            # with the client's tunnel address as the session's.
            for pkt in ip[:400]:
                if len(pkt) >= 20:
                    seeds.add("daemon_source_allowed", b"\x01" + pkt[12:16] + pkt)
        else:
            # ppp_client: client MS-CHAPv2 + MPPE required, server likewise; inject the
            # gateway's frames, passing the client's own through in between.
            seeds.add("ppp_client", b"\x88\x33" + b"".join(b"\x02" + u8(len(f)) + f for f in control if len(f) < 256), 2)
            seeds.add("ppp_client", b"\x88\x33" + b"".join(b"\x02" + u8(len(f)) + f + b"\x00" for f in control if len(f) < 256), 2)
            for f in control:
                if len(f) < 256:
                    seeds.add("ppp_client", b"\x88\x33\x00\x02" + u8(len(f)) + f + b"\x00")
        mppe = []
        for f in comp[:16]:
            body = f[4:] if f[:2] == b"\xff\x03" else (f[2:] if f[:2] == b"\x00\xfd" else f[1:])
            mppe.append(body[:64].ljust(64, b"\0"))
        if mppe:
            seeds.add("mppe_decrypt", b"".join(mppe))
    # IKE.
    for d, msgs in ike.items():
        for m in msgs:
            seeds.add("isakmp_parse", m)
        if d == "to_gw":
            seeds.add("responder", b"".join(u8((len(m) >> 8) & 0x3F) + u8(len(m)) + m for m in msgs[:8]))
            for m in msgs[:4]:
                seeds.add("responder", u8((len(m) >> 8) & 0x3F) + u8(len(m)) + m)
        else:
            seeds.add("ike_initiator", b"\x00\x00" + b"".join(b"\x02" + u16(len(m)) + m for m in msgs[:8]), 2)
            for m in msgs[:16]:
                seeds.add("ike_initiator", b"\x00\x00\x00\x02" + u16(len(m)) + m)
    if keys:
        pt = ike_plaintexts(ike_ordered, keys)
        print(f"{os.path.basename(path)}: {len(pt)} IKE messages decrypted")
        ike_plaintext_seeds(pt, seeds)
    # ESP as received (encrypted with the session's keys).
    for e in esp[:64]:
        for ctl in (0x00, 0x04, 0xA4):
            seeds.add("decapsulate", u8(ctl) + e[:1500])
    # Outer IPv4 packets: the anti-spoofing check with the source as the session's address.
    for src, pkt in outer[:64]:
        seeds.add("daemon_source_allowed", b"\x01" + src + pkt)
        seeds.add("daemon_source_allowed", b"\x03" + bytes(4) + src + b"\x18" + pkt)


# ---------------------------------------------------------------- IKE plaintexts

def charon_keys(log_path):
    """Per IKE SA of a charon log at level 4 (e2e/qemu/record/fuzz-seeds-ipsec): cookies →
    (encryption key Ka, initial IV, SKEYID_a), parsed with the known-answer recorder's
    reader (dataplane/ike/tests/vectors/strongswan_log.py)."""
    import importlib.util
    import re
    spec = importlib.util.spec_from_file_location(
        "strongswan_log", os.path.join(REPO, "dataplane/ike/tests/vectors/strongswan_log.py"))
    sl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sl)
    text = open(log_path, encoding="utf-8", errors="replace").read()
    if "=====CHARON-BEGIN" in text:
        text = text.split("=====CHARON-BEGIN", 1)[1].split("=====CHARON-END", 1)[0]
    lines = [l.rstrip("\r") for l in text.splitlines()]
    cs = sl.chunks(lines)
    pairs = []
    for l in lines:
        m = sl.SPIS.search(l)
        if m and m.group(2) != "0" * 16 and m.groups() not in pairs:
            pairs.append(m.groups())
    ka = [c[1] for c in cs if c[0] == "encryption key Ka"]
    iv = [c[1] for c in cs if c[0] == "initial IV"]
    sa = [c[1] for c in cs if c[0] == "SKEYID_a"]
    return {bytes.fromhex(i) + bytes.fromhex(r): k for (i, r), k in zip(pairs, zip(ka, iv, sa))}


def ike_plaintexts(msgs, keys):
    """Decrypts the captured IKE messages of the SAs whose keys are known: (direction,
    plaintext message with the E flag cleared) in capture order."""
    import hashlib as hl
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    out, state = [], {}
    for d, m in msgs:
        if len(m) < 28 or not m[19] & 1:
            continue
        ck = m[:16]
        if ck not in keys:
            continue
        ka, iv1, skeyid_a = keys[ck]
        alg = algorithms.TripleDES if len(ka) == 24 else algorithms.AES
        bs = 8 if len(ka) == 24 else 16
        h = {20: hl.sha1, 32: hl.sha256, 48: hl.sha384, 64: hl.sha512}.get(len(skeyid_a), hl.sha1)
        st = state.setdefault(ck, {"p1": iv1, "last": None, "msg": {}, "seen": set()})
        if m in st["seen"]:
            continue  # a retransmission
        st["seen"].add(m)
        exch, msgid = m[18], m[20:24]
        ct = m[28:]
        if not ct or len(ct) % bs:
            continue
        if msgid == bytes(4):
            iv = st["p1"]
        else:
            iv = st["msg"].get(msgid) or h(st["last"] + msgid).digest()[:bs] if st["last"] else None
            if iv is None:
                continue
        dec = Cipher(alg(ka), modes.CBC(iv)).decryptor()
        pt = dec.update(ct) + dec.finalize()
        if msgid == bytes(4):
            st["p1"] = ct[-bs:]
            st["last"] = ct[-bs:]
        else:
            st["msg"][msgid] = ct[-bs:]
        hdr = bytearray(m[:28])
        hdr[19] &= ~1 & 0xFF
        hdr[24:28] = struct.pack(">I", 28 + len(pt))
        out.append((d, exch, bytes(hdr) + pt))
    return out


def chain_after_hash(msg):
    """(first payload type after the leading HASH, the payload bytes after it), or None."""
    first = msg[16]
    body = msg[28:]
    if first != 8 or len(body) < 4:
        return None
    n = struct.unpack(">H", body[2:4])[0]
    # The chain's end: walk it (padding follows the last payload).
    at, nxt = n, body[0]
    end = at
    while nxt and at + 4 <= len(body):
        ln = struct.unpack(">H", body[at + 2:at + 4])[0]
        if ln < 4 or at + ln > len(body):
            break
        nxt = body[at]
        at += ln
        end = at
    return body[0], body[n:end]


def ike_plaintext_seeds(pt, seeds):
    """Real plaintexts into the structure-aware targets' programs (op bytes as their
    headers describe: 0x0C = Quick Mode with the input's payloads + HASH(3) for the
    responder target, 0x20 = answer with the input's payloads for the initiator target,
    2 + 0x80 = Informational with the input's payloads)."""
    for d, exch, m in pt:
        seeds.add("isakmp_parse", m)
        if exch == 2:
            body = m[28:]
            if d == "to_gw":
                seeds.add("ike_responder_phases", b"\x00\x03" + m[16:17] + u16(len(body)) + body)
            else:
                seeds.add("ike_initiator_phases", b"\x00\x00\x03" + m[16:17] + u16(len(body)) + body)
            continue
        r = chain_after_hash(m)
        if not r:
            continue
        first, rest = r
        if exch == 32 and d == "to_gw" and m[16] == 8:
            seeds.add("ike_responder_phases", b"\x00\x00\x0c" + m[20:24] + u8(first) + u16(len(rest)) + rest)
        elif exch == 32:
            seeds.add("ike_initiator_phases", b"\x00\x00\x00\x20" + u8(first) + u16(len(rest)) + rest)
        elif exch == 5 and d == "to_gw":
            seeds.add("ike_responder_phases", b"\x00\x00\x02" + m[20:24] + b"\x80" + u8(first) + u16(len(rest)) + rest)
        elif exch == 5:
            seeds.add("ike_initiator_phases", b"\x00\x00\x00\x02" + m[20:24] + b"\x80" + u8(first) + u16(len(rest)) + rest)


def kernel_cmsgs(seeds):
    """IP_PKTINFO (+ others) control buffers as this kernel fills them, over loopback."""
    # Linux option numbers (Python's socket module lacks some): IP_PKTINFO 8, IP_RECVTTL 12,
    # IP_RECVTOS 13.
    pktinfo, recvttl, recvtos = 8, 12, 13
    for opts in ((pktinfo,), (recvttl, pktinfo), (recvtos, recvttl, pktinfo)):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rx.bind(("127.0.0.1", 0))
            for o in opts:
                rx.setsockopt(socket.IPPROTO_IP, o, 1)
            tx.sendto(b"x", rx.getsockname())
            _, anc, _, _ = rx.recvmsg(16, 64)
            buf = b""
            for level, typ, data in anc:
                n = 16 + len(data)
                buf += struct.pack("=QII", n, level, typ) + data
                buf += b"\0" * ((-len(buf)) % 8)
            seeds.add("daemon_udp_cmsg", buf)
        finally:
            rx.close()
            tx.close()


def repository_inputs(seeds):
    for p in sorted(glob.glob(os.path.join(REPO, "e2e/qemu/scenarios/*/manifest.yaml")))[:24]:
        with open(p, "rb") as f:
            seeds.add("manifests", f.read())
    for p in sorted(glob.glob(os.path.join(REPO, "examples/*.yaml")))[:8]:
        with open(p, "rb") as f:
            seeds.add("manifests", f.read())
    import base64
    ders = {}
    for p in sorted(glob.glob(os.path.join(REPO, "dataplane/ike/tests/certs/*.pem"))):
        with open(p) as f:
            text = f.read()
        if "CERTIFICATE" not in text:
            continue
        b64 = "".join(l for l in text.splitlines() if l and not l.startswith("-----"))
        ders[os.path.basename(p)] = base64.b64decode(b64)
    for name, der in ders.items():
        seeds.add("x509_verify", u16(len(der)) + der)
        if "int" in ders and name.startswith("client"):
            seeds.add("x509_verify", u16(len(der)) + der + u16(len(ders["int.pem"])) + ders["int.pem"])


def ike_programs(seeds):
    """Programs for ike_responder_phases / ike_initiator_phases (see their headers): the
    exchanges the in-repo initiator and responder run (Main Mode, Quick Mode with and
    without PFS, HASH(3), DPD, DELETE) for several Phase 1 transforms."""
    msgid = b"\x12\x34\x56\x78"
    for sel in (0x00, 0x02, 0x03, 0x08, 0x80):
        # Responder: message 5 valid (+INITIAL-CONTACT), QM with HASH(3), QM+PFS, DPD,
        # DELETE ESP, time, DELETE ISAKMP.
        seeds.add("ike_responder_phases", u8(sel) + b"\x00")
        seeds.add("ike_responder_phases", u8(sel) + b"\x04" + b"\x08" + msgid)
        seeds.add("ike_responder_phases", u8(sel) + b"\x04" + b"\x08" + msgid + b"\x18" + b"\x00\x00\x00\x09"
                  + b"\x02\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x00\x00" + b"\x04\x00\x00\x00\x00\x01\x00"
                  + b"\x02\x00\x00\x00\x03\x02\x00" + b"\x02\x00\x00\x00\x05\x03\x00")
        seeds.add("ike_responder_phases", u8(sel) + b"\x03" + u8(8) + u16(12) + bytes(12))
        # Initiator: message 6 valid, answer its Quick Mode, DPD both ways, rekey, delete.
        seeds.add("ike_initiator_phases", u8(sel) + b"\x00" + b"\x00" + b"\x00")
        seeds.add("ike_initiator_phases", u8(sel) + b"\x02" + b"\x00" + b"\x00" + b"\x02" + msgid + b"\x00\x00\x00\x00\x00\x00"
                  + b"\x03" + msgid + b"\x06\x00" + b"\x06\x01\x00\x00\x00\x07" + b"\x05\x00\x10" + b"\x06\x02")
        seeds.add("ike_initiator_phases", u8(sel | 0x80) + b"\x01" + b"\x00" + b"\x00")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    outdir = sys.argv[1]
    seeds = Seeds()
    for p in sys.argv[2:]:
        # A charon log (capture.sh copies the guest console next to the pcap) unlocks the
        # encrypted IKE messages.
        keys = {}
        for log in glob.glob(p[:-len(".pcap")] + ".*serial.log") if p.endswith(".pcap") else []:
            if "CHARON-BEGIN" in open(log, errors="replace").read():
                keys.update(charon_keys(log))
        from_capture(p, seeds, keys)
    kernel_cmsgs(seeds)
    repository_inputs(seeds)
    ike_programs(seeds)
    seeds.write(outdir)


if __name__ == "__main__":
    main()
