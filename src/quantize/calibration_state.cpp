#include "quantize/calibration_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "quantize/sha256.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kStateVersion = 1;

// Indices where `flags` is set, as a sorted list.
json index_list(const std::vector<uint8_t>& flags) {
    json list = json::array();
    for (size_t i = 0; i < flags.size(); ++i) {
        if (flags[i]) list.push_back(i);
    }
    return list;
}

void fsync_path(const std::string& path, int flags) {
    int fd = ::open(path.c_str(), flags);
    if (fd < 0) fail("cannot open {} to sync it", path);
    const int result = ::fsync(fd);
    ::close(fd);
    if (result != 0) fail("cannot sync {} to disk", path);
}

std::string read_text(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) fail("cannot read {}", path);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

}  // namespace

CalibrationState CalibrationState::empty(const std::string& queue_sha256, int64_t n_samples,
                                         int64_t n_modules, int64_t n_layers, int64_t n_experts,
                                         int64_t n_datasets) {
    CalibrationState state;
    state.queue_sha256 = queue_sha256;
    state.done.assign(n_samples, 0);
    state.deferred.assign(n_samples, 0);
    state.input_amax.assign(n_modules, 0.0f);
    state.expert_tokens.assign(n_layers * n_experts, 0);
    state.dataset_tokens.assign(n_datasets, 0);
    state.n_experts = n_experts;
    return state;
}

int64_t CalibrationState::n_done() const { return std::count(done.begin(), done.end(), 1); }
int64_t CalibrationState::n_deferred() const {
    return std::count(deferred.begin(), deferred.end(), 1);
}

std::string calibration_state_json(const CalibrationState& state,
                                   const std::vector<LinearModule>& modules) {
    FOURBIT_ASSERT(modules.size() == state.input_amax.size(), "state of another plan");
    json amax = json::object();
    for (size_t i = 0; i < modules.size(); ++i) {
        if (state.input_amax[i] > 0) amax[modules[i].prefix] = state.input_amax[i];
    }
    json out = {{"version", kStateVersion},
                {"queue_sha256", state.queue_sha256},
                {"n_samples", state.done.size()},
                {"done", index_list(state.done)},
                {"deferred", index_list(state.deferred)},
                {"n_experts", state.n_experts},
                {"expert_tokens", state.expert_tokens},
                {"dataset_tokens", state.dataset_tokens},
                {"input_amax", std::move(amax)}};
    return out.dump(1) + "\n";
}

CalibrationState parse_calibration_state(const std::string& text,
                                         const std::vector<LinearModule>& modules,
                                         const std::string& source) {
    try {
        const json in = json::parse(text);
        if (in.at("version").get<int>() != kStateVersion) {
            fail("{}: state version {} is not {}", source, in.at("version").dump(), kStateVersion);
        }
        CalibrationState state;
        state.queue_sha256 = in.at("queue_sha256").get<std::string>();
        const size_t n_samples = in.at("n_samples").get<size_t>();
        state.done.assign(n_samples, 0);
        state.deferred.assign(n_samples, 0);
        for (size_t i : in.at("done").get<std::vector<size_t>>()) state.done.at(i) = 1;
        for (size_t i : in.at("deferred").get<std::vector<size_t>>()) state.deferred.at(i) = 1;
        state.n_experts = in.at("n_experts").get<int64_t>();
        state.expert_tokens = in.at("expert_tokens").get<std::vector<int64_t>>();
        state.dataset_tokens = in.at("dataset_tokens").get<std::vector<int64_t>>();
        std::map<std::string, size_t> index;
        for (size_t i = 0; i < modules.size(); ++i) index.emplace(modules[i].prefix, i);
        state.input_amax.assign(modules.size(), 0.0f);
        for (auto it = in.at("input_amax").begin(); it != in.at("input_amax").end(); ++it) {
            auto found = index.find(it.key());
            if (found == index.end()) fail("{}: module {} is not in this model", source, it.key());
            state.input_amax[found->second] = it.value().get<float>();
        }
        return state;
    } catch (const json::exception& error) {
        fail("{}: malformed calibration state: {}", source, error.what());
    }
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
    const std::string temporary = path + ".tmp";
    {
        std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
        if (!file) fail("cannot write {}", temporary);
        file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        file.close();
        if (!file) fail("cannot write {}", temporary);
    }
    fsync_path(temporary, O_RDONLY);
    std::error_code error;
    fs::rename(temporary, path, error);
    if (error) fail("cannot rename {} to {}: {}", temporary, path, error.message());
    fsync_path(fs::path(path).parent_path().string(), O_RDONLY | O_DIRECTORY);
}

std::string CheckpointStore::write(const CalibrationState& state,
                                   const std::vector<LinearModule>& modules) {
    fs::create_directories(dir_);
    const std::string text = calibration_state_json(state, modules);
    const std::string path =
        (fs::path(dir_) / fmt::format("state-{:06d}.json", state.n_done())).string();
    // The state first, then its marker: a marker always describes a complete file.
    write_file_atomically(path, text);
    write_file_atomically(path + ".sha256", sha256_hex(text) + "\n");
    std::vector<std::string> states;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir_)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with("state-") && name.ends_with(".json")) states.push_back(entry.path());
    }
    std::sort(states.begin(), states.end());
    for (size_t i = 0; i + 2 < states.size(); ++i) {
        std::error_code ignored;
        fs::remove(states[i] + ".sha256", ignored);
        fs::remove(states[i], ignored);
    }
    return path;
}

std::optional<CalibrationState> CheckpointStore::load_latest(
    const std::vector<LinearModule>& modules, std::string* chosen) const {
    if (!fs::is_directory(dir_)) return std::nullopt;
    std::vector<std::string> states;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir_)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with("state-") && name.ends_with(".json")) states.push_back(entry.path());
    }
    std::sort(states.rbegin(), states.rend());
    for (const std::string& path : states) {
        const std::string text = read_text(path);
        std::error_code error;
        if (!fs::exists(path + ".sha256", error)) {
            spdlog::warn("{}: no sha256 marker (a write cut short); skipped", path);
            continue;
        }
        std::string marker = read_text(path + ".sha256");
        while (!marker.empty() && (marker.back() == '\n' || marker.back() == ' ')) marker.pop_back();
        if (marker != sha256_hex(text)) {
            spdlog::warn("{}: sha256 does not match its marker; skipped", path);
            continue;
        }
        if (chosen) *chosen = path;
        return parse_calibration_state(text, modules, path);
    }
    return std::nullopt;
}

}  // namespace fourbit
