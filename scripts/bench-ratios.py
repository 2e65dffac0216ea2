#!/usr/bin/env python3
"""Summarise the criterion results of benches/{throughput,random_access,seal_small}.rs.

Usage:
    scripts/bench-ratios.py [DIR] [--stat median|mean|typical]

DIR is a cargo target directory or its `criterion/` subdirectory. Without it:
$CARGO_TARGET_DIR/criterion, else target/criterion of this repository.

Reads every `**/new/benchmark.json` + `estimates.json` (the latest run of each
benchmark) and prints markdown tables: streaming encrypt/decrypt throughput as
a fraction of raw AES-256-GCM measured in the same run, the random 4 KiB
read_at time and the 1 KiB one-shot seal time, with the targets
(>= 85 % of raw at >= 1 MiB; seal of 1 KiB <= 3 us).

`--stat` picks the criterion estimate: `median` (default; robust on a busy
machine), `mean`, or `typical` (criterion's headline: slope, else mean).
Stdlib only.
"""

import json
import os
import sys

RATIO_TARGET = 0.85
RATIO_MIN_BYTES = 1 << 20
SEAL_TARGET_US = 3.0


def criterion_dir(arg):
    if arg:
        cand = os.path.join(arg, "criterion")
        return cand if os.path.isdir(cand) else arg
    target = os.environ.get("CARGO_TARGET_DIR")
    if not target:
        target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target")
    return os.path.join(target, "criterion")


def load(root, stat):
    """{(group, function, value): (ns, bytes or None)}"""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        if "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bid = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        if stat == "typical":
            e = est.get("slope") or est["mean"]
        else:
            e = est[stat]
        tp = bid.get("throughput") or {}
        nbytes = tp.get("Bytes") or tp.get("BytesDecimal")
        key = (bid.get("group_id"), bid.get("function_id"), bid.get("value_str"))
        out[key] = (float(e["point_estimate"]), nbytes)
    return out


def fmt_time(ns):
    if ns is None:
        return "n/a"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_rate(ns, nbytes):
    if ns is None or not nbytes:
        return "n/a"
    return f"{nbytes / ns * 1e9 / (1 << 30):.2f} GiB/s"


def fmt_size(n):
    if n >= 1 << 20:
        return f"{n >> 20} MiB"
    return f"{n >> 10} KiB"


def ratio(num_ns, den_ns):
    # throughput ratio = raw time / streaming time
    if num_ns is None or den_ns is None:
        return None
    return den_ns / num_ns


def fmt_ratio(r, nbytes):
    if r is None:
        return "n/a"
    s = f"{r * 100:.1f} %"
    if nbytes >= RATIO_MIN_BYTES:
        s += " ✅" if r >= RATIO_TARGET else " ❌"
    return s


def main(argv):
    stat = "median"
    args = []
    it = iter(argv[1:])
    for a in it:
        if a == "--stat":
            stat = next(it, "median")
        elif a.startswith("--stat="):
            stat = a.split("=", 1)[1]
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            args.append(a)
    if stat not in ("median", "mean", "typical"):
        print(f"unknown --stat {stat}", file=sys.stderr)
        return 2
    root = criterion_dir(args[0] if args else None)
    if not os.path.isdir(root):
        print(f"no criterion results under {root}; run `cargo bench` first", file=sys.stderr)
        return 1
    res = load(root, stat)
    if not res:
        print(f"no benchmark results under {root}", file=sys.stderr)
        return 1

    def get(group, func, value=None):
        r = res.get((group, func, value))
        return r[0] if r else None

    # ---- throughput ----
    sizes = sorted(
        {(v, b) for (g, f, v), (_, b) in res.items() if g == "throughput" and f == "raw_seal" and b},
        key=lambda x: x[1],
    )
    print(f"Criterion results in `{os.path.normpath(root)}` (estimate: {stat}).")
    print()
    if sizes:
        print("| object | raw GCM seal | encrypt | encrypt / raw | raw GCM open | decrypt | decrypt / raw |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for value, nbytes in sizes:
            rs, enc = get("throughput", "raw_seal", value), get("throughput", "encrypt", value)
            ro, dec = get("throughput", "raw_open", value), get("throughput", "decrypt", value)
            print(
                f"| {fmt_size(nbytes)} | {fmt_rate(rs, nbytes)} | {fmt_rate(enc, nbytes)} "
                f"| {fmt_ratio(ratio(enc, rs), nbytes)} | {fmt_rate(ro, nbytes)} | {fmt_rate(dec, nbytes)} "
                f"| {fmt_ratio(ratio(dec, ro), nbytes)} |"
            )
        print()
        print(f"Target: encrypt and decrypt ≥ {RATIO_TARGET:.0%} of raw AES-256-GCM at ≥ 1 MiB.")
        print()
        if any(get("throughput", "raw_seal_to", v) for v, _ in sizes):
            print("Against raw AES-256-GCM **out of place** (one buffer into another, the")
            print("memory traffic of any `Write`/`Read` adapter):")
            print()
            print("| object | raw seal_to | encrypt / raw seal_to | raw open_to | decrypt / raw open_to |")
            print("|---:|---:|---:|---:|---:|")
            for value, nbytes in sizes:
                st, enc = get("throughput", "raw_seal_to", value), get("throughput", "encrypt", value)
                ot, dec = get("throughput", "raw_open_to", value), get("throughput", "decrypt", value)
                print(
                    f"| {fmt_size(nbytes)} | {fmt_rate(st, nbytes)} | {fmt_ratio(ratio(enc, st), nbytes)} "
                    f"| {fmt_rate(ot, nbytes)} | {fmt_ratio(ratio(dec, ot), nbytes)} |"
                )
            print()

    # ---- point costs ----
    rows = []
    ra = get("random_access", "read_at_4KiB_in_64MiB")
    if ra is not None:
        rows.append(("random 4 KiB `read_at` in a 64 MiB envelope", ra, ""))
        for name, label in (("raw_open_4KiB", "4 KiB"), ("raw_open_16KiB", "16 KiB (one chunk)")):
            t = get("random_access", name)
            if t is not None:
                rows.append((f"↳ reference: raw GCM open of {label}", t, f"read_at = {ra / t:.2f}×"))
    seal = get("seal_small", "seal_1KiB")
    if seal is not None:
        verdict = "✅" if seal / 1e3 <= SEAL_TARGET_US else "❌"
        rows.append(("**seal 1 KiB** (`Encryptor::new` + `seal`, local A256KW)", seal,
                     f"target ≤ {SEAL_TARGET_US:g} µs {verdict}"))
        for name, label in (
            ("encryptor_new", "`Encryptor::new` alone"),
            ("seal_only_1KiB", "`seal(1 KiB)` on a ready `Encryptor`"),
            ("datakey_generate", "`DataKey::generate` (OS CSPRNG)"),
            ("datakey_wrap_a256kw", "A256KW `wrap_key`"),
            ("chunk_key_derive", "chunk-key HKDF-SHA-512 (76 B)"),
            ("raw_gcm_seal_1KiB_with_key_setup", "raw GCM seal 1 KiB incl. key schedule"),
            ("raw_gcm_seal_1KiB", "raw GCM seal 1 KiB, key expanded"),
        ):
            t = get("seal_small", name)
            if t is not None:
                rows.append((f"↳ {label}", t, f"{t / seal:.0%} of seal"))
    if rows:
        print("| per-operation cost | time | note |")
        print("|---|---:|---|")
        for label, ns, note in rows:
            print(f"| {label} | {fmt_time(ns)} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
