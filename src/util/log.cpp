#include "util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "util/error.h"

namespace fourbit {

void init_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("fourbit");
    logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    auto parsed = spdlog::level::from_str(level);
    if (parsed == spdlog::level::off && level != "off") fail("unknown log level '{}'", level);
    logger->set_level(parsed);
    spdlog::set_default_logger(logger);
}

}  // namespace fourbit
