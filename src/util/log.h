// Logging: spdlog to stderr, so that stdout stays clean for machine-readable output (JSON, ids).
#pragma once

#include <spdlog/spdlog.h>

namespace fourbit {

// Sends the default logger to stderr at the given level ("debug", "info", "warn", "error").
void init_logging(const std::string& level);

}  // namespace fourbit
