#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "util/log.h"

namespace fourbit {

namespace {

std::string amount_text(double amount, const std::string& unit) {
    if (unit == "B") return fmt::format("{:.1f} MB", amount / 1e6);
    return fmt::format("{:.0f} {}", amount, unit);
}

std::string rate_text(double per_second, const std::string& unit) {
    if (unit == "B") return fmt::format("{:.1f} MB/s", per_second / 1e6);
    return fmt::format("{:.1f} {}/s", per_second, unit);
}

}  // namespace

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      terminal_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(uint64_t amount) {
    done_ = std::min(total_, done_ + amount);
    draw(false);
}

void Progress::finish() {
    if (finished_) return;
    finished_ = true;
    done_ = total_;
    draw(true);
}

void Progress::draw(bool final_line) {
    auto now = std::chrono::steady_clock::now();
    double elapsed_s = std::chrono::duration<double>(now - start_).count();
    double fraction = total_ == 0 ? 1.0 : static_cast<double>(done_) / static_cast<double>(total_);
    double rate = elapsed_s > 0 ? static_cast<double>(done_) / elapsed_s : 0.0;
    double eta_s = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0.0;
    if (terminal_) {
        if (!final_line && now - last_draw_ < std::chrono::milliseconds(100)) return;
        if (final_line && elapsed_s < 1.0 && last_draw_ == start_) return;
        last_draw_ = now;
        constexpr int kWidth = 30;
        int filled = static_cast<int>(fraction * kWidth);
        std::string bar(filled, '#');
        bar.append(kWidth - filled, '.');
        std::fprintf(stderr, "\r%s [%s] %3.0f%% %s / %s  %s  ETA %.0fs%s", label_.c_str(),
                     bar.c_str(), fraction * 100, amount_text(done_, unit_).c_str(),
                     amount_text(total_, unit_).c_str(), rate_text(rate, unit_).c_str(), eta_s,
                     final_line ? "\n" : "");
        std::fflush(stderr);
        return;
    }
    // Work that ends within a second leaves no lines in a log.
    if (elapsed_s < 1.0) return;
    int decile = static_cast<int>(fraction * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    spdlog::info("{}: {:.0f}% ({} of {}, {}, ETA {:.0f}s)", label_, fraction * 100,
                 amount_text(done_, unit_), amount_text(total_, unit_), rate_text(rate, unit_),
                 eta_s);
}

}  // namespace fourbit
