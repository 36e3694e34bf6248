// Reading the whole of a file that a flag names, "-" meaning standard input.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "util/error.h"

namespace fourbit {

std::string read_input_file(const std::string& flag, const std::string& path) {
    std::ostringstream text;
    if (path == "-") {
        text << std::cin.rdbuf();
        return text.str();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{} {}: cannot open: {}", flag, path, std::strerror(errno));
    text << in.rdbuf();
    if (in.bad()) fail("{} {}: cannot read", flag, path);
    return text.str();
}

}  // namespace fourbit
