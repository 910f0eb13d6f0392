// Checks an Ollama Modelfile written by `llmtrain export --to ollama` (tests/gguf/ollama_export_test.cpp):
//   node modelfile.mjs < {"modelfile": PATH, "chat_template": JINJA, "conversations": [[{role, content, ...}], ...]}
//   -> {"instructions": [[NAME, ARG], ...], "renders": [{"go": TEXT, "jinja": TEXT}, ...]}  or {"error": MESSAGE}
// 1. Parses the file with Ollama's Modelfile grammar (parser/parser.go): one instruction a line
//    (FROM, ADAPTER, PARAMETER, TEMPLATE, SYSTEM, LICENSE, MESSAGE, REQUIRES; case-insensitive),
//    comments, "quoted" or """triple-quoted""" (multi-line) arguments that must be closed, known
//    PARAMETER names with values of their type.
// 2. Renders each conversation twice: with the TEMPLATE, by a small interpreter of the Go
//    text/template constructs it uses, on the data Ollama gives it (the Modelfile's SYSTEM as the
//    default system message, consecutive same-role messages collated, .System, .Messages); and
//    with the model's Jinja chat template by @huggingface/jinja (what transformers renders),
//    add_generation_prompt on. The caller compares the two.
// The conversation {"legacy": PROMPT} renders the template's .Prompt/.Response branch instead.
import {Template} from "@huggingface/jinja";
import fs from "node:fs";

const fail = (msg) => {
  process.stdout.write(JSON.stringify({error: msg}) + "\n");
  process.exit(0);
};

// ---- the Modelfile grammar ---------------------------------------------------------------------

const INSTRUCTIONS = ["from", "adapter", "parameter", "template", "system", "license", "message", "requires"];
// Ollama's api.Options / Runner fields a PARAMETER may set, with their value types.
const PARAMS = {
  num_keep: "int", seed: "int", num_predict: "int", top_k: "int", top_p: "float", min_p: "float",
  typical_p: "float", repeat_last_n: "int", temperature: "float", repeat_penalty: "float",
  presence_penalty: "float", frequency_penalty: "float", stop: "string", num_ctx: "int", num_batch: "int",
  num_gpu: "int", main_gpu: "int", use_mmap: "bool", num_thread: "int",
};

function parseModelfile(text) {
  const out = [];
  let i = 0;
  let line = 1;
  const at = () => `Modelfile line ${line}`;
  while (i < text.length) {
    if (text[i] === "\n") { ++line; ++i; continue; }
    if (text[i] === " " || text[i] === "\t" || text[i] === "\r") { ++i; continue; }
    if (text[i] === "#") { while (i < text.length && text[i] !== "\n") ++i; continue; }
    let j = i;
    while (j < text.length && /[A-Za-z]/.test(text[j])) ++j;
    const name = text.slice(i, j).toLowerCase();
    if (!INSTRUCTIONS.includes(name)) fail(`${at()}: unknown instruction "${text.slice(i, j) || text[i]}"`);
    i = j;
    while (text[i] === " " || text[i] === "\t") ++i;
    let arg;
    if (text.startsWith('"""', i)) {
      const end = text.indexOf('"""', i + 3);
      if (end < 0) fail(`${at()}: ${name.toUpperCase()}: unterminated """`);
      arg = text.slice(i + 3, end);
      line += arg.split("\n").length - 1;
      i = end + 3;
    } else {
      let e = text.indexOf("\n", i);
      if (e < 0) e = text.length;
      arg = text.slice(i, e).trim();
      i = e;
    }
    while (i < text.length && text[i] !== "\n") {
      if (!/\s/.test(text[i])) fail(`${at()}: text after the argument of ${name.toUpperCase()}`);
      ++i;
    }
    if (arg === "") fail(`${at()}: ${name.toUpperCase()} without an argument`);
    if (name === "parameter") {
      const m = /^(\S+)\s+(.+)$/s.exec(arg);
      if (!m) fail(`${at()}: PARAMETER needs a name and a value`);
      const type = PARAMS[m[1]];
      if (!type) fail(`${at()}: unknown parameter "${m[1]}"`);
      let v = m[2];
      if (type === "string") {
        if (v.startsWith('"')) {
          if (!v.endsWith('"') || v.length < 2) fail(`${at()}: unterminated "`);
          v = JSON.parse(v);
        }
      } else if (type === "int" ? !/^-?\d+$/.test(v) : type === "float" ? isNaN(Number(v)) : !/^(true|false)$/.test(v)) {
        fail(`${at()}: ${m[1]} takes a ${type}, not "${v}"`);
      }
      out.push([name, m[1], v]);
    } else {
      if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) arg = arg.slice(1, -1);
      out.push([name, arg]);
    }
  }
  if (!out.some((x) => x[0] === "from")) fail("Modelfile: no FROM");
  return out;
}

