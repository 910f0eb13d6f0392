// llama.cpp (node-llama-cpp, tests/gguf/js) on a GGUF file: prefill tokens/s of a prompt and
// decode tokens/s (median step), one JSON line.
//   node bench/gguf_llama_bench.mjs FILE THREADS PROMPT_TOKENS DECODE_TOKENS
import path from "node:path";
import {fileURLToPath, pathToFileURL} from "node:url";

const [file, threads, promptTokens, decodeTokens] = process.argv.slice(2);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const {getLlama, LlamaLogLevel} = await import(
    pathToFileURL(path.join(repo, "tests/gguf/js/node_modules/node-llama-cpp/dist/index.js")).href);
const n = Number(promptTokens), steps = Number(decodeTokens), t = Number(threads);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: t});
const model = await llama.loadModel({modelPath: file, gpuLayers: 0});
const context = await model.createContext({contextSize: n + steps + 8, batchSize: n, threads: t, sequences: 1});
const seq = context.getSequence();
const ids = Array.from({length: n}, (_, i) => 1000 + ((i * 7919) % 20000));
let t0 = performance.now();
await seq.controlledEvaluate(ids.map((x, i) => (i === n - 1 ? [x, {generateNext: {logits: true}}] : x)));
const prefill = n / ((performance.now() - t0) / 1000);
const times = [];
for (let s = 0; s < steps; ++s) {
  t0 = performance.now();
  await seq.controlledEvaluate([[2000 + s, {generateNext: {logits: true}}]]);
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
process.stdout.write(JSON.stringify({prefill_tokens_per_s: prefill, decode_tokens_per_s: 1000 / times[times.length >> 1]}) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
