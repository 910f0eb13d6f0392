// The official OpenAI client against llmgen --serve (tests/serve/server_test.cpp starts the
// server): models, chat, completions, streaming, stop strings, usage, and the error cases.
// Usage: LLM_SERVE_URL=http://127.0.0.1:PORT LLM_SERVE_KEY=KEY node client_test.mjs
import OpenAI from "openai";
import assert from "node:assert/strict";

const base = process.env.LLM_SERVE_URL;
const key = process.env.LLM_SERVE_KEY;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
let passed = 0;
const failures = [];
async function check(name, fn) {
  try {
    await fn();
    passed++;
  } catch (e) {
    failures.push(name);
    console.error(`FAILED ${name}: ${e.stack || e}`);
  }
}
async function expectError(fn, status, param) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert.equal(e.status, status, e.message);
    if (param !== undefined) assert.equal(e.param, param, e.message);
    assert.equal(typeof e.error.message, "string");
    return e;
  }
  assert.fail(`no error, expected ${status}`);
}

const models = await client.models.list();
const model = models.data[0].id;
const chatReq = {
  model,
  messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "the cat sat on a mat" }],
  max_tokens: 12,
  temperature: 0,
};

await check("models", () => {
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].object, "model");
});

let chatText = "";
await check("chat", async () => {
  const r = await client.chat.completions.create(chatReq);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 10, `prompt_tokens ${r.usage.prompt_tokens}`);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  if (r.choices[0].finish_reason === "length") assert.equal(r.usage.completion_tokens, 12);
  chatText = r.choices[0].message.content;
  const again = await client.chat.completions.create(chatReq);
  assert.equal(again.choices[0].message.content, chatText, "greedy answers differ");
});

await check("chat stream", async () => {
  const stream = await client.chat.completions.create({ ...chatReq, stream: true, stream_options: { include_usage: true } });
  let text = "", roles = 0, finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    assert.equal(c.object, "chat.completion.chunk");
    if (c.usage) usage = c.usage;
    if (c.choices.length === 0) continue;
    if (c.choices[0].delta.role) roles++;
    text += c.choices[0].delta.content ?? "";
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(text, chatText, "the streamed text differs from the whole answer");
  assert.equal(roles, 1);
  assert.ok(finish === "stop" || finish === "length");
  assert.ok(usage && usage.completion_tokens >= 1, "no usage chunk");
  assert.ok(chunks >= 2);
});

// The stop-string check below needs greedy text to cut: ignore_eos (our extension, passed through
// by the client) keeps a random test model from ending the completion at once.
const compReq = { model, prompt: "the dog ran far", max_tokens: 24, temperature: 0, ignore_eos: true };
let compText = "";
await check("completion", async () => {
  const r = await client.completions.create(compReq);
  assert.equal(r.object, "text_completion");
  assert.equal(typeof r.choices[0].text, "string");
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  compText = r.choices[0].text;
});

await check("completion stream", async () => {
  const stream = await client.completions.create({ ...compReq, stream: true });
  let text = "";
  for await (const c of stream) text += c.choices[0]?.text ?? "";
  assert.equal(text, compText);
});

await check("stop string", async () => {
  // Two characters from the middle of the greedy text (a random model may write mostly spaces).
  assert.ok(compText.length >= 6, `the greedy text is too short to pick a stop string: ${JSON.stringify(compText)}`);
  const mid = Math.floor(compText.length / 2);
  const stop = compText.slice(mid - 1, mid + 1);
  const expect = compText.slice(0, compText.indexOf(stop));
  const r = await client.completions.create({ ...compReq, stop: [stop] });
  assert.equal(r.choices[0].text, expect);
  assert.equal(r.choices[0].finish_reason, "stop");
  const s = await client.completions.create({ ...compReq, stop, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.text ?? "";
  assert.equal(text, expect);
});

await check("seeded sampling repeats", async () => {
  const req = { model, prompt: "a big red", max_tokens: 16, temperature: 1.0, top_p: 0.9, top_k: 40, min_p: 0.01, seed: 1234 };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  assert.equal(a.choices[0].text, b.choices[0].text);
});

await check("errors", async () => {
  await expectError(() => client.chat.completions.create({ ...chatReq, temperature: "hot" }), 400, "temperature");
  await expectError(() => client.chat.completions.create({ ...chatReq, temperature: 3 }), 400, "temperature");
  await expectError(() => client.chat.completions.create({ ...chatReq, max_tokens: 0 }), 400, "max_tokens");
  await expectError(() => client.chat.completions.create({ ...chatReq, max_tokens: 100000 }), 400, "max_tokens");
  await expectError(() => client.chat.completions.create({ ...chatReq, n: 2 }), 400, "n");
  await expectError(() => client.chat.completions.create({ ...chatReq, messages: [] }), 400, "messages");
  await expectError(() => client.chat.completions.create({ ...chatReq, messages: [{ role: "wizard", content: "x" }] }), 400,
                    "messages[0].role");
  await expectError(() => client.chat.completions.create({ ...chatReq, stop: [""] }), 400, "stop");
  await expectError(() => client.chat.completions.create({ ...chatReq, tools: [{ type: "function", function: { name: "f" } }] }),
                    400, "tools");
  const long = "the cat sat on a mat ".repeat(400);
  const e = await expectError(() => client.completions.create({ model, prompt: long, max_tokens: 4 }), 400, "prompt");
  assert.equal(e.code, "context_length_exceeded");
  const nf = await expectError(() => client.chat.completions.create({ ...chatReq, model: "no-such-model" }), 404, "model");
  assert.equal(nf.code, "model_not_found");
  const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: "wrong-key", maxRetries: 0 });
  const au = await expectError(() => wrong.chat.completions.create(chatReq), 401);
  assert.ok(au instanceof OpenAI.AuthenticationError);
  await expectError(() => wrong.models.list(), 401);
});

console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
