// The chat format against the template itself: golden prompts made by jinja2 from the shipped
// template (tools/reference/make_chat_reference.py -> tests/golden/chat/), Python's json.dumps
// on numbers and strings, request validation errors, identities from checkpoint templates, and
// `fourbit render` through the real binary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.h"
#include "text/chat_template.h"
#include "text/python_json.h"
#include "util/error.h"

namespace fourbit {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

const fs::path kGoldenDir = fs::path(FOURBIT_SOURCE_DIR) / "tests" / "golden" / "chat";
const fs::path kShippedTemplate =
    fs::path(FOURBIT_SOURCE_DIR) / "models" / "templates" / "minimax_m2_chat_template.jinja";

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in) << "cannot open " << path;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

using test_support::TempDir;

// The message of the Error `body` throws, or "" when it throws none.
template <typename Body>
std::string error_of(Body body) {
    try {
        body();
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

// --- golden prompts ---------------------------------------------------------------------------

struct GoldenCase {
    std::string name;
    std::string model_dir;  // under tests/golden/chat/, "" for the built-in template
    std::string request;    // the request body's JSON text
    std::string expected;   // the prompt, unless the template raises
    std::string error;      // what the template raises
};

// gtest names a failing parameter by this instead of its bytes.
void PrintTo(const GoldenCase& c, std::ostream* out) { *out << c.name; }

std::vector<GoldenCase> load_golden_cases() {
    std::vector<GoldenCase> cases;
    std::ifstream in(kGoldenDir / "cases.json", std::ios::binary);
    if (!in) return cases;  // the test below reports it
    const nlohmann::json all = nlohmann::json::parse(in);
    for (const nlohmann::json& item : all) {
        GoldenCase c;
        c.name = item.at("name").get<std::string>();
        if (item.at("model_dir").is_string()) c.model_dir = item.at("model_dir").get<std::string>();
        c.request = item.at("request").get<std::string>();
        if (item.contains("expected")) c.expected = item.at("expected").get<std::string>();
        if (item.contains("error")) c.error = item.at("error").get<std::string>();
        cases.push_back(c);
    }
    return cases;
}

ChatTemplate template_for(const GoldenCase& c) {
    return c.model_dir.empty()
               ? ChatTemplate::builtin()
               : ChatTemplate::load_from_model_dir((kGoldenDir / c.model_dir).string());
}

class GoldenChat : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenChat, RendersExactlyAsTheTemplate) {
    const GoldenCase& c = GetParam();
    const ChatRequest request = parse_chat_request_text(c.request);
    const ChatTemplate chat_template = template_for(c);
    if (!c.error.empty()) {
        const std::string error = error_of([&] { chat_template.render(request); });
        EXPECT_NE(error.find("no previous assistant message with a tool call"), std::string::npos)
            << "template raises: " << c.error << "\nwe said: " << error;
        EXPECT_NE(error.find("messages["), std::string::npos) << error;
        return;
    }
    EXPECT_EQ(chat_template.render(request), c.expected);
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenChat, ::testing::ValuesIn(load_golden_cases()),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                             return info.param.name;
                         });

TEST(ChatGolden, HasTheCases) {
    const std::vector<GoldenCase> cases = load_golden_cases();
    EXPECT_GE(cases.size(), 30u) << "missing or short " << kGoldenDir / "cases.json";
}

TEST(ChatGolden, RaisingCasesNameTheToolMessage) {
    // error_tool_after_plain_assistant: messages[4] is the tool message after a plain reply.
    for (const GoldenCase& c : load_golden_cases()) {
        if (c.name != "error_tool_after_plain_assistant") continue;
        const std::string error =
            error_of([&] { ChatTemplate::builtin().render(parse_chat_request_text(c.request)); });
        EXPECT_NE(error.find("messages[4] has role tool"), std::string::npos) << error;
        return;
    }
    FAIL() << "case error_tool_after_plain_assistant not found";
}

TEST(ChatGolden, GenerationPromptArgumentOverridesTheRequest) {
    const ChatRequest request =
        parse_chat_request_text(R"({"messages": [{"role": "user", "content": "Hi"}]})");
    const std::string base =
        "]~!b[]~b]system\nYou are a helpful assistant.[e~[\n]~b]user\nHi[e~[\n";
    EXPECT_EQ(ChatTemplate::builtin().render(request), base + "]~b]ai\n<think>\n");
    EXPECT_EQ(ChatTemplate::builtin().render(request, false), base);
}

