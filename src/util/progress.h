// Progress of long work (loading, writing, quantizing, benchmarking): a bar with rate and ETA
// when stderr is a terminal, plain log lines (about one every 10%) otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace fourbit {

class Progress {
public:
    // `total` is in `unit`s (e.g. "B" for bytes, "tensors"); byte totals print as MB.
    Progress(std::string label, uint64_t total, std::string unit);
    ~Progress();
    void advance(uint64_t amount);
    void finish();

private:
    void draw(bool final_line);
    std::string label_;
    uint64_t total_;
    uint64_t done_ = 0;
    std::string unit_;
    bool terminal_;
    bool finished_ = false;
    int last_decile_ = -1;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace fourbit
