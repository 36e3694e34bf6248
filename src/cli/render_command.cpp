// `fourbit render`: the exact prompt text an OpenAI chat-completions request renders to, as the
// server would feed it to the tokenizer.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "text/chat_template.h"
#include "util/error.h"

namespace fourbit {

void add_render_command(CLI::App& app) {
    struct Options {
        std::string model_dir;
        std::string request_path;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command =
        app.add_subcommand("render", "print the prompt a chat-completions request renders to");
    command->add_option("--model", options->model_dir,
                        "checkpoint directory whose chat template gives the default identity "
                        "(the built-in template when omitted)");
    command
        ->add_option("--request", options->request_path,
                     "OpenAI chat-completions request body, a JSON file (- for stdin)")
        ->required();
    command->callback([options] {
        const Options& o = *options;
        const ChatTemplate chat_template = o.model_dir.empty()
                                               ? ChatTemplate::builtin()
                                               : ChatTemplate::load_from_model_dir(o.model_dir);
        const std::string body = read_input_file("--request", o.request_path);
        std::string prompt;
        try {
            prompt = chat_template.render(parse_chat_request_text(body));
        } catch (const Error& error) {
            fail("{}: {}", o.request_path == "-" ? "stdin" : o.request_path, error.what());
        }
        // The prompt exactly: no newline added.
        std::fwrite(prompt.data(), 1, prompt.size(), stdout);
        std::fflush(stdout);
    });
}

}  // namespace fourbit
