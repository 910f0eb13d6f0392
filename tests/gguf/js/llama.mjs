// llama.cpp (node-llama-cpp's prebuilt CPU binaries) as an independent client of our GGUF files.
// Reads one JSON request on stdin and prints one JSON answer on stdout:
//   {"model": FILE, "ids": [...], "steps": N}   -> {"logits": [[V floats] per position of ids,
//                                                    then per greedy step], "greedy": [N ids]}
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
  });
  const seq = context.getSequence();
  const dense = (m) => {
    let n = 0;
    for (const k of m.keys()) n = Math.max(n, k + 1);
    const v = new Array(req.vocab ?? n).fill(null);
    for (const [k, x] of m) v[k] = x;
    return v;
  };
  const argmax = (v) => v.reduce((b, x, i) => (x > v[b] ? i : b), 0);
  out.logits = [];
  out.greedy = [];
  const items = req.ids.map((t) => [t, {generateNext: {logits: true}}]);
  let res = await seq.controlledEvaluate(items);
  for (const r of res) out.logits.push(dense(r.next.logits));
  for (let s = 0; s < (req.steps ?? 0); ++s) {
    const next = argmax(out.logits[out.logits.length - 1]);
    out.greedy.push(next);
    res = await seq.controlledEvaluate([[next, {generateNext: {logits: true}}]]);
    out.logits.push(dense(res[0].next.logits));
  }
  await context.dispose();
  await model.dispose();
}
process.stdout.write(JSON.stringify(out) + "\n");
await llama.dispose();
