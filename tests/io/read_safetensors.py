"""Independent safetensors reader/writer (json + numpy only) for cross-checking llm's C++ code.

  read_safetensors.py read FILE    parses FILE, checks HF's layout rules, prints one JSON object:
      {"header_len": N, "metadata": {...},
       "tensors": [{"name", "dtype", "shape", "data_offsets", "values": [flat, C order]}, ...]}
      tensors in header order; float values as numbers (non-finite ones as "nan"/"inf"/"-inf"),
      integers as integers. Exits 1 with a message on stderr if the file breaks a rule.
  read_safetensors.py write FILE   writes a fixed file the way HF's serializer lays it out (tensors
      sorted by descending dtype alignment, then name; header padded with spaces to a multiple of
      8) holding the values listed in FIXTURE, for the C++ reader to check.
"""

import json
import math
import struct
import sys

import numpy as np

STORAGE = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "u1",
}
# HF's Dtype enum order (increasing alignment); its serializer sorts by this, descending.
HF_ORDER = ["BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "F64", "I64"]


def die(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(1)


def to_json_number(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        die("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        die("header length past end of file")
    header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=lambda kv: kv)
    data = raw[8 + n:]
    out = {"header_len": n, "metadata": {}, "tensors": []}
    spans = []
    for name, info in header:
        if name == "__metadata__":
            out["metadata"] = dict(info)
            continue
        info = dict(info)
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        arr = np.frombuffer(data[begin:end], dtype=np.dtype(STORAGE[dtype]))
        if arr.size != count or end - begin != arr.nbytes:
            die("tensor %s: %d bytes for shape %s %s" % (name, end - begin, shape, dtype))
        if dtype == "BF16":  # numpy has no bfloat16: widen the bits to float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if arr.dtype.kind == "f":
            values = [to_json_number(float(v)) for v in arr]
        else:
            values = [int(v) for v in arr]
        spans.append((begin, end, name))
        out["tensors"].append({"name": name, "dtype": dtype, "shape": shape,
                               "data_offsets": [begin, end], "values": values})
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            die("tensor %s starts at %d, expected %d (gap or overlap)" % (name, begin, pos))
        pos = end
    if pos != len(data):
        die("data buffer has %d bytes, tensors cover %d" % (len(data), pos))
    print(json.dumps(out))


# name -> (dtype, shape, values); the C++ test repeats these values.
FIXTURE = {
    "f64": ("F64", [2, 3], np.arange(6, dtype=np.float64) * 0.5 - 1.25),
    "i64": ("I64", [4], np.array([-3, 0, 7, 2**31 - 1], dtype=np.int64)),
    "bf16": ("BF16", [3], np.array([0x3F80, 0xC020, 0x3E20], dtype=np.uint16)),  # 1.0, -2.5, 0.15625
    "f16": ("F16", [2, 2], np.array([0.5, -1.0, 65504.0, 2.0**-24], dtype=np.float16)),
    "scalar": ("F32", [], np.array([3.5], dtype=np.float32)),
    "empty": ("F32", [0, 4], np.zeros(0, dtype=np.float32)),
    "u8": ("U8", [5], np.array([0, 1, 127, 128, 255], dtype=np.uint8)),
    "i32": ("I32", [2], np.array([-2147483648, 2147483647], dtype=np.int32)),
}


def write(path):
    names = sorted(FIXTURE, key=lambda k: (-HF_ORDER.index(FIXTURE[k][0]), k))
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in names:
        dtype, shape, values = FIXTURE[name]
        blob = values.astype(np.dtype(STORAGE[dtype])).tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("read", "write"):
        die("usage: read_safetensors.py read|write FILE")
    (read if sys.argv[1] == "read" else write)(sys.argv[2])
