#!/usr/bin/env bash
# Test PKI for src/cert.rs, made with the host `openssl` CLI (tested with OpenSSL 3.0):
#
#     bash tests/vectors/make_certs.sh      # from dataplane/ike
#
# Writes PEM files to tests/certs/ and the independent RSA known answers to
# tests/vectors/rsa_sign_hash.rs. Every run makes new keys, so rerun it only to replace the
# whole set (the tests carry no key-specific constants other than that generated file).
#
# Good certificates are valid 2025-01-01 .. 2045-01-01 (`openssl ca -startdate/-enddate`;
# OpenSSL 3.0's `x509`/`req` have no -not_before), so the tests do not rot.
#
#   ca            RSA 2048 root, SHA-256, cA=true
#   int           RSA 2048 intermediate under ca, SHA-256, cA=true pathlen:0
#   gateway       RSA 2048 leaf under int: CN=vpn.example.test, SAN DNS vpn.example.test +
#                 IP 198.51.100.1; key as PKCS#8 ("PRIVATE KEY")
#   alice         RSA 2048 leaf under int: CN=alice,O=Example, SAN email alice@example.test;
#                 key as PKCS#1 ("RSA PRIVATE KEY")
#   alice-sha1    like alice, signed by int with SHA-1 (legacy peers)
#   expired       leaf under int, valid 2020-01-01 .. 2021-01-01
#   mallory       leaf issued by alice (a non-CA) — must be refused
#   enc-only      leaf under int whose keyUsage lacks digitalSignature — must be refused
#   critext       leaf under int with an unknown critical extension — must be refused
#   small         RSA 1024 leaf under int — must be refused
#   sub, sub-leaf a CA under int (whose pathlen is 0) and a leaf under it — must be refused
#   deep1..deep4  a chain of CAs under ca; deep-ok (under deep3: a 5-certificate path) and
#                 deep-long (under deep4: 6 certificates, over the limit)
#   other-ca      unrelated RSA root; other-client under it
#   ec-ca         ECDSA P-256 root (ecdsa-with-SHA256); ec-client (P-256 key) under it
#   p384-ca       ECDSA P-384 root (ecdsa-with-SHA384); bob (RSA 2048, SHA-384) under it
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../certs"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

GOOD=(-startdate 20250101000000Z -enddate 20450101000000Z)

cat >ca.cnf <<'EOF'
[ca]
default_ca = ca_default
[ca_default]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[policy_any]
organizationName = optional
commonName = optional
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_int]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_gateway]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, 1.3.6.1.5.5.8.2.2
subjectAltName = DNS:vpn.example.test, IP:198.51.100.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = email:alice@example.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_enconly]
keyUsage = critical, keyEncipherment
[v3_critext]
keyUsage = critical, digitalSignature
1.3.6.1.4.1.55555.1 = critical, ASN1:NULL
[v3_plain]
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# ca_dir NAME: a fresh `openssl ca` database for one issuer.
ca_dir() {
    mkdir -p "$1/newcerts"
    : >"$1/index.txt"
    printf '%s\n' "$2" >"$1/serial"
    cp ca.cnf "$1/"
}

rsa_key() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${2:-2048}" -out "$1.key" 2>/dev/null; }
ec_key() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1.key"; }

# root NAME SUBJECT MD: a self-signed CA.
root() {
    ca_dir "$1.d" 1000
    openssl req -new -config ca.cnf -key "$1.key" -subj "$2" -out "$1.csr"
    (cd "$1.d" && openssl ca -batch -config ca.cnf -selfsign -keyfile "../$1.key" \
        -in "../$1.csr" -out "../$1.pem" -md "$3" -extensions v3_root -notext "${GOOD[@]}" 2>/dev/null)
}

# issue NAME SUBJECT ISSUER EXT MD [dates...]: NAME's key certified by ISSUER.
issue() {
    local name="$1" subj="$2" issuer="$3" ext="$4" md="$5"
    shift 5
    [ -d "$issuer.d" ] || ca_dir "$issuer.d" 2000
    openssl req -new -config ca.cnf -key "$name.key" -subj "$subj" -out "$name.csr"
    (cd "$issuer.d" && openssl ca -batch -config ca.cnf -cert "../$issuer.pem" -keyfile "../$issuer.key" \
        -in "../$name.csr" -out "../$name.pem" -md "$md" -extensions "$ext" -notext "$@" 2>/dev/null)
}

