// fourbit: one binary, one subcommand per job (DESIGN.md). Bad input of any kind ends in one
// line on stderr naming what is wrong and a non-zero exit, never a crash.
#include <cstdio>
#include <exception>
#include <new>

#include "cli/commands.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
    CLI::App app{"fourbit: MiniMax-M2 in NVFP4 -- quantize, serve, measure"};
    app.require_subcommand(1);
    app.fallthrough();  // global options (--log-level) may also follow the subcommand
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
    fourbit::add_make_model_command(app);
    fourbit::add_logits_command(app);
    fourbit::add_generate_command(app);
    fourbit::add_tokenize_commands(app);
    fourbit::add_render_command(app);
    fourbit::add_parse_command(app);
    fourbit::add_inspect_command(app);
    fourbit::add_convert_command(app);
    fourbit::add_serve_command(app);
    fourbit::add_bench_command(app);
    fourbit::add_bench_model_command(app);
    fourbit::add_quantize_command(app);
    fourbit::add_eval_command(app);
    app.parse_complete_callback([&log_level] { fourbit::init_logging(log_level); });
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        return app.exit(error);
    } catch (const fourbit::Error& error) {
        std::fprintf(stderr, "fourbit: error: %s\n", error.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "fourbit: error: out of memory\n");
        return 1;
    } catch (const std::exception& error) {
        std::fprintf(stderr, "fourbit: error: %s\n", error.what());
        return 1;
    }
    return 0;
}
