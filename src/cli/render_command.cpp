#include "cli/commands.h"

namespace fourbit {

void add_render_command(CLI::App& app) {}

}  // namespace fourbit