rsa_key ca && root ca "/O=Sluice Test/CN=Sluice Test Root CA" sha256
rsa_key int && issue int "/O=Sluice Test/CN=Sluice Test Intermediate CA" ca v3_int sha256 "${GOOD[@]}"
rsa_key gateway && issue gateway "/O=Example/CN=vpn.example.test" int v3_gateway sha256 "${GOOD[@]}"
rsa_key alice && issue alice "/O=Example/CN=alice" int v3_client sha256 "${GOOD[@]}"
cp alice.key alice-sha1.key && issue alice-sha1 "/O=Example/CN=alice" int v3_client sha1 "${GOOD[@]}"
rsa_key expired && issue expired "/O=Example/CN=expired" int v3_plain sha256 \
    -startdate 20200101000000Z -enddate 20210101000000Z
rsa_key mallory && issue mallory "/O=Example/CN=mallory" alice v3_plain sha256 "${GOOD[@]}"
rsa_key enc-only && issue enc-only "/O=Example/CN=enc-only" int v3_enconly sha256 "${GOOD[@]}"
rsa_key critext && issue critext "/O=Example/CN=critext" int v3_critext sha256 "${GOOD[@]}"
rsa_key small 1024 && issue small "/O=Example/CN=small" int v3_plain sha256 "${GOOD[@]}"
rsa_key sub && issue sub "/O=Sluice Test/CN=Sub CA" int v3_ca sha256 "${GOOD[@]}"
rsa_key sub-leaf && issue sub-leaf "/O=Example/CN=sub-leaf" sub v3_plain sha256 "${GOOD[@]}"
prev=ca
for i in 1 2 3 4; do
    rsa_key "deep$i" && issue "deep$i" "/O=Sluice Test/CN=Deep CA $i" "$prev" v3_ca sha256 "${GOOD[@]}"
    prev="deep$i"
done
rsa_key deep-ok && issue deep-ok "/O=Example/CN=deep-ok" deep3 v3_plain sha256 "${GOOD[@]}"
rsa_key deep-long && issue deep-long "/O=Example/CN=deep-long" deep4 v3_plain sha256 "${GOOD[@]}"
rsa_key other-ca && root other-ca "/O=Elsewhere/CN=Unrelated CA" sha256
rsa_key other-client && issue other-client "/O=Elsewhere/CN=alice" other-ca v3_client sha256 "${GOOD[@]}"
ec_key ec-ca P-256 && root ec-ca "/O=Sluice Test/CN=Sluice Test ECDSA P-256 CA" sha256
ec_key ec-client P-256 && issue ec-client "/O=Example/CN=ec-client" ec-ca v3_plain sha256 "${GOOD[@]}"
ec_key p384-ca P-384 && root p384-ca "/O=Sluice Test/CN=Sluice Test ECDSA P-384 CA" sha384
rsa_key bob && issue bob "/O=Example/CN=bob" p384-ca v3_plain sha384 "${GOOD[@]}"

for c in ca int gateway alice alice-sha1 expired mallory enc-only critext small sub sub-leaf deep1 deep2 deep3 deep4 deep-ok deep-long other-ca other-client ec-ca ec-client p384-ca bob; do
    cp "$c.pem" "$out/$c.pem"
done
# Keys the tests use: PKCS#8 for the gateway, PKCS#1 ("traditional") for alice.
cp gateway.key "$out/gateway.key"
openssl rsa -in alice.key -traditional -out "$out/alice.key" 2>/dev/null
cp small.key "$out/small.key"
cp ec-client.key "$out/ec-client.key"
# The gateway's chain as a gateway would be configured: leaf first, then the intermediate.
cat gateway.pem int.pem >"$out/gateway-chain.pem"

# Known answers for Credentials::sign_hash: raw PKCS#1 v1.5 type-1 padding of the input, no
# DigestInfo (no -digest given to pkeyutl).
printf '%s' 000102030405060708090a0b0c0d0e0f10111213 | xxd -r -p >in20.bin
printf '%s' a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf | xxd -r -p >in32.bin
sig() { openssl pkeyutl -sign -inkey gateway.key -pkeyopt rsa_padding_mode:pkcs1 -in "$1" | xxd -p | tr -d '\n'; }
{
    echo "// @generated by tests/vectors/make_certs.sh — do not edit."
    echo "// openssl pkeyutl -sign -inkey tests/certs/gateway.key -pkeyopt rsa_padding_mode:pkcs1 -in IN"
    echo "const SIGN_IN20: &str = \"$(xxd -p in20.bin | tr -d '\n')\";"
    echo "const SIGN_OUT20: &str = \"$(sig in20.bin)\";"
    echo "const SIGN_IN32: &str = \"$(xxd -p in32.bin | tr -d '\n')\";"
    echo "const SIGN_OUT32: &str = \"$(sig in32.bin)\";"
} >"$here/rsa_sign_hash.rs"

echo "wrote $out and $here/rsa_sign_hash.rs"
