#!/usr/bin/python3
"""PyTorch 1.13 prefill baseline: one forward pass over a prompt with the reference Qwen2 model.

  python3 bench/torch_prefill.py --config FILE --tokens N --threads T [--repeats R]

FILE: an engine config (its "model" section) or HF config keys at the top level. Float32 weights
with Qwen-style init, random token ids, torch.no_grad(), the median of R timed passes after one
warm-up; logits of the last position only. Prints one JSON line {"prefill_tokens_per_s": ..., "seconds": ...}.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from qwen2_ref import Qwen2Config, Qwen2ForCausalLM  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(a.config) as f:
        d = json.load(f)
    cfg = Qwen2Config.from_dict(d["model"] if isinstance(d.get("model"), dict) else d)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).float().init_weights()
    ids = torch.randint(0, cfg.vocab_size, (1, a.tokens))

    def prefill():
        # The prompt's hidden states, then the logits of its last position only (what generation
        # needs; computing [T, V] logits would handicap PyTorch).
        h = model.model(ids)
        return torch.nn.functional.linear(h[:, -1:], model.output_weight())

    times = []
    with torch.no_grad():
        prefill()
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            prefill()
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    print(json.dumps({"prefill_tokens_per_s": a.tokens / s, "seconds": s, "threads": a.threads}))


if __name__ == "__main__":
    main()
