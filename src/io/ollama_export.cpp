// export_ollama: a model directory -> OUTDIR/model.gguf + OUTDIR/Modelfile for `ollama create`.
// The template is Ollama's own for qwen2.5 (ollama.com/library/qwen2.5, the "template" layer),
// transcribed exactly: Go text/template over .System, .Tools and .Messages, with the legacy
// .Prompt/.Response form for old clients. tests/gguf/js/modelfile.mjs renders it with a Go
// template interpreter and compares with the Jinja template rendered by @huggingface/jinja.
#include <cctype>

#include "export_dir.h"
#include "llm/inference.h"
#include "llm/model_export.h"
#include "llm/tokenizer.h"

namespace llm {

namespace fs = std::filesystem;

const char* const kQwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

const char* const kOllamaQwen25Template = R"GO({{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }})GO";

namespace {

bool ollama_file(const std::string& n) { return n == "Modelfile" || n == "model.gguf"; }

// Ollama model names: lower-case letters, digits, '.', '-', '_'.
std::string ollama_name(const fs::path& dir) {
  std::string name;
  for (char c : dir.filename().string()) {
    const auto u = static_cast<unsigned char>(c);
    name += std::isalnum(u) || c == '.' || c == '-' || c == '_' ? static_cast<char>(std::tolower(u)) : '-';
  }
  while (!name.empty() && !std::isalnum(static_cast<unsigned char>(name.front()))) name.erase(0, 1);
  return name.empty() ? "model" : name;
}

}  // namespace

std::string ollama_modelfile(std::string_view gguf_name, bool chatml) {
  std::string m = cat("# Written by llmtrain export --to ollama. Then: ollama create NAME -f Modelfile\nFROM ./",
                      gguf_name, "\n\n");
  if (!chatml) {
    // No chat tokens: a completion model. The end-of-text token (the GGUF's eos) stops it.
    return m + "TEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n";
  }
  m += cat("TEMPLATE \"\"\"", kOllamaQwen25Template, "\"\"\"\n\n");
  m += cat("SYSTEM \"\"\"", kQwen25DefaultSystem, "\"\"\"\n\n");
  m += "PARAMETER stop \"<|im_start|>\"\nPARAMETER stop \"<|im_end|>\"\n";
  // Qwen2.5-Instruct's generation_config.json sampling defaults.
  m += "PARAMETER temperature 0.7\nPARAMETER top_p 0.8\nPARAMETER top_k 20\nPARAMETER repeat_penalty 1.05\n";
  return m;
}

OllamaExportResult export_ollama(const fs::path& model_dir, const fs::path& out_dir, GgufFileType type) {
  io::StagingDir out(out_dir, ollama_file);
  const ModelFiles f = locate_model(model_dir);
  LLM_CHECK(!f.tokenizer.empty(), f.dir.string(),
            ": no tokenizer (tokenizer.json or a sentencepiece .model) beside the weights; a GGUF file needs one");
  const auto tok = load_tokenizer(f.tokenizer);
  const bool chatml = tok->token_id("<|im_start|>") >= 0 && tok->token_id("<|im_end|>") >= 0;

  OllamaExportResult r;
  r.gguf_result = export_gguf(model_dir, out.path() / "model.gguf", type);
  out.write("Modelfile", ollama_modelfile("model.gguf", chatml));
  r.dir = out.final_path();
  r.gguf = r.dir / "model.gguf";
  r.modelfile = r.dir / "Modelfile";
  r.name = ollama_name(r.dir);
  out.commit();
  return r;
}

}  // namespace llm
