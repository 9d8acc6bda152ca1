#!/usr/bin/env python3
"""Sends every schema case (`crdgen --cases`, one JSON object a line on stdin)
through the real apiserver: the valid object must be accepted (server-side dry
run), the invalid one rejected with 422 and a message containing the case's
`expect` (the field, or the CEL rule's own message). Update cases create the
valid object for real and try the invalid one as an update of it.

Usage: schema_cases.py SERVER CA CERT KEY NAMESPACE < cases.jsonl
Prints one line per check and, last, "PASSED FAILED".
"""
import json
import ssl
import sys
import urllib.error
import urllib.request

server, ca, cert, key, ns = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
PLURAL = {"VpnGateway": "vpngateways", "VpnUser": "vpnusers", "VpnClient": "vpnclients"}


def call(method, path, body=None, dry=True):
    url = f"{server}{path}" + ("?dryRun=All" if dry else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.load(e)
        except ValueError:
            return e.code, {}


passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {what}")
    else:
        failed += 1
        print(f"FAIL - {what}: {detail}")


for n, line in enumerate(sys.stdin):
    case = json.loads(line)
    kind, cid = case["kind"], case["id"]
    base = f"/apis/sluice.dev/v1alpha1/namespaces/{ns}/{PLURAL[kind]}"
    valid, invalid = case["valid"], case["invalid"]
    name = f"case-{n}"
    for obj in (valid, invalid):
        obj["metadata"] = {"name": name, "namespace": ns}
    if case["update"]:
        status, created = call("POST", base, valid, dry=False)
        check(status in (200, 201), f"{kind} {cid}: valid object created", f"{status} {created.get('message')}")
        if status not in (200, 201):
            failed += 1
            print(f"FAIL - {kind} {cid}: invalid update not tried")
            continue
        invalid["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        status, reply = call("PUT", f"{base}/{name}", invalid)
        call("DELETE", f"{base}/{name}", dry=False)
    else:
        status, reply = call("POST", base, valid)
        check(status in (200, 201), f"{kind} {cid}: valid object accepted", f"{status} {reply.get('message')}")
        status, reply = call("POST", base, invalid)
    message = reply.get("message", "")
    check(status == 422 and case["expect"] in message,
          f"{kind} {cid}: invalid object rejected naming it",
          f"{status} {message!r} lacks {case['expect']!r}")

print(passed, failed)
