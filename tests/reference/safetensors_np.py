"""Minimal safetensors reader/writer in Python + numpy (no `safetensors` package).

File format:
  8 bytes   little-endian u64 N (header size)
  N bytes   UTF-8 JSON: {name: {"dtype": str, "shape": [int...], "data_offsets": [begin, end]},
                         "__metadata__": {str: str}}   (the metadata entry is optional)
  rest      the data buffer; offsets are relative to its start (= 8 + N).
The writer pads the header with spaces to a multiple of 8 and lays tensors out contiguously in
insertion order.

dtypes: F32, F16, BF16, F64, I32, I64 (little-endian).
  read  BF16: uint16 << 16 viewed as float32 (exact).
  write BF16: float32 rounded to nearest even (NaN stays NaN).

API:
  load(path) -> (tensors {name: np.ndarray}, metadata {str: str})   BF16 comes back as float32
  load_header(path) -> (entries {name: {"dtype", "shape", "data_offsets"}}, metadata)
  save(path, tensors, metadata=None, dtypes=None)
      tensors: {name: array-like}; dtypes: {name: "F32"|"F16"|"BF16"|"F64"|"I32"|"I64"} overrides the
      dtype implied by the array's numpy dtype (e.g. store a float32 array as BF16).
  SafetensorsError is raised for any malformed file.
"""

import json
import struct

import numpy as np

__all__ = ["SafetensorsError", "load", "load_header", "save", "f32_to_bf16_bits", "bf16_bits_to_f32"]

# safetensors dtype -> little-endian numpy storage dtype
_STORAGE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}

_FROM_NUMPY = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
}

_MAX_HEADER = 100 * 1024 * 1024  # same limit as the Rust implementation


class SafetensorsError(ValueError):
    pass


def bf16_bits_to_f32(bits):
    """uint16 array of bf16 bit patterns -> float32 array (exact)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bf16 bit patterns, round to nearest even; NaN stays a (quiet) NaN."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = x.view(np.uint32).astype(np.uint64)
    lsb = (u >> np.uint64(16)) & np.uint64(1)
    rounded = ((u + np.uint64(0x7FFF) + lsb) >> np.uint64(16)).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        quiet = ((u >> np.uint64(16)) | np.uint64(0x0040)).astype(np.uint16)
        rounded = np.where(nan, quiet, rounded)
    return rounded.astype(np.uint16)


def _parse_header(raw, data_len, path):
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid UTF-8 JSON: {e}")
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise SafetensorsError(f"{path}: entry {name!r} is not an object")
        dt = info.get("dtype")
        shape = info.get("shape")
        offs = info.get("data_offsets")
        if dt not in _STORAGE:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dt!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise SafetensorsError(f"{path}: tensor {name!r} has invalid shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise SafetensorsError(f"{path}: tensor {name!r} has invalid data_offsets {offs!r}")
        b, e = offs
        if not (0 <= b <= e <= data_len):
            raise SafetensorsError(
                f"{path}: tensor {name!r} data_offsets [{b}, {e}] out of range (data size {data_len})")
        n = 1
        for d in shape:
            n *= d
        need = n * _STORAGE[dt].itemsize
        if e - b != need:
            raise SafetensorsError(
                f"{path}: tensor {name!r} has {e - b} bytes, shape {shape} {dt} needs {need}")
        spans.append((b, e, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: tensors {n0!r} and {n1!r} overlap")
    return header, metadata


def _read_raw(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: file too short ({len(blob)} bytes) for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER or 8 + n > len(blob):
        raise SafetensorsError(f"{path}: header size {n} exceeds file size {len(blob)}")
    header, metadata = _parse_header(blob[8:8 + n], len(blob) - 8 - n, path)
    return blob, 8 + n, header, metadata


def load_header(path):
    """Return ({name: {"dtype", "shape", "data_offsets"}}, metadata) after validating the file."""
    _, _, header, metadata = _read_raw(path)
    return header, metadata


def load(path):
    """Return ({name: np.ndarray}, metadata). BF16 tensors are returned as float32."""
    blob, base, header, metadata = _read_raw(path)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        st = _STORAGE[info["dtype"]]
        arr = np.frombuffer(blob, dtype=st, count=(e - b) // st.itemsize, offset=base + b)
        arr = arr.reshape(info["shape"])
        if info["dtype"] == "BF16":
            arr = bf16_bits_to_f32(arr)
        else:
            arr = arr.astype(st.newbyteorder("="), copy=True)
        out[name] = arr
    return out, metadata


def save(path, tensors, metadata=None, dtypes=None):
    """Write tensors ({name: array}) with optional metadata ({str: str}) and per-name dtype overrides."""
    dtypes = dtypes or {}
    header = {}
    chunks = []
    offset = 0
    if metadata:
        md = {}
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError(f"metadata must map str to str, got {k!r}: {v!r}")
            md[k] = v
        header["__metadata__"] = md
    for name, value in tensors.items():
        if name == "__metadata__":
            raise SafetensorsError("'__metadata__' is not a valid tensor name")
        arr = np.asarray(value)
        dt = dtypes.get(name)
        if dt is None:
            if arr.dtype not in _FROM_NUMPY:
                raise SafetensorsError(f"tensor {name!r}: numpy dtype {arr.dtype} has no safetensors dtype")
            dt = _FROM_NUMPY[arr.dtype]
        if dt not in _STORAGE:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {dt!r}")
        if dt == "BF16":
            data = f32_to_bf16_bits(arr).astype("<u2")
        else:
            data = np.ascontiguousarray(arr.astype(_STORAGE[dt]))
        raw = data.tobytes(order="C")
        header[name] = {"dtype": dt, "shape": [int(d) for d in arr.shape],
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)
