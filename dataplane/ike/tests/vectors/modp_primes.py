#!/usr/bin/env python3
# Regenerates the MODP primes of dh.rs from their defining formulas and checks that each is a
# safe prime. Usage: python3 modp_primes.py (prints the leading/trailing words and the checks).
# MODP primes from their defining formulas (RFC 2409 §6.2, RFC 3526):
# p = 2^n - 2^(n-64) - 1 + 2^64 * ( floor(2^(n-130) * pi) + k )
import sys
def pi_fixed(bits):
    # Machin: pi = 16 atan(1/5) - 4 atan(1/239), fixed point with guard bits
    guard = 64
    one = 1 << (bits + guard)
    def atan_inv(x):
        total = term = one // x
        x2 = x * x; n = 1; sign = -1
        while term:
            term //= x2
            total += sign * (term // (2 * n + 1))
            sign = -sign; n += 1
        return total
    return (16 * atan_inv(5) - 4 * atan_inv(239)) >> guard
groups = {2: (1024, 129093), 5: (1536, 741804), 14: (2048, 124476), 15: (3072, 1690314), 16: (4096, 240904)}
out = {}
for g, (n, k) in groups.items():
    p = 2**n - 2**(n-64) - 1 + 2**64 * (pi_fixed(n-130) + k)
    out[g] = p
    print(g, n, hex(p)[:20], hex(p)[-16:])
import random
def mr(n, rounds=20):
    if n % 2 == 0: return False
    d, s = n - 1, 0
    while d % 2 == 0: d //= 2; s += 1
    for _ in range(rounds):
        a = random.randrange(2, n - 2)
        x = pow(a, d, n)
        if x in (1, n - 1): continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1: break
        else: return False
    return True
for g, p in out.items():
    print(g, "prime", mr(p), "safe", mr((p - 1) // 2), "bits", p.bit_length())
import json
json.dump({str(g): format(p, 'x') for g, p in out.items()}, sys.stdout if len(sys.argv) < 2 else open(sys.argv[1], 'w'))
