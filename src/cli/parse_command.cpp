#include "cli/commands.h"

namespace fourbit {

void add_parse_command(CLI::App& app) {}

}  // namespace fourbit
