// The REPL: commands (/help, /reset, /set, /stats, /quit) and the read-answer loop.
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <ostream>
#include <sstream>

#include "llm/chat.h"
#include "llm/error.h"

namespace llm {

namespace {

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string where(std::string_view name) { return cat("/set ", name); }

double parse_number(std::string_view name, std::string_view v) {
  const std::string s(v);
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(s.c_str(), &end);
  LLM_CHECK(!s.empty() && end == s.c_str() + s.size() && errno == 0, where(name), ": \"", v, "\" is not a number");
  return d;
}

template <class Int>
Int parse_int(std::string_view name, std::string_view v) {
  Int x{};
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  LLM_CHECK(!v.empty() && ec == std::errc() && p == v.data() + v.size(), where(name), ": \"", v,
            "\" is not an integer in range");
  return x;
}

}  // namespace

ReplCommand parse_repl_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (trim(line).empty()) return {};
  if (line.starts_with("//")) return {ReplAction::Prompt, std::string(line.substr(1)), ""};  // a prompt starting with /
  if (!line.starts_with("/")) return {ReplAction::Prompt, std::string(line), ""};
  const std::string_view body = trim(line.substr(1));
  const auto sp = body.find_first_of(" \t");
  const std::string_view cmd = body.substr(0, sp);
  const std::string_view rest = sp == std::string_view::npos ? std::string_view() : trim(body.substr(sp));
  auto no_args = [&](ReplAction a) {
    LLM_CHECK(rest.empty(), "/", cmd, ": takes no arguments");
    return ReplCommand{a, "", ""};
  };
  if (cmd == "help" || cmd == "?") return no_args(ReplAction::Help);
  if (cmd == "reset") return no_args(ReplAction::Reset);
  if (cmd == "stats") return no_args(ReplAction::Stats);
  if (cmd == "quit" || cmd == "exit") return no_args(ReplAction::Quit);
  if (cmd == "set") {
    const auto sp2 = rest.find_first_of(" \t");
    const std::string_view name = rest.substr(0, sp2);
    const std::string_view value = sp2 == std::string_view::npos ? std::string_view() : trim(rest.substr(sp2));
    return {ReplAction::Set, std::string(name), std::string(value)};
  }
  fail("/", cmd, ": unknown command; /help lists the commands");
}

void apply_setting(FrontendOptions& opt, std::string_view name, std::string_view value) {
  FrontendOptions o = opt;
  const bool needs_value = name != "stop" && name != "system";
  LLM_CHECK(!needs_value || !value.empty(), where(name), ": a value is needed");
  if (name == "temp") {
    o.sampling.temperature = static_cast<float>(parse_number(name, value));
  } else if (name == "top-k") {
    o.sampling.top_k = parse_int<int64_t>(name, value);
  } else if (name == "top-p") {
    o.sampling.top_p = static_cast<float>(parse_number(name, value));
  } else if (name == "min-p") {
    o.sampling.min_p = static_cast<float>(parse_number(name, value));
  } else if (name == "repeat-penalty") {
    o.sampling.repeat_penalty = static_cast<float>(parse_number(name, value));
  } else if (name == "seed") {
    o.sampling.seed = parse_int<uint64_t>(name, value);
  } else if (name == "max-tokens") {
    o.gen.max_tokens = parse_int<int64_t>(name, value);
  } else if (name == "stop") {
    if (value.empty()) {
      o.gen.stop.clear();
    } else {
      o.gen.stop.emplace_back(value);
    }
  } else if (name == "stats") {
    LLM_CHECK(value == "on" || value == "off", where(name), ": \"", value, "\" is not on or off");
    o.stats = value == "on";
  } else if (name == "system") {
    LLM_CHECK(o.chat, where(name), ": only in chat mode (--chat)");
    o.system = std::string(value);
  } else {
    fail(where(name),
         ": unknown parameter; one of: temp, top-k, top-p, min-p, repeat-penalty, seed, max-tokens, "
         "stop, stats, system");
  }
  o.sampling.validate("/set ");
  o.gen.validate("/set ");
  opt = std::move(o);
}