// --- json.dumps ---------------------------------------------------------------------------------

TEST(PythonJson, MatchesJsonDumpsOnTheGoldenCorpus) {
    const nlohmann::json corpus = nlohmann::json::parse(read_file(kGoldenDir / "json_dumps.json"));
    ASSERT_GE(corpus.size(), 300u);
    for (const nlohmann::json& item : corpus) {
        const std::string text = item.at("json").get<std::string>();
        EXPECT_EQ(python_json_dumps(parse_json_like_python(text, "corpus")),
                  item.at("python").get<std::string>())
            << "json.loads/json.dumps of " << text;
    }
}

TEST(PythonJson, FloatRepr) {
    EXPECT_EQ(python_float_repr(1.0), "1.0");
    EXPECT_EQ(python_float_repr(1e-7), "1e-07");
    EXPECT_EQ(python_float_repr(1e16), "1e+16");
    EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
    EXPECT_EQ(python_float_repr(0.0001), "0.0001");
    EXPECT_EQ(python_float_repr(0.00001), "1e-05");
    EXPECT_EQ(python_float_repr(-0.0), "-0.0");
    EXPECT_EQ(python_float_repr(0.1 + 0.2), "0.30000000000000004");
    EXPECT_EQ(python_float_repr(1.5e300), "1.5e+300");
    EXPECT_EQ(python_float_repr(123456.789), "123456.789");
}

TEST(PythonJson, RefusesWhatIsNotJson) {
    for (const char* text :
         {"NaN", "Infinity", "1e400", "{\"a\": 1,}", "[1 2]", "\"\\ud800\"", "01", ""}) {
        EXPECT_NE(error_of([&] { parse_json_like_python(text, "here"); }).find("here: "),
                  std::string::npos)
            << text;
    }
}

// --- request validation ---------------------------------------------------------------------

struct BadRequest {
    const char* body;
    const char* message;  // a piece of the expected error message
};

TEST(ChatRequestParse, RejectsMalformedBodiesNamingThePath) {
    const BadRequest cases[] = {
        {R"([1, 2])", "the request body must be a JSON object"},
        {R"({"messages": )", "the request body is not valid JSON: parse error at line 1"},
        {R"({})", "messages is missing"},
        {R"({"messages": []})", "messages is empty"},
        {R"({"messages": {"role": "user"}})", "messages must be a list, not an object"},
        {R"({"messages": ["hi"]})", "messages[0] must be an object, not a string (\"hi\")"},
        {R"({"messages": [{"content": "hi"}]})", "messages[0].role is missing"},
        {R"({"messages": [{"role": "developer", "content": "x"}]})",
         "messages[0].role \"developer\" is not supported"},
        {R"({"messages": [{"role": 7, "content": "x"}]})",
         "messages[0].role must be a string, not a number (7)"},
        {R"({"messages": [{"role": "user", "content": {"text": "x"}}]})",
         "messages[0].content must be a string, a list of content parts or null"},
        {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
         "messages[0].content[0].type \"image_url\" is not supported"},
        {R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})",
         "messages[0].content[0].text is missing"},
        {R"({"messages": [{"role": "user", "content": [{"text": "x"}]}]})",
         "messages[0].content[0].type is missing"},
        {R"({"messages": [{"role": "user", "content": [42]}]})",
         "messages[0].content[0] must be an object, not a number (42)"},
        {R"({"messages": [{"role": "assistant", "content": "x", "reasoning_content": 1}]})",
         "messages[0].reasoning_content must be a string"},
        {R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": {}}]})",
         "messages[1].tool_calls must be a list, not an object"},
        {R"({"messages": [{"role": "user", "content": "x", "tool_calls": [{}]}]})",
         "messages[0].tool_calls: only assistant messages have tool calls"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "a"}]}]})",
         "messages[0].tool_calls[0].function is missing"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]})",
         "messages[0].tool_calls[0].function.name is missing"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"type": "custom", "function": {"name": "f"}}]}]})",
         "messages[0].tool_calls[0].type \"custom\" is not supported"},
        {R"({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"},
             {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\": 1"}}]}]})",
         "messages[2].tool_calls[0].function.arguments is not valid JSON: parse error at line 1, "
         "column 8"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1, 2]"}}]}]})",
         "messages[0].tool_calls[0].function.arguments must be a JSON object (parameter names to "
         "values), not an array ([1, 2])"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 5}}]}]})",
         "messages[0].tool_calls[0].function.arguments must be a JSON string (or an object), not a "
         "number (5)"},
        {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{\"x\": NaN}"}}]}]})",
         "messages[0].tool_calls[0].function.arguments is not valid JSON"},
        {R"({"messages": [{"role": "system", "content": "x", "current_date": 20251119}]})",
         "messages[0].current_date must be a string"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": {}})",
         "tools must be a list, not an object"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]})",
         "tools[0].function is missing"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"description": "d"}}]})",
         "tools[0].function.name is missing"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]})",
         "tools[0].type \"web_search\" is not supported"},
        {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": "f", "parameters": "x"}}]})",
         "tools[0].function.parameters must be an object, not a string"},
        {R"({"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": "yes"})",
         "add_generation_prompt must be true or false, not a string (\"yes\")"},
        {R"({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true})",
         "continue_final_message is not supported"},
        {R"({"messages": [{"role": "user", "content": "x"}], "chat_template": "{{ x }}"})",
         "chat_template: a request cannot bring its own template"},
        {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": []})",
         "chat_template_kwargs must be an object"},
        {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"model_identity": 1}})",
         "chat_template_kwargs.model_identity must be a string"},
        {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"tools": []}})",
         "chat_template_kwargs.tools is not allowed"},
    };
    for (const BadRequest& c : cases) {
        const std::string error = error_of([&] { parse_chat_request_text(c.body); });
        EXPECT_NE(error.find(c.message), std::string::npos)
            << "body: " << c.body << "\nexpected: " << c.message << "\ngot: " << error;
    }
}