// ---- a Go text/template interpreter for the constructs Ollama's templates use -------------------
// Actions {{ }} with trim markers {{- -}}, if / else if / else / end, range [$i, $x :=] / end,
// $v := pipeline, fields (.A.B, $.A, $v), parenthesised calls of eq ne and or not len slice.

function lex(src) {
  const items = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open < 0) { items.push({text: src.slice(i)}); break; }
    items.push({text: src.slice(i, open)});
    const close = src.indexOf("}}", open);
    if (close < 0) throw new Error(`template: unclosed action at byte ${open}`);
    let body = src.slice(open + 2, close);
    const trimLeft = /^- /.test(body) || body === "-";
    const trimRight = / -$/.test(body);
    if (trimLeft) body = body.slice(1);
    if (trimRight) body = body.slice(0, -1);
    items.push({action: body.trim(), trimLeft, trimRight, at: open});
    i = close + 2;
  }
  for (let k = 0; k < items.length; ++k) {
    if (!items[k].action) continue;
    if (items[k].trimLeft && items[k - 1]?.text !== undefined) items[k - 1].text = items[k - 1].text.replace(/[ \t\r\n]+$/, "");
    if (items[k].trimRight && items[k + 1]?.text !== undefined) items[k + 1].text = items[k + 1].text.replace(/^[ \t\r\n]+/, "");
  }
  return items.filter((x) => x.action !== undefined || x.text !== "");
}

function tokenize(expr) {
  const toks = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|\(|\)|:=|,|\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*|\.[A-Za-z0-9_.]*|[A-Za-z_][A-Za-z0-9_]*|-?\d+)/y;
  let m;
  while (re.lastIndex < expr.length && (m = re.exec(expr))) toks.push(m[1]);
  if (expr.slice(re.lastIndex).trim() !== "") throw new Error(`template: cannot read "${expr}"`);
  return toks;
}

// Parses a pipeline (a command: operands, the first may be a function) from toks[pos...].
function parseCommand(toks, pos, stop) {
  const args = [];
  while (pos.i < toks.length && toks[pos.i] !== stop) {
    const t = toks[pos.i++];
    if (t === "(") {
      args.push(parseCommand(toks, pos, ")"));
      if (toks[pos.i++] !== ")") throw new Error("template: unclosed (");
    } else {
      args.push({tok: t});
    }
  }
  return {cmd: args};
}

function parse(items) {
  let k = 0;
  function block(terminators) {
    const nodes = [];
    while (k < items.length) {
      const it = items[k];
      if (it.text !== undefined) { nodes.push({text: it.text}); ++k; continue; }
      const a = it.action;
      const word = a.split(/\s+/)[0];
      if (terminators.includes(word)) return {nodes, end: a};
      ++k;
      if (word === "if") {
        const branches = [{cond: expr(a.slice(2)), body: null}];
        let r = block(["else", "end"]);
        branches[0].body = r.nodes;
        let otherwise = [];
        while (r.end !== "end") {
          ++k;
          if (/^else\s+if\s/.test(r.end)) {
            const b = {cond: expr(r.end.replace(/^else\s+if/, "")), body: null};
            r = block(["else", "end"]);
            b.body = r.nodes;
            branches.push(b);
          } else {
            r = block(["end"]);
            otherwise = r.nodes;
          }
        }
        ++k;
        nodes.push({if: branches, otherwise});
      } else if (word === "range") {
        let rest = a.slice(5).trim();
        let vars = [];
        const m = /^(\$[A-Za-z0-9_]*)\s*(?:,\s*(\$[A-Za-z0-9_]*))?\s*:=\s*(.*)$/s.exec(rest);
        if (m) { vars = m[2] ? [m[1], m[2]] : [m[1]]; rest = m[3]; }
        const r = block(["end"]);
        if (r.end !== "end") throw new Error("template: range without end");
        ++k;
        nodes.push({range: expr(rest), vars, body: r.nodes});
      } else if (word === "end" || word === "else") {
        throw new Error(`template: unexpected {{${a}}}`);
      } else {
        const m = /^(\$[A-Za-z0-9_]+)\s*:=\s*(.*)$/s.exec(a);
        nodes.push(m ? {assign: m[1], value: expr(m[2])} : {print: expr(a)});
      }
    }
    if (terminators.length) throw new Error(`template: missing {{${terminators.join("/")}}}`);
    return {nodes};
  }
  const expr = (s) => parseCommand(tokenize(s), {i: 0}, undefined);
  return block([]).nodes;
}

const truthy = (v) =>
  !(v === undefined || v === null || v === false || v === 0 || v === "" ||
    (Array.isArray(v) && v.length === 0) || (typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0));

