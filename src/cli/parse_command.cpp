// `fourbit parse`: model output text -> the OpenAI assistant message (reasoning, content, tool
// calls), through the same parsers the server uses; --stream-chunk-bytes shows the deltas.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "text/message_parser.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit {

namespace {

// The `tools` array of a file holding either that array or a request body with a `tools` field.
nlohmann::json read_tools(const std::string& path) {
    const std::string text = read_input_file("--tools", path);
    nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) fail("--tools {}: not valid JSON", path);
    if (json.is_object()) {
        auto tools = json.find("tools");
        if (tools == json.end()) {
            fail("--tools {}: expected a tools array or an object with a \"tools\" field", path);
        }
        json = *tools;
    }
    if (!json.is_array()) {
        fail("--tools {}: the tools must be an array, not a JSON {}", path, json.type_name());
    }
    return json;
}

void print_json(const nlohmann::json& json, int indent) {
    const std::string text =
        json.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", text.c_str());
}

}  // namespace

void add_parse_command(CLI::App& app) {
    struct Options {
        std::string text_file;
        std::string tools_file;
        std::string reasoning_parser = "minimax_m2";
        std::string tool_call_parser = "minimax_m2";
        bool prompt_opens_think = true;
        size_t stream_chunk_bytes = 0;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand(
        "parse", "parse model output into an OpenAI assistant message (reasoning, tool calls)");
    command->add_option("--text-file", options->text_file, "the generated text ('-': stdin)")
        ->required();
    command->add_option("--tools", options->tools_file,
                        "JSON file: the request's tools array, or a request body with `tools`");
    command
        ->add_option("--reasoning-parser", options->reasoning_parser,
                     "none, minimax_m2 or minimax_m2_append_think")
        ->capture_default_str();
    command->add_option("--tool-call-parser", options->tool_call_parser, "none or minimax_m2")
        ->capture_default_str();
    command
        ->add_option("--prompt-opens-think", options->prompt_opens_think,
                     "the prompt ended with <think> (the official template's does)")
        ->capture_default_str();
    command
        ->add_option("--stream-chunk-bytes", options->stream_chunk_bytes,
                     "stream the text in chunks of this many bytes and print each delta as "
                     "a JSON line (0: print the whole message)")
        ->capture_default_str();
    command->callback([options] {
        const Options& o = *options;
        ParserOptions parser_options;
        parser_options.reasoning = reasoning_parser_from_name(o.reasoning_parser);
        parser_options.tools = tool_call_parser_from_name(o.tool_call_parser);
        parser_options.prompt_opens_think = o.prompt_opens_think;
        if (!o.tools_file.empty()) parser_options.tool_schemas = read_tools(o.tools_file);
        const std::string text = read_input_file("--text-file", o.text_file);

        bool truncated = false;
        if (o.stream_chunk_bytes > 0) {
            StreamingMessageParser parser(parser_options);
            for (size_t at = 0; at < text.size(); at += o.stream_chunk_bytes) {
                MessageDelta delta =
                    parser.push(std::string_view(text).substr(at, o.stream_chunk_bytes));
                if (!delta.empty()) print_json(delta.to_openai_json(), -1);
            }
            MessageDelta delta = parser.finish();
            if (!delta.empty()) print_json(delta.to_openai_json(), -1);
            truncated = parser.truncated_tool_call();
        } else {
            ParsedMessage message = parse_message(text, parser_options);
            print_json(message.to_openai_json(), 2);
            truncated = message.truncated_tool_call;
        }
        if (truncated) {
            spdlog::warn(
                "the text ends inside a tool call; the unfinished call is left out (a server "
                "reports finish_reason \"length\")");
        }
    });
}

}  // namespace fourbit