std::string repl_help() {
  return "Type a prompt (chat mode: a message) and press Enter; a line starting with // sends a prompt\n"
         "starting with /. Ctrl-C stops the answer, Ctrl-D (or /quit) leaves.\n"
         "  /help                 this text\n"
         "  /reset                forget the conversation (and the KV cache)\n"
         "  /set                  show the settings\n"
         "  /set NAME VALUE       temp, top-k, top-p, min-p, repeat-penalty, seed, max-tokens,\n"
         "                        stats on|off, system TEXT (chat); /set stop STR adds a stop string,\n"
         "                        /set stop clears them\n"
         "  /stats                speed of the last answer and memory use\n"
         "  /quit                 leave\n";
}

std::string settings_text(const FrontendOptions& opt) {
  std::ostringstream s;
  const SamplingParams& p = opt.sampling;
  s << "temp " << p.temperature << (p.temperature == 0 ? " (greedy)" : "") << ", top-k " << p.top_k << ", top-p "
    << p.top_p << ", min-p " << p.min_p << ", repeat-penalty " << p.repeat_penalty << ", seed " << p.seed
    << ", max-tokens " << opt.gen.max_tokens << ", stats " << (opt.stats ? "on" : "off") << ", stop [";
  for (size_t i = 0; i < opt.gen.stop.size(); ++i) s << (i ? ", " : "") << '"' << opt.gen.stop[i] << '"';
  s << "]";
  if (opt.chat) s << ", system \"" << opt.system << "\"";
  s << "\n";
  return s.str();
}

int run_repl(Frontend& fe, LineSource& in, const ReplIo& io) {
  if (io.interactive) {
    io.err << "llmgen: " << (fe.options().chat ? "chat" : "completion (each line is a new prompt)")
           << "; /help for commands, Ctrl-C stops an answer, Ctrl-D quits\n";
  }
  int failed = 0;
  for (;;) {
    // A Ctrl-C from before (one that stopped an answer) must not look like one at the prompt.
    if (io.clear_interrupt) io.clear_interrupt();
    const std::optional<std::string> line = in.read_line(io.interactive ? "> " : "");
    if (!line) {
      // libedit gives up the line on Ctrl-C: cancel it and prompt again.
      if (io.interactive && io.interrupted && io.interrupted()) {
        if (io.clear_interrupt) io.clear_interrupt();
        io.out << "\n";
        continue;
      }
      if (io.interactive) io.out << "\n";  // leave the terminal on a fresh line after Ctrl-D
      break;
    }
    try {
      const ReplCommand c = parse_repl_line(*line);
      switch (c.action) {
        case ReplAction::None: break;
        case ReplAction::Quit: return failed;
        case ReplAction::Help: io.err << repl_help(); break;
        case ReplAction::Reset:
          fe.reset();
          io.err << "[reset]\n";
          break;
        case ReplAction::Set:
          if (c.text.empty()) {
            io.err << settings_text(fe.options());
          } else {
            FrontendOptions o = fe.options();
            apply_setting(o, c.text, c.value);
            fe.set_options(o);
            io.err << "[" << c.text << (c.value.empty() ? " cleared" : " = " + c.value) << "]\n";
          }
          break;
        case ReplAction::Stats:
          if (fe.last_stats()) {
            io.err << format_stats(*fe.last_stats(), fe.session().model()) << "\n";
          } else {
            io.err << "no answer yet\n";
          }
          break;
        case ReplAction::Prompt: fe.answer(c.text, io.out, io.err, io.interrupted); break;
      }
    } catch (const Error& e) {
      io.out << std::flush;
      io.err << "error: " << e.what() << "\n";
      ++failed;
    }
  }
  return failed;
}

}  // namespace llm
