#include "cli/commands.h"

namespace fourbit {

void add_tokenize_commands(CLI::App& app) {}

}  // namespace fourbit
