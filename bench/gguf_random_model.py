# An HF directory with random weights (N(0, 0.02), norms 1) of a model section's shape and the
# Qwen2.5 tokenizer, for bench/gguf_throughput.sh to export: speed does not depend on the values.
#   /usr/bin/python3 bench/gguf_random_model.py CONFIG TOKENIZER_DIR OUT_DIR
import json, os, shutil, struct, sys

import torch

cfg_path, tok_dir, out = sys.argv[1:4]
m = json.load(open(cfg_path))["model"]
V, C, I, L = m["vocab_size"], m["hidden_size"], m["intermediate_size"], m["num_hidden_layers"]
H, KV = m["num_attention_heads"], m["num_key_value_heads"]
D = C // H
os.makedirs(out, exist_ok=True)
hf = dict(m, architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu", torch_dtype="bfloat16")
json.dump(hf, open(os.path.join(out, "config.json"), "w"))
shapes = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
for l in range(L):
    p = f"model.layers.{l}."
    shapes.update({p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
                   p + "self_attn.q_proj.weight": (H * D, C), p + "self_attn.k_proj.weight": (KV * D, C),
                   p + "self_attn.v_proj.weight": (KV * D, C), p + "self_attn.q_proj.bias": (H * D,),
                   p + "self_attn.k_proj.bias": (KV * D,), p + "self_attn.v_proj.bias": (KV * D,),
                   p + "self_attn.o_proj.weight": (C, H * D), p + "mlp.gate_proj.weight": (I, C),
                   p + "mlp.up_proj.weight": (I, C), p + "mlp.down_proj.weight": (C, I)})
if not m.get("tie_word_embeddings", True):
    shapes["lm_head.weight"] = (V, C)
torch.manual_seed(0)
header, offset, tensors = {}, 0, []
for name, shape in shapes.items():
    t = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape) * 0.02
    b = t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
    header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + len(b)]}
    offset += len(b)
    tensors.append(b)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in tensors:
        f.write(b)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(tok_dir, name), out)
