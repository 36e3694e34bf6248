// Where a forward's time goes, op by op (fourbit bench-model --profile-ops): when enabled, the
// forward waits for its device after every op and adds the wall time since the previous op to
// that op's total. Waiting serialises the device and keeps steps out of CUDA graphs, so this is
// for diagnosis, never for serving; disabled, a mark costs one branch.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "tensor/device.h"

namespace fourbit {

class OpProfile {
public:
    static OpProfile& global();
    void enable(bool on) { enabled_ = on; }
    bool enabled() const { return enabled_; }
    void add(const std::string& op, double seconds);
    std::map<std::string, double> totals() const;  // seconds per op
    void reset();

private:
    bool enabled_ = false;
    mutable std::mutex mutex_;
    std::map<std::string, double> totals_;
};

// The marks of one step.
class OpTimer {
public:
    explicit OpTimer(Device device);
    // The time since the previous mark (or the timer's start) goes to `op`.
    void mark(const char* op);

private:
    Device device_;
    bool enabled_;
    double last_ = 0;
};

}  // namespace fourbit
