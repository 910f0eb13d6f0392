#!/usr/bin/env python3
"""An independent GGUF v3 reader (struct + numpy, written from the format description, sharing no
code with the C++ writer). Prints one JSON object: the header, every key/value, every tensor's
info, and each tensor's values decoded to float (f32, f16, bf16, q8_0, q4_0), or null for the
types it does not decode. Exits non-zero with a message on any malformation: bad magic or
version, a truncated file, offsets that are not aligned or overlap, data past the end."""
import json
import struct
import sys

import numpy as np

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
TYPES = {0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 6: ("q5_0", 32, 22), 8: ("q8_0", 32, 34),
         12: ("q4_K", 256, 144), 14: ("q6_K", 256, 210), 30: ("bf16", 1, 2)}


class Reader:
    def __init__(self, data):
        self.b = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.b):
            sys.exit(f"truncated at byte {self.pos}: {n} more bytes needed")
        s = self.b[self.pos:self.pos + n]
        self.pos += n
        return s

    def scalar(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.scalar("<Q")
        return self.take(n).decode("utf-8")

    def value(self, t):
        if t in SCALARS:
            v = self.scalar(SCALARS[t])
            return bool(v) if t == 7 else v
        if t == 8:
            return self.string()
        if t == 9:
            et = self.scalar("<I")
            n = self.scalar("<Q")
            return {"array_type": et, "values": [self.value(et) for _ in range(n)]}
        sys.exit(f"unknown value type {t} at byte {self.pos}")


def decode(tname, raw, n):
    if tname == "f32":
        return np.frombuffer(raw, "<f4").astype(np.float64)
    if tname == "f16":
        return np.frombuffer(raw, "<f2").astype(np.float64)
    if tname == "bf16":
        u = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    if tname == "q8_0":
        blocks = np.frombuffer(raw, np.uint8).reshape(-1, 34)
        d = blocks[:, :2].copy().view("<f2").astype(np.float64)
        q = blocks[:, 2:].copy().view(np.int8).astype(np.float64)
        return (q * d).reshape(-1)
    if tname == "q4_0":
        blocks = np.frombuffer(raw, np.uint8).reshape(-1, 18)
        d = blocks[:, :2].copy().view("<f2").astype(np.float64)
        qs = blocks[:, 2:].astype(np.int64)
        lo = (qs & 0x0F) - 8
        hi = (qs >> 4) - 8
        return (np.concatenate([lo, hi], axis=1) * d).reshape(-1)
    return None


def main():
    path = sys.argv[1]
    b = open(path, "rb").read()
    r = Reader(b)
    if r.take(4) != b"GGUF":
        sys.exit("bad magic")
    version = r.scalar("<I")
    if version != 3:
        sys.exit(f"version {version}")
    n_tensors = r.scalar("<Q")
    n_kv = r.scalar("<Q")
    kv = {}
    types = {}
    for _ in range(n_kv):
        k = r.string()
        t = r.scalar("<I")
        if k in kv:
            sys.exit(f"duplicate key {k}")
        kv[k] = r.value(t)
        types[k] = t
    align = kv.get("general.alignment", 32)
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.scalar("<I")
        dims = [r.scalar("<Q") for _ in range(nd)]
        t = r.scalar("<I")
        off = r.scalar("<Q")
        infos.append((name, dims, t, off))
    data_start = (r.pos + align - 1) // align * align
    if any(x != 0 for x in b[r.pos:data_start]):
        sys.exit("non-zero padding before the data")
    tensors = []
    end_prev = 0
    for name, dims, t, off in sorted(infos, key=lambda i: i[3]):
        if t not in TYPES:
            sys.exit(f"{name}: unknown type {t}")
        tname, blk, bsize = TYPES[t]
        n = int(np.prod(dims))
        if dims[0] % blk:
            sys.exit(f"{name}: ne0 {dims[0]} not a multiple of {blk}")
        nbytes = n // blk * bsize
        if off % align or off < end_prev:
            sys.exit(f"{name}: offset {off} unaligned or overlapping")
        end_prev = off + nbytes
        if data_start + end_prev > len(b):
            sys.exit(f"{name}: data past the end of the file")
        raw = b[data_start + off:data_start + off + nbytes]
        vals = decode(tname, raw, n)
        tensors.append({"name": name, "dims": dims, "type": tname, "offset": off, "bytes": nbytes,
                        "values": None if vals is None else [float(v) for v in vals]})
    order = {i[0]: k for k, i in enumerate(infos)}
    tensors.sort(key=lambda t: order[t["name"]])
    print(json.dumps({"version": version, "n_tensors": n_tensors, "n_kv": n_kv, "kv": kv, "kv_types": types,
                      "data_start": data_start, "file_size": len(b), "tensors": tensors}))


if __name__ == "__main__":
    main()
