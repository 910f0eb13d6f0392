#!/usr/bin/python3
"""Independent check of a directory written by `llmtrain export --to hf` (tests/gguf/hf_export_test.cpp).

  python3 tests/gguf/hf_export_check.py --dir OUTDIR --dtype bf16|f16|f32 --ids 1,2,3 --out LOGITS
                                        [--max-shard-bytes N]

Reads the directory as transformers would (no transformers here: safetensors headers with json +
numpy, config.json, the tokenizer files) and checks its layout against what HF writes for
Qwen2ForCausalLM; then runs the independent PyTorch Qwen2 (tests/reference/qwen2_ref.py, float64)
on the ids and writes the logits [T, V] as little-endian float64 to LOGITS. Prints one JSON line
{"ok": true, "shards": N, "tensors": N} or {"ok": false, "errors": [...]} (exit 1).
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import qwen2_ref  # noqa: E402

# config.json keys Qwen2.5's repositories ship (transformers 4.43 Qwen2Config.to_dict()).
CONFIG_KEYS = ["architectures", "attention_dropout", "bos_token_id", "eos_token_id", "hidden_act", "hidden_size",
               "initializer_range", "intermediate_size", "max_position_embeddings", "max_window_layers", "model_type",
               "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "rms_norm_eps", "rope_theta",
               "sliding_window", "tie_word_embeddings", "torch_dtype", "transformers_version", "use_cache",
               "use_sliding_window", "vocab_size"]
TORCH_DTYPE = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}
ST_DTYPE = {"bf16": "BF16", "f16": "F16", "f32": "F32"}
ST_SIZE = {"BF16": 2, "F16": 2, "F32": 4}


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h, n


def expected_names(cfg):
    names = {"model.embed_tokens.weight", "model.norm.weight"}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for s in ["input_layernorm.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight",
                  "mlp.up_proj.weight", "mlp.down_proj.weight", "self_attn.o_proj.weight"]:
            names.add(p + s)
        for s in ["q_proj", "k_proj", "v_proj"]:
            names.add(p + f"self_attn.{s}.weight")
            names.add(p + f"self_attn.{s}.bias")
    if not cfg["tie_word_embeddings"]:
        names.add("lm_head.weight")
    return names


def check(d, dtype, max_shard, errors):
    def need(cond, msg):
        if not cond:
            errors.append(msg)
        return cond

    cfg = json.load(open(os.path.join(d, "config.json")))
    need(sorted(cfg) == sorted(CONFIG_KEYS), f"config.json keys {sorted(cfg)} are not Qwen2.5's {CONFIG_KEYS}")
    need(cfg.get("architectures") == ["Qwen2ForCausalLM"], "config.json: architectures")
    need(cfg.get("model_type") == "qwen2", "config.json: model_type")
    need(cfg.get("torch_dtype") == TORCH_DTYPE[dtype], f"config.json: torch_dtype {cfg.get('torch_dtype')}")

    # weights: one file, or shards named as save_pretrained names them with a consistent index
    files = sorted(os.listdir(d))
    shards = [f for f in files if f.endswith(".safetensors")]
    tensors = {}
    if shards == ["model.safetensors"]:
        need("model.safetensors.index.json" not in files, "an index beside a single model.safetensors")
        tensors = {k: ("model.safetensors", v) for k, v in header(os.path.join(d, shards[0]))[0].items()}
    else:
        m = len(shards)
        need(shards == [f"model-{i:05d}-of-{m:05d}.safetensors" for i in range(1, m + 1)], f"shard names {shards}")
        index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
        need(sorted(set(index["weight_map"].values())) == shards, "the index names other files than the shards")
        total = 0
        for s in shards:
            h, _ = header(os.path.join(d, s))
            size = 0
            for k, v in h.items():
                tensors[k] = (s, v)
                need(index["weight_map"].get(k) == s, f"{k} is in {s} but the index says {index['weight_map'].get(k)}")
                size += v["data_offsets"][1] - v["data_offsets"][0]
            need(size <= max_shard or len(h) == 1, f"{s}: {size} bytes of tensors, above the {max_shard} limit")
            total += size
        need(index["metadata"]["total_size"] == total, f"total_size {index['metadata']['total_size']} != {total}")
    need(set(tensors) == expected_names(cfg), f"tensor names {sorted(set(tensors) ^ expected_names(cfg))} differ")
    for k, (s, v) in tensors.items():
        need(v["dtype"] == ST_DTYPE[dtype], f"{k}: dtype {v['dtype']}")
        need(v["data_offsets"][1] - v["data_offsets"][0] == int(np.prod(v["shape"])) * ST_SIZE[ST_DTYPE[dtype]],
             f"{k}: byte count")

    gen = json.load(open(os.path.join(d, "generation_config.json")))
    need("eos_token_id" in gen and "bos_token_id" in gen, "generation_config.json: bos/eos ids")
    for where, j in (("config.json", cfg), ("generation_config.json", gen)):
        for k in ("bos_token_id", "eos_token_id", "pad_token_id"):
            ids = j.get(k, [])
            for i in ids if isinstance(ids, list) else [ids]:
                need(0 <= i < cfg["vocab_size"], f"{where}: {k} {i} is outside the vocabulary")

    tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
    if "tokenizer.json" in files:
        tj = json.load(open(os.path.join(d, "tokenizer.json")))
        vocab = json.load(open(os.path.join(d, "vocab.json")))
        need(vocab == tj["model"]["vocab"], "vocab.json differs from tokenizer.json's model.vocab")
        lines = open(os.path.join(d, "merges.txt"), encoding="utf-8").read().split("\n")
        need(lines[0].startswith("#version"), "merges.txt: no #version line")
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
        need([x for x in lines[1:] if x] == merges, "merges.txt differs from tokenizer.json's merges")
        added = {str(a["id"]): a["content"] for a in tj.get("added_tokens", [])}
        need({k: v["content"] for k, v in tc.get("added_tokens_decoder", {}).items()} == added,
             "tokenizer_config.json: added_tokens_decoder differs from tokenizer.json's added_tokens")
        has_chatml = "<|im_start|>" in added.values()
    else:
        need("tokenizer.model" in files, "neither tokenizer.json nor tokenizer.model")
        has_chatml = b"<|im_start|>" in open(os.path.join(d, "tokenizer.model"), "rb").read()
        contents = [a["content"] for a in tc.get("added_tokens_decoder", {}).values()]
        need(tc.get("unk_token") == "<unk>" and "<unk>" in contents and "<|endoftext|>" in contents,
             f"tokenizer_config.json: special pieces {contents}, unk_token {tc.get('unk_token')}")
    if has_chatml:
        need("<|im_start|>" in tc.get("chat_template", ""), "tokenizer_config.json: no ChatML chat_template")
    return cfg, len(shards), len(tensors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--dtype", required=True, choices=sorted(TORCH_DTYPE))
    ap.add_argument("--ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-shard-bytes", type=int, default=5_000_000_000)
    a = ap.parse_args()
    torch.set_num_threads(2)
    errors = []
    _, shards, n = check(a.dir, a.dtype, a.max_shard_bytes, errors)
    if errors:
        print(json.dumps({"ok": False, "errors": errors}))
        return 1
    model = qwen2_ref.load_model(a.dir, torch.float64)
    ids = torch.tensor([[int(x) for x in a.ids.split(",")]], dtype=torch.long)
    with torch.no_grad():
        logits = model(ids)[0]  # [T, V]
    logits.numpy().astype("<f8").tofile(a.out)
    print(json.dumps({"ok": True, "shards": shards, "tensors": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