TEST(ChatRequestParse, KeepsWhatTheRendererNeeds) {
    const ChatRequest request = parse_chat_request_text(R"({
        "model": "m", "temperature": 0.5, "add_generation_prompt": false,
        "chat_template_kwargs": {"model_identity": "Me.", "enable_thinking": true},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}],
        "messages": [
          {"role": "system", "content": "S", "current_date": "today"},
          {"role": "user", "content": [{"type": "text", "text": "a"}, "b"], "name": "bob"},
          {"role": "assistant", "content": null, "reasoning": "r",
           "tool_calls": [{"id": "c1", "type": "function",
                           "function": {"name": "f", "arguments": "{\"y\": 1, \"x\": [2]}"}}]},
          {"role": "tool", "tool_call_id": "c1", "content": "out"}]})");
    EXPECT_FALSE(request.add_generation_prompt);
    ASSERT_TRUE(request.model_identity);
    EXPECT_EQ(*request.model_identity, "Me.");
    ASSERT_EQ(request.tools.size(), 1u);
    EXPECT_EQ(python_json_dumps(request.tools[0]["function"]),
              R"({"name": "f", "parameters": {"z": 1, "a": 2}})");
    ASSERT_EQ(request.messages.size(), 4u);
    EXPECT_EQ(request.messages[0].current_date.value_or(""), "today");
    EXPECT_TRUE(request.messages[1].content.is_list);
    EXPECT_EQ(request.messages[1].content.visible_text(), "ab");
    EXPECT_EQ(request.messages[1].name.value_or(""), "bob");
    const ChatMessage& assistant = request.messages[2];
    EXPECT_EQ(assistant.role, ChatRole::assistant);
    EXPECT_FALSE(assistant.content.is_truthy());
    EXPECT_EQ(assistant.reasoning_content.value_or(""), "r");
    ASSERT_EQ(assistant.tool_calls.size(), 1u);
    EXPECT_EQ(assistant.tool_calls[0].id, "c1");
    EXPECT_EQ(assistant.tool_calls[0].name, "f");
    EXPECT_EQ(python_json_dumps(assistant.tool_calls[0].arguments), R"({"y": 1, "x": [2]})");
    EXPECT_EQ(request.messages[3].tool_call_id.value_or(""), "c1");
}

// --- identities ---------------------------------------------------------------------------------

TEST(ChatTemplateIdentity, BuiltinIsTheShippedTemplate) {
    const ChatTemplate builtin = ChatTemplate::builtin();
    EXPECT_EQ(builtin.identity(), "You are a helpful assistant.");
    EXPECT_TRUE(builtin.matches_builtin());
    // The compiled-in copy is the file in models/templates/.
    EXPECT_EQ(builtin_chat_template_text(), read_file(kShippedTemplate));
    const ChatTemplate from_file =
        ChatTemplate::from_template_text(read_file(kShippedTemplate), kShippedTemplate.string());
    EXPECT_TRUE(from_file.matches_builtin());
    EXPECT_EQ(from_file.identity(), builtin.identity());
}

