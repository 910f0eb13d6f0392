// A bounded load test of llmgen --serve: N requests from C concurrent clients (plain fetch,
// short completions); a 503 is retried after its Retry-After (scaled down), anything else is an
// error. Prints one JSON line: {"ok", "retries", "errors", "seconds"}.
// Usage: LLM_SERVE_URL=... LLM_SERVE_KEY=... node load_test.mjs REQUESTS CLIENTS
const base = process.env.LLM_SERVE_URL;
const key = process.env.LLM_SERVE_KEY;
const total = Number(process.argv[2] ?? 200);
const clients = Number(process.argv[3] ?? 16);
const words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "big", "red"];
let next = 0, ok = 0, retries = 0;
const errors = [];
const deadline = Date.now() + 240_000;  // stops by itself whatever the server does

async function one(i) {
  const prompt = Array.from({ length: 1 + (i % 9) }, (_, k) => words[(i * 7 + k) % words.length]).join(" ");
  // The first wave (one request per client) holds its slots for 160 tokens, so that it overflows
  // slots + queue for certain even when a loaded machine sends it slowly (with 40 tokens a CI run
  // once finished the first requests before the last were sent: no 503); the rest are short.
  const first = i < clients;
  const body = JSON.stringify({ prompt, max_tokens: first ? 160 : 1 + (i % 6), ignore_eos: first, temperature: 0.8,
                                seed: i, stream: i % 3 === 0 });
  while (Date.now() < deadline) {
    const r = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
      body,
    });
    const text = await r.text();
    if (r.status === 503) {
      retries++;
      await new Promise((res) => setTimeout(res, 20 * Number(r.headers.get("retry-after") ?? 1)));
      continue;
    }
    if (r.status !== 200) return errors.push(`${r.status} ${text.slice(0, 200)}`);
    if (i % 3 === 0 ? !text.trimEnd().endsWith("data: [DONE]") : !JSON.parse(text).usage) {
      return errors.push(`bad body ${text.slice(0, 200)}`);
    }
    return ok++;
  }
  errors.push("deadline");
}

const t0 = Date.now();
await Promise.all(Array.from({ length: clients }, async () => {
  for (let i = next++; i < total; i = next++) await one(i);
}));
console.log(JSON.stringify({ ok, retries, errors: errors.length, first_errors: errors.slice(0, 5), seconds: (Date.now() - t0) / 1000 }));
process.exit(errors.length ? 1 : 0);
