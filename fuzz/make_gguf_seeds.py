#!/usr/bin/env python3
"""Writes the GGUF fuzz target's seeds (fuzz/corpus/gguf/) with our exporter, `llmtrain export`.

Two random 1-layer HF Qwen2 directories (hidden 32, GQA 2:1, written here with the standard
library): one with a byte-level BPE tokenizer.json (the tokenizer_json target's fixture, its
added tokens renumbered right after the vocabulary: a "gpt2" GGUF vocabulary), one with a
384-piece sentencepiece model trained by spm_train on Debian's fortunes (a "llama" vocabulary).
Each is exported at a few types; the files stay under libFuzzer's -max_len of fuzz/run.sh (64 KiB).

  python3 fuzz/make_gguf_seeds.py build/llmtrain fuzz/corpus/gguf
"""
import array
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write_model(d, vocab, hidden=32, inter=64, heads=2, kv=1):
    os.makedirs(d, exist_ok=True)
    hd = hidden // heads
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab,
           "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": 1,
           "num_attention_heads": heads, "num_key_value_heads": kv, "max_position_embeddings": 256,
           "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
           "torch_dtype": "float32", "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 1}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    p = "model.layers.0."
    shapes = {"model.embed_tokens.weight": [vocab, hidden], "model.norm.weight": [hidden],
              p + "input_layernorm.weight": [hidden], p + "post_attention_layernorm.weight": [hidden],
              p + "self_attn.q_proj.weight": [hidden, hidden], p + "self_attn.q_proj.bias": [hidden],
              p + "self_attn.k_proj.weight": [kv * hd, hidden], p + "self_attn.k_proj.bias": [kv * hd],
              p + "self_attn.v_proj.weight": [kv * hd, hidden], p + "self_attn.v_proj.bias": [kv * hd],
              p + "self_attn.o_proj.weight": [hidden, hidden], p + "mlp.gate_proj.weight": [inter, hidden],
              p + "mlp.up_proj.weight": [inter, hidden], p + "mlp.down_proj.weight": [hidden, inter]}
    rnd = random.Random(7)
    header, data = {}, b""
    for name, shape in sorted(shapes.items()):
        n = 1
        for x in shape:
            n *= x
        base = 1.0 if name.endswith("norm.weight") else 0.0
        b = array.array("f", [base + rnd.gauss(0, 0.05) for _ in range(n)]).tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def main():
    llmtrain, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        bpe = os.path.join(tmp, "bpe")
        with open(os.path.join(HERE, "corpus/tokenizer_json/tiny_bpe.json")) as f:
            tok = json.load(f)
        first = len(tok["model"]["vocab"])
        for i, t in enumerate(tok["added_tokens"]):
            t["id"] = first + i
        write_model(bpe, first + len(tok["added_tokens"]) + 1)
        with open(os.path.join(bpe, "tokenizer.json"), "w") as f:
            json.dump(tok, f, ensure_ascii=False)

        sp = os.path.join(tmp, "sp")
        write_model(sp, 384)
        text = os.path.join(tmp, "text.txt")
        with open(text, "wb") as f:
            for name in ("fortunes", "literature", "science"):
                with open(os.path.join("/usr/share/games/fortunes", name), "rb") as g:
                    f.write(g.read())
        subprocess.run(["spm_train", f"--input={text}", f"--model_prefix={sp}/tokenizer", "--vocab_size=384",
                        "--model_type=bpe", "--byte_fallback=true", "--character_coverage=0.995",
                        "--user_defined_symbols=<|endoftext|>,<|im_start|>,<|im_end|>"],
                       check=True, capture_output=True)

        for model, name, types in ((bpe, "qwen_bpe", ("f16", "q8_0", "q4_k_m")), (sp, "llama_sp", ("q8_0", "q4_0"))):
            for t in types:
                subprocess.run([llmtrain, "export", "--model", model, "--to", "gguf", "--type", t,
                                "--out", os.path.join(out, f"{name}_{t}.gguf")], check=True)


if __name__ == "__main__":
    main()