TEST(ChatTemplateIdentity, FromCheckpointTemplates) {
    const ChatTemplate m27 = ChatTemplate::load_from_model_dir((kGoldenDir / "m2_7").string());
    EXPECT_EQ(m27.identity(),
              "You are a helpful assistant. Your name is MiniMax-M2.7 and is built by MiniMax.");
    EXPECT_TRUE(m27.matches_builtin());
    EXPECT_EQ(m27.source(), (kGoldenDir / "m2_7" / "chat_template.jinja").string());

    const ChatTemplate quoted =
        ChatTemplate::load_from_model_dir((kGoldenDir / "quoted_identity").string());
    EXPECT_EQ(quoted.identity(),
              "You are \"K\xC3\xA9\" \xC3\xA9"
              "A l'assistant,\tcalled \\MiniMax\\.\nBe brief. "
              "\xE4\xBD\xA0\xE5\xA5\xBD");
    EXPECT_TRUE(quoted.matches_builtin());

    const ChatTemplate named =
        ChatTemplate::load_from_model_dir((kGoldenDir / "named_templates").string());
    EXPECT_EQ(named.identity(), "Named default identity.");
}

TEST(ChatTemplateIdentity, JinjaLiteralEscapes) {
    const std::string shipped = read_file(kShippedTemplate);
    const std::string line = "\"You are a helpful assistant.\"";
    ASSERT_NE(shipped.find(line), std::string::npos);
    auto identity_of = [&](const std::string& literal) {
        std::string text = shipped;
        text.replace(text.find(line), line.size(), literal);
        return ChatTemplate::from_template_text(text, "variant").identity();
    };
    EXPECT_EQ(identity_of(R"("a\x41\u00e9\U0001F600\101\q\\")"),
              "aA\xC3\xA9\xF0\x9F\x98\x80"
              "A\\q\\");
    EXPECT_EQ(identity_of("'two\\\nlines\r\nhere'"), "twolines\nhere");
    // A backslash before a non-ASCII character: Python escapes the character first, so the
    // backslash escapes that escape's backslash.
    EXPECT_EQ(identity_of("\"\\\xC3\xA9\""), "\\xe9");
    EXPECT_NE(error_of([&] { identity_of(R"("\ud83d")"); }).find("not a character"),
              std::string::npos);
    EXPECT_NE(error_of([&] { identity_of(R"("a" ~ "b")"); }).find("not a string literal"),
              std::string::npos);
}

TEST(ChatTemplateIdentity, TruncatedTemplatesAreErrorsNotCrashes) {
    // The shipped template with its identity line moved to the very end, cut short there.
    std::string text = read_file(kShippedTemplate);
    const std::string line = "{%- set model_identity = \"You are a helpful assistant.\" -%}";
    ASSERT_NE(text.find(line), std::string::npos);
    text.erase(text.find(line), line.size());
    EXPECT_NE(error_of([&] {
                  ChatTemplate::from_template_text(text + "{%- set model_identity = \"You", "cut");
              }).find("cut: unterminated model_identity literal"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  ChatTemplate::from_template_text(text + "{%- set model_identity = ", "cut");
              }).find("cut: model_identity is set to an expression"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  ChatTemplate::from_template_text(text + "{%- set model_identity = 'x'", "cut");
              }).find("cut: model_identity is set to an expression"),
              std::string::npos);
}

TEST(ChatTemplateIdentity, WarnsButAcceptsOtherwiseDifferentMiniMaxTemplates) {
    std::string text = read_file(kShippedTemplate);
    text += "{#- a comment that changes nothing -#}\n";
    const ChatTemplate changed = ChatTemplate::from_template_text(text, "changed");
    EXPECT_FALSE(changed.matches_builtin());
    EXPECT_EQ(changed.identity(), "You are a helpful assistant.");
}

TEST(ChatTemplateIdentity, RefusesOtherTemplates) {
    const std::string chatml =
        "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    const std::string error =
        error_of([&] { ChatTemplate::from_template_text(chatml, "qwen/chat_template.jinja"); });
    EXPECT_NE(error.find("qwen/chat_template.jinja: not the MiniMax-M2 chat template"),
              std::string::npos)
        << error;

    std::string no_identity = read_file(kShippedTemplate);
    const std::string line = "{%- set model_identity = \"You are a helpful assistant.\" -%}";
    no_identity.erase(no_identity.find(line), line.size());
    EXPECT_NE(error_of([&] {
                  ChatTemplate::from_template_text(no_identity, "x");
              }).find("x: the template sets no default model_identity"),
              std::string::npos);
}