const FUNCS = {
  eq: (a, ...b) => b.some((x) => x === a),
  ne: (a, b) => a !== b,
  and: (...xs) => { for (const x of xs) if (!truthy(x)) return x; return xs[xs.length - 1]; },
  or: (...xs) => { for (const x of xs) if (truthy(x)) return x; return xs[xs.length - 1]; },
  not: (x) => !truthy(x),
  len: (x) => x.length,
  slice: (x, i, j) => x.slice(i, j),
};

function field(v, path) {
  for (const p of path.split(".").filter((s) => s)) {
    if (v === undefined || v === null) throw new Error(`template: field ${p} of nothing`);
    v = v[p];
  }
  return v;
}

function evalCmd(c, dot, scope) {
  const val = (a) => {
    if (a.cmd) return evalCmd(a, dot, scope);
    const t = a.tok;
    if (t.startsWith('"')) return JSON.parse(t);
    if (/^-?\d+$/.test(t)) return Number(t);
    if (t.startsWith(".")) return field(dot, t);
    if (t.startsWith("$")) {
      const [name, ...rest] = t.split(".");
      const s = scope.find((x) => name in x);
      if (!s) throw new Error(`template: undefined variable ${name}`);
      return field(s[name], rest.join("."));
    }
    throw new Error(`template: ${t} is not a value`);
  };
  const [head, ...rest] = c.cmd;
  if (head && head.tok && FUNCS[head.tok]) return FUNCS[head.tok](...rest.map(val));
  if (rest.length) throw new Error("template: operands after a value");
  return val(head);
}

function execute(nodes, dot, scope, out) {
  scope = [{}, ...scope];
  for (const n of nodes) {
    if (n.text !== undefined) out.push(n.text);
    else if (n.print) {
      const v = evalCmd(n.print, dot, scope);
      out.push(v === undefined || v === null ? "<no value>" : typeof v === "object" ? JSON.stringify(v) : String(v));
    } else if (n.assign) scope[0][n.assign] = evalCmd(n.value, dot, scope);
    else if (n.if) {
      const b = n.if.find((br) => truthy(evalCmd(br.cond, dot, scope)));
      execute(b ? b.body : n.otherwise, dot, scope, out);
    } else if (n.range) {
      const xs = evalCmd(n.range, dot, scope) ?? [];
      xs.forEach((x, i) => {
        const vars = {};
        if (n.vars.length === 2) { vars[n.vars[0]] = i; vars[n.vars[1]] = x; }
        if (n.vars.length === 1) vars[n.vars[0]] = x;
        execute(n.body, x, [vars, ...scope], out);
      });
    }
  }
}

function renderGo(template, data) {
  const out = [];
  execute(parse(lex(template)), data, [{$: data}], out);
  return out.join("");
}

// What Ollama hands the template for a chat request (server/prompt.go, template/template.go):
// the Modelfile's SYSTEM as a leading system message when the request has none, then collate():
// consecutive messages of one role joined by "\n\n", .System = the system messages' contents.
function ollamaData(messages, system) {
  let msgs = messages.map((m) => ({
    Role: m.role,
    Content: m.content ?? "",
    ToolCalls: (m.tool_calls ?? []).map((t) => ({Function: {Name: t.function.name, Arguments: JSON.stringify(t.function.arguments)}})),
  }));
  if (system !== undefined && !msgs.some((m) => m.Role === "system")) msgs = [{Role: "system", Content: system, ToolCalls: []}, ...msgs];
  const collated = [];
  const systems = [];
  for (const m of msgs) {
    if (m.Role === "system") systems.push(m.Content);
    const last = collated[collated.length - 1];
    if (last && last.Role === m.Role) last.Content += "\n\n" + m.Content;
    else collated.push({...m});
  }
  return {System: systems.join("\n\n"), Messages: collated, Tools: [], Prompt: "", Response: ""};
}

// ---- main ----------------------------------------------------------------------------------------

const req = JSON.parse(fs.readFileSync(0, "utf8"));
const instructions = parseModelfile(fs.readFileSync(req.modelfile, "utf8"));
const get = (n) => instructions.filter((x) => x[0] === n).map((x) => x[1]);
const template = get("template")[0];
const system = get("system")[0];
const jinja = new Template(req.chat_template);
const renders = [];
try {
  for (const conv of req.conversations) {
    if (conv.legacy !== undefined) {
      const go = renderGo(template, {System: system ?? "", Prompt: conv.legacy, Response: "", Messages: [], Tools: []});
      const j = jinja.render({messages: [{role: "user", content: conv.legacy}], add_generation_prompt: true});
      renders.push({go, jinja: j});
      continue;
    }
    const go = renderGo(template, ollamaData(conv, system));
    renders.push({go, jinja: jinja.render({messages: conv, add_generation_prompt: true})});
  }
} catch (e) {
  fail(String(e.message ?? e));
}
process.stdout.write(JSON.stringify({instructions, renders}) + "\n");
