#include "util/error.h"

#include <cstdio>
#include <cstdlib>

namespace fourbit {

void assertion_failed(const char* condition, const char* file, int line,
                      const std::string& message) {
    std::fprintf(stderr, "fourbit: internal error at %s:%d: assertion `%s` failed%s%s\n", file,
                 line, condition, message.empty() ? "" : ": ", message.c_str());
    std::abort();
}

}  // namespace fourbit