TEST(ChatTemplateIdentity, ModelDirectories) {
    TempDir dir;
    // No template at all: the built-in one.
    EXPECT_EQ(ChatTemplate::load_from_model_dir(dir.path().string()).source(), "built-in");
    // tokenizer_config.json without a chat_template: the built-in one.
    write_file(dir.path() / "tokenizer_config.json", R"({"model_max_length": 10})");
    EXPECT_EQ(ChatTemplate::load_from_model_dir(dir.path().string()).source(), "built-in");
    // chat_template.jinja wins over tokenizer_config.json.
    write_file(dir.path() / "tokenizer_config.json", R"({"chat_template": "{{ nonsense }}"})");
    EXPECT_NE(error_of([&] {
                  ChatTemplate::load_from_model_dir(dir.path().string());
              }).find("tokenizer_config.json:chat_template: not the MiniMax-M2 chat template"),
              std::string::npos);
    write_file(dir.path() / "chat_template.jinja",
               read_file(kGoldenDir / "m2_7" / "chat_template.jinja"));
    EXPECT_NE(ChatTemplate::load_from_model_dir(dir.path().string()).identity().find("M2.7"),
              std::string::npos);

    fs::remove(dir.path() / "chat_template.jinja");
    write_file(dir.path() / "tokenizer_config.json",
               R"({"chat_template": [{"name": "rag", "template": "x"}]})");
    EXPECT_NE(error_of([&] {
                  ChatTemplate::load_from_model_dir(dir.path().string());
              }).find("lists templates (rag) but none is named \"default\""),
              std::string::npos);
    write_file(dir.path() / "tokenizer_config.json", "{not json");
    EXPECT_NE(error_of([&] {
                  ChatTemplate::load_from_model_dir(dir.path().string());
              }).find("tokenizer_config.json is not valid JSON"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  ChatTemplate::load_from_model_dir((dir.path() / "nope").string());
              }).find("nope: not a directory"),
              std::string::npos);
}

// --- fourbit render -----------------------------------------------------------------------------

struct RenderRun {
    int exit_code = -1;
    std::string out, err;
};

RenderRun run_render(const std::vector<std::string>& args, const TempDir& dir) {
    std::string command = std::string("'") + FOURBIT_BINARY + "' render";
    for (const std::string& arg : args) command += " '" + arg + "'";
    const fs::path out = dir.path() / "stdout", err = dir.path() / "stderr";
    command += " >'" + out.string() + "' 2>'" + err.string() + "'";
    RenderRun run;
    const int status = std::system(command.c_str());
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.out = read_file(out);
    run.err = read_file(err);
    return run;
}

TEST(RenderCommand, PrintsThePromptExactly) {
    TempDir dir;
    for (const GoldenCase& c : load_golden_cases()) {
        if (c.name != "interleaved_thinking_tool_loop" && c.name != "identity_m2_7_template") {
            continue;
        }
        const fs::path request = dir.path() / (c.name + ".json");
        write_file(request, c.request);
        std::vector<std::string> args = {"--request", request.string()};
        if (!c.model_dir.empty()) {
            args.insert(args.begin(), {"--model", (kGoldenDir / c.model_dir).string()});
        }
        const RenderRun run = run_render(args, dir);
        EXPECT_EQ(run.exit_code, 0) << c.name << ": " << run.err;
        EXPECT_EQ(run.out, c.expected) << c.name;
    }
}

TEST(RenderCommand, BadRequestIsOneErrorLine) {
    TempDir dir;
    const fs::path request = dir.path() / "bad.json";
    write_file(
        request,
        R"({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}]})");
    RenderRun run = run_render({"--request", request.string()}, dir);
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(run.out, "");
    EXPECT_NE(run.err.find("bad.json: messages[1] has role tool"), std::string::npos) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;

    write_file(request, R"({"messages": [{"role": "user", "content": 5}]})");
    run = run_render({"--request", request.string()}, dir);
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.err.find("bad.json: messages[0].content must be a string"), std::string::npos)
        << run.err;

    run = run_render({"--request", (dir.path() / "missing.json").string()}, dir);
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.err.find("missing.json"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace fourbit
