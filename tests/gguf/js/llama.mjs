// llama.cpp (node-llama-cpp's prebuilt CPU binaries) as an independent client of our GGUF files.
// Reads one JSON request on stdin and prints one JSON answer on stdout:
//   {"model": FILE, "ids": [...], "steps": N, "vocab": V}
//       -> {"logits": [base64 of V little-endian f32 per position of ids, then per greedy step],
//           "greedy": [N ids]}   (greedy: llama.cpp's argmax fed back, N times)
//   {"model": FILE, "texts": ["...", ...]}      -> {"ids": [[...], ...]}  (special tokens parsed)
// Offline: build "never" uses the binaries npm installed; nothing is downloaded.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const input = await new Promise((resolve) => {
  let s = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => (s += d));
  process.stdin.on("end", () => resolve(s));
});
const req = JSON.parse(input);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: 2});
const out = {};

if (req.texts) {
  const model = await llama.loadModel({modelPath: req.model, gpuLayers: 0, vocabOnly: true});
  out.ids = req.texts.map((t) => Array.from(model.tokenize(t, true)));
  await model.dispose();
} else {
  const model = await llama.loadModel({modelPath: req.model, gpuLayers: 0});
  const context = await model.createContext({
    contextSize: req.context ?? 128,
    batchSize: req.context ?? 128,
    threads: 2,
    sequences: 1,
    // Full precision everywhere llama.cpp would otherwise round: an f32 KV cache (its default is
    // f16) and no flash attention, so an f32 model computes the function ours does.
    flashAttention: req.flash ?? false,
    experimentalKvCacheKeyType: req.kv_type ?? "F32",
    experimentalKvCacheValueType: req.kv_type ?? "F32",
  });
  const seq = context.getSequence();
  const dense = (m) => {
    let n = 0;
    for (const k of m.keys()) n = Math.max(n, k + 1);
    const v = new Float32Array(req.vocab ?? n).fill(NaN);
    for (const [k, x] of m) v[k] = x;
    return v;
  };
  const argmax = (v) => v.reduce((b, x, i) => (x > v[b] ? i : b), 0);
  const rows = [];
  out.greedy = [];
  const items = req.ids.map((t) => [t, {generateNext: {logits: true}}]);
  let res = await seq.controlledEvaluate(items);
  for (const r of res) rows.push(dense(r.next.logits));
  for (let s = 0; s < (req.steps ?? 0); ++s) {
    const next = argmax(rows[rows.length - 1]);
    out.greedy.push(next);
    res = await seq.controlledEvaluate([[next, {generateNext: {logits: true}}]]);
    rows.push(dense(res[0].next.logits));
  }
  out.logits = rows.map((v) => Buffer.from(v.buffer).toString("base64"));
  await context.dispose();
  await model.dispose();
}
process.stdout.write(JSON.stringify(out) + "\n");
await llama.dispose();
