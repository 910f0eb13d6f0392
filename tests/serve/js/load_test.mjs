// A bounded load test of llmgen --serve: N requests from C concurrent clients (plain fetch,
// short completions); a 503 is retried after its Retry-After (scaled down), anything else is an
// error. Prints one JSON line: {"ok", "retries", "errors", "seconds"}.
// Usage: LLM_SERVE_URL=... LLM_SERVE_KEY=... node load_test.mjs REQUESTS CLIENTS [HOLDERS]
//
// HOLDERS (give it the server's slots + queue) makes the overflow certain rather than a race:
// that many long streams keep every slot and queue place taken, each sent again the moment it
// ends, until the first 503 is seen; then they leave mid-stream (the server frees the slot of a
// client that left). Without them, a loaded machine once sent its first requests more slowly
// than the server answered them, and no request met a full server.
const base = process.env.LLM_SERVE_URL;
const key = process.env.LLM_SERVE_KEY;
const total = Number(process.argv[2] ?? 200);
const clients = Number(process.argv[3] ?? 16);
const holders = Number(process.argv[4] ?? 0);
const words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "big", "red"];
const headers = { "Content-Type": "application/json", Authorization: `Bearer ${key}` };
let next = 0, ok = 0, retries = 0;
const errors = [];
const deadline = Date.now() + 240_000;  // stops by itself whatever the server does
const release = new AbortController();

function overflowSeen() {
  retries++;
  release.abort();
}

async function hold(h) {
  const body = JSON.stringify({ prompt: words[h % words.length], max_tokens: 160, ignore_eos: true, stream: true });
  while (!release.signal.aborted && Date.now() < deadline) {
    try {
      const r = await fetch(`${base}/v1/completions`, { method: "POST", headers, body, signal: release.signal });
      const text = await r.text();
      if (r.status === 503) overflowSeen();
      else if (r.status !== 200) errors.push(`holder ${r.status} ${text.slice(0, 200)}`);
    } catch (e) {
      if (!release.signal.aborted) errors.push(`holder ${e}`);
    }
  }
}

async function one(i) {
  const prompt = Array.from({ length: 1 + (i % 9) }, (_, k) => words[(i * 7 + k) % words.length]).join(" ");
  const body = JSON.stringify({ prompt, max_tokens: 1 + (i % 6), temperature: 0.8, seed: i, stream: i % 3 === 0 });
  while (Date.now() < deadline) {
    const r = await fetch(`${base}/v1/completions`, { method: "POST", headers, body });
    const text = await r.text();
    if (r.status === 503) {
      overflowSeen();
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
const held = Array.from({ length: holders }, (_, h) => hold(h));
await Promise.all(Array.from({ length: clients }, async () => {
  for (let i = next++; i < total; i = next++) await one(i);
}));
release.abort();  // a server that never overflowed: the holders stop with the load
await Promise.all(held);
console.log(JSON.stringify({ ok, retries, errors: errors.length, first_errors: errors.slice(0, 5), seconds: (Date.now() - t0) / 1000 }));
process.exit(errors.length ? 1 : 0);
