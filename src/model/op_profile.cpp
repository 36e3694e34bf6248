#include "model/op_profile.h"

#include <chrono>

#include "tensor/cuda_memory.h"

namespace fourbit {

namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

OpProfile& OpProfile::global() {
    static OpProfile profile;
    return profile;
}

void OpProfile::add(const std::string& op, double seconds) {
    std::lock_guard lock(mutex_);
    totals_[op] += seconds;
}

std::map<std::string, double> OpProfile::totals() const {
    std::lock_guard lock(mutex_);
    return totals_;
}

void OpProfile::reset() {
    std::lock_guard lock(mutex_);
    totals_.clear();
}

OpTimer::OpTimer(Device device) : device_(device), enabled_(OpProfile::global().enabled()) {
    if (!enabled_) return;
    if (device_.is_cuda()) cuda_synchronize(device_.index);
    last_ = now_s();
}

void OpTimer::mark(const char* op) {
    if (!enabled_) return;
    if (device_.is_cuda()) cuda_synchronize(device_.index);
    const double now = now_s();
    OpProfile::global().add(op, now - last_);
    last_ = now;
}

}  // namespace fourbit
