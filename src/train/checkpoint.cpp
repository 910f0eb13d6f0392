// Checkpoint directories: writing, finding the newest, reading back.
#include "llm/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>

#include "llm/atomic_file.h"
#include "llm/checksum.h"
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/lora.h"
#include "llm/safetensors.h"

namespace llm {

namespace fs = std::filesystem;

fs::path checkpoint_dir(const fs::path& run_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%08lld", static_cast<long long>(step));
  return run_dir / name;
}

std::vector<float> download_weights(const Qwen2Model& model) {
  const Tensor& w = model.weights();
  std::vector<float> flat(static_cast<size_t>(w.numel()));
  if (w.dtype() == DType::F32) {
    model.backend().download(w, flat.data());
    return flat;
  }
  std::vector<uint16_t> half(flat.size());
  model.backend().download(w, half.data());
  for (size_t i = 0; i < flat.size(); ++i) {
    flat[i] = w.dtype() == DType::BF16 ? bf16_bits_to_f32(half[i]) : f16_bits_to_f32(half[i]);
  }
  return flat;
}

namespace {

std::string rank_file(int rank) {
  char name[48];
  std::snprintf(name, sizeof(name), "optimizer.rank%05d.safetensors", rank);
  return name;
}

std::vector<fs::path> step_dirs(const fs::path& run_dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(run_dir)) return out;
  static const std::regex pattern("step_[0-9]{8}");
  for (const auto& e : fs::directory_iterator(run_dir)) {
    if (e.is_directory() && std::regex_match(e.path().filename().string(), pattern) &&
        fs::exists(e.path() / "trainer_state.json")) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// master, m, v [c] of the flat range [b, b + c), from the optimizer shards of ckpt, whatever
// world size wrote them.
void read_optimizer_range(const fs::path& ckpt, int64_t b, int64_t c, std::vector<float>& master, std::vector<float>& m,
                          std::vector<float>& v) {
  std::vector<fs::path> shards;
  for (const auto& e : fs::directory_iterator(ckpt)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with("optimizer.rank") && n.ends_with(".safetensors")) shards.push_back(e.path());
  }
  LLM_CHECK(!shards.empty(), ckpt.string(), ": no optimizer.rank*.safetensors");
  int64_t covered = 0;
  for (const auto& f : shards) {
    const SafetensorsReader r(f);
    int64_t sb = 0, sc = 0;
    try {
      sb = std::stoll(r.metadata().at("begin"));
      sc = std::stoll(r.metadata().at("count"));
    } catch (const std::exception&) {
      fail(f.string(), ": metadata lacks integer \"begin\" and \"count\"");
    }
    const int64_t lo = std::max(b, sb), hi = std::min(b + c, sb + sc);
    if (lo >= hi) continue;
    for (auto [name, dst] : {std::pair{"master", &master}, {"m", &m}, {"v", &v}}) {
      const SafetensorsTensor& t = r.at(name);
      LLM_CHECK(t.dtype == "F32" && t.shape == std::vector<int64_t>{sc}, f.string(), ": ", name, " must be F32 [", sc,
                "]");
      std::memcpy(dst->data() + (lo - b), r.bytes(t).data() + (lo - sb) * 4, static_cast<size_t>(hi - lo) * 4);
    }
    covered += hi - lo;
  }
  LLM_CHECK(covered == c, ckpt.string(), ": the optimizer shards cover ", covered, " of the ", c,
            " parameters of this rank's range [", b, ", ", b + c, ")");
}

void point_latest(const fs::path& run_dir, const fs::path& ckpt) {
  const fs::path tmp = run_dir / "latest.tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_directory_symlink(ckpt.filename(), tmp);
  fs::rename(tmp, run_dir / "latest");
  fsync_dir(run_dir);
}

// Runs `write` on this rank, then every rank learns whether any rank failed (so none is left
// waiting in a collective). On a failure rank 0 removes the temporary directory and every rank
// throws CheckpointWriteError: the failing rank with its own message, the others naming the rank.
void write_collectively(Communicator& comm, int64_t step, const fs::path& tmp, const std::function<void()>& write) {
  std::string error;
  try {
    write();
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::vector<double> failed(size_t(comm.world()), 0.0);
  failed[size_t(comm.rank())] = error.empty() ? 0.0 : 1.0;
  comm.all_reduce_sum(failed);
  int first = -1;
  for (int r = 0; r < comm.world() && first < 0; ++r) first = failed[size_t(r)] > 0 ? r : -1;
  if (first < 0) return;
  if (comm.rank() == 0) {
    std::error_code ec;
    fs::remove_all(tmp, ec);  // best effort: a full disk may refuse even this; the next start cleans up
  }
  if (error.empty()) error = cat("rank ", first, " failed to write its part (see its error)");
  throw CheckpointWriteError(cat("checkpoint of step ", step, ": ", error));
}

// Removes an old checkpoint so that it is never seen half-deleted: renamed out of the step_*
// pattern first (atomic), then deleted.
void remove_checkpoint(const fs::path& dir) {
  const fs::path doomed = dir.parent_path() / cat(".", dir.filename().string(), ".deleting");
  std::error_code ec;
  fs::remove_all(doomed, ec);
  fs::rename(dir, doomed);
  fsync_dir(dir.parent_path());
  fs::remove_all(doomed);
}

}  // namespace

fs::path save_checkpoint(const fs::path& run_dir, int64_t step, const Qwen2Model& model, const AdamW& opt,
                         const Tokenizer* tokenizer, const nlohmann::json& state, int64_t keep_last, Communicator& comm,
                         const std::function<void(const fs::path&)>& before_commit) {
  const fs::path final_dir = checkpoint_dir(run_dir, step);
  const fs::path tmp = run_dir / cat(".", final_dir.filename().string(), ".tmp");
  write_collectively(comm, step, tmp, [&] {
    if (comm.rank() != 0) return;
    fs::create_directories(run_dir);
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp);
  });

  // Every rank: its part of the ZeRO partition, so the shards never overlap (without ZeRO every
  // rank holds all of the state and writes only its part of it).
  write_collectively(comm, step, tmp, [&] {
    const std::vector<int64_t> part = zero_partition(model.trainable_size(), comm.world());
    const int64_t b = part[static_cast<size_t>(comm.rank())], c = part[static_cast<size_t>(comm.rank()) + 1] - b;
    LLM_CHECK(opt.begin() <= b && b + c <= opt.begin() + opt.count(), "checkpoint: rank ", comm.rank(),
              "'s optimizer range [", opt.begin(), ", ", opt.begin() + opt.count(), ") lacks its part [", b, ", ",
              b + c, ")");
    Backend& be = model.backend();
    std::vector<float> master(static_cast<size_t>(c)), m(master.size()), v(master.size());
    be.download(opt.master().range(b - opt.begin(), c), master.data());
    be.download(opt.m().range(b - opt.begin(), c), m.data());
    be.download(opt.v().range(b - opt.begin(), c), v.data());
    SafetensorsWriter w;
    w.add("master", DType::F32, {c}, master.data());
    w.add("m", DType::F32, {c}, m.data());
    w.add("v", DType::F32, {c}, v.data());
    w.add_metadata("begin", std::to_string(b));
    w.add_metadata("count", std::to_string(c));
    w.add_metadata("flat_size", std::to_string(model.trainable_size()));
    w.add_metadata("rank", std::to_string(comm.rank()));
    w.add_metadata("world", std::to_string(comm.world()));
    w.write(tmp / rank_file(comm.rank()));
  });
  // Weights are downloaded on rank 0 alone (a collective-free backend call).
  write_collectively(comm, step, tmp, [&] {
    if (comm.rank() != 0) return;
    if (model.lora()) {
      // LoRA: the frozen base is where init_from names it; the checkpoint is a PEFT adapter
      // directory (the fp32 masters, gathered from the rank shards just written).
      const auto from = "/config/model/init_from"_json_pointer;
      std::vector<float> master(static_cast<size_t>(model.trainable_size())), m(master.size()), v(master.size());
      read_optimizer_range(tmp, 0, model.trainable_size(), master, m, v);
      write_peft_adapter(tmp, *model.lora(), master,
                         state.contains(from) && state[from].is_string() ? state[from].get<std::string>() : "");
    } else {
      const std::vector<float> flat = download_weights(model);
      write_model_safetensors(tmp / "model.safetensors", model.params(), flat, model.weights().dtype());
      write_hf_config(tmp / "config.json", model.config(), model.weights().dtype());
    }
    if (tokenizer != nullptr) tokenizer->save(tmp);
    nlohmann::json s = state;
    s["format"] = kCheckpointFormat;
    s["step"] = step;
    s["world_size"] = comm.world();
    write_file_atomic(tmp / "trainer_state.json", s.dump(2) + "\n");
    // The checksum of every file, read back from the disk (checksums.json: resume and llmgen check them).
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(tmp)) {
      if (e.is_regular_file()) files.push_back(e.path().filename().string());
    }
    std::sort(files.begin(), files.end());
    write_checksums(tmp, files);
    fsync_dir(tmp);
    if (before_commit) before_commit(tmp);
    commit_directory(tmp, final_dir);
    point_latest(run_dir, final_dir);
  });
  if (comm.rank() == 0) {
    // The new checkpoint is in place and `latest` names it: only now may older ones go.
    const auto all = step_dirs(run_dir);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) {
      if (all[i] != final_dir) remove_checkpoint(all[i]);
    }
  }
  comm.barrier();
  return final_dir;
}

void clean_run_dir(const fs::path& run_dir) {
  if (!fs::is_directory(run_dir)) return;
  static const std::regex tmp_dir("\\.step_[0-9]{8}\\.(tmp|deleting)"), aside("(step_[0-9]{8})\\.old\\.[0-9]+"),
      tmp_file(".*\\.tmp\\.[0-9]+|latest\\.tmp");
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(run_dir)) entries.push_back(e.path());
  for (const auto& p : entries) {
    const std::string n = p.filename().string();
    std::smatch m;
    if (std::regex_match(n, tmp_dir) || std::regex_match(n, tmp_file)) {
      fs::remove_all(p);
    } else if (std::regex_match(n, m, aside)) {
      // commit_directory was cut between its two renames: the aside copy is the complete one.
      const fs::path home = run_dir / m[1].str();
      if (fs::exists(home)) {
        fs::remove_all(p);
      } else {
        fs::rename(p, home);
      }
    }
  }
  fsync_dir(run_dir);
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  const fs::path link = run_dir / "latest";
  std::error_code ec;
  if (fs::is_symlink(link, ec)) {
    const fs::path target = run_dir / fs::read_symlink(link, ec);
    if (!ec && fs::exists(target / "trainer_state.json")) return target;
  }
  const auto all = step_dirs(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

void load_optimizer_state(const fs::path& ckpt, AdamW& opt) {
  std::vector<float> master(static_cast<size_t>(opt.count())), m(master.size()), v(master.size());
  read_optimizer_range(ckpt, opt.begin(), opt.count(), master, m, v);
  opt.load_state(master, m, v);
}

}  // namespace llm
