// Request validation and translation: OpenAI bodies -> specs (every field type-checked and
// named in its 400), prompts with forced tool calls, the context check, engine requests.
#include <gtest/gtest.h>

#include <string>

#include "server/api_error.h"
#include "server/prompt.h"
#include "server/request_schema.h"
#include "server/test_tokenizer.h"
#include "text/python_json.h"

namespace fourbit {
namespace {

using ordered_json = nlohmann::ordered_json;

RequestLimits limits() {
    RequestLimits l;
    l.served_model_names = {"tiny", "alias"};
    l.enable_auto_tool_choice = true;
    return l;
}

ordered_json body(std::string_view text) { return parse_json_like_python(text, "test body"); }

constexpr std::string_view kUser = R"("messages": [{"role": "user", "content": "hi"}])";

ordered_json chat_body(std::string_view extra = "") {
    std::string text = "{" + std::string(kUser);
    if (!extra.empty()) text += ", " + std::string(extra);
    return body(text + "}");
}

constexpr std::string_view kTools =
    R"("tools": [{"type": "function", "function": {"name": "get_weather", "parameters":
        {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "add", "parameters":
        {"type": "object", "properties": {"a": {"type": "integer"}}}}}])";

// The ApiError `call` throws; fails the test when it throws none.
template <typename Call>
ApiError error_of(Call&& call) {
    try {
        call();
    } catch (const ApiError& error) {
        return error;
    }
    ADD_FAILURE() << "no ApiError thrown";
    return ApiError(0, "", "");
}

TEST(ServerRequestSchema, ChatDefaults) {
    const ChatCompletionSpec spec = parse_chat_completion_request(chat_body(), limits());
    EXPECT_EQ(spec.generation.model, "tiny");
    EXPECT_FALSE(spec.generation.stream);
    EXPECT_EQ(spec.generation.n, 1);
    EXPECT_FALSE(spec.generation.max_tokens);
    EXPECT_FALSE(spec.generation.sampling.temperature);
    EXPECT_TRUE(spec.generation.stop.empty());
    EXPECT_EQ(spec.tool_choice.kind, ToolChoiceKind::none);
    ASSERT_EQ(spec.chat.messages.size(), 1u);
    EXPECT_TRUE(spec.tool_schemas.is_null());
}

TEST(ServerRequestSchema, ChatFieldsAreRead) {
    const ChatCompletionSpec spec = parse_chat_completion_request(
        chat_body(R"("model": "alias", "stream": true, "stream_options": {"include_usage": true},
            "n": 3, "max_tokens": 7, "max_completion_tokens": 9, "temperature": 0.5, "top_p": 0.9,
            "top_k": 20, "min_p": 0.1, "seed": -1, "stop": ["END", ""], "logprobs": true,
            "top_logprobs": 4, "ignore_eos": true, "stop_token_ids": [5, 6], "presence_penalty": 0,
            "logit_bias": {}, "response_format": {"type": "text"}, "cache_prompt": false,
            "some_future_field": {"x": 1})"),
        limits());
    const GenerationSpec& g = spec.generation;
    EXPECT_EQ(g.model, "alias");
    EXPECT_TRUE(g.stream);
    EXPECT_TRUE(g.include_usage);
    EXPECT_EQ(g.n, 3);
    EXPECT_EQ(g.max_tokens, 9) << "max_completion_tokens wins over max_tokens";
    EXPECT_EQ(g.sampling.temperature, 0.5);
    EXPECT_EQ(g.sampling.top_p, 0.9);
    EXPECT_EQ(g.sampling.top_k, 20);
    EXPECT_EQ(g.sampling.min_p, 0.1);
    EXPECT_EQ(g.sampling.seed, ~uint64_t{0});
    EXPECT_EQ(g.stop, std::vector<std::string>{"END"}) << "empty stop strings are dropped";
    EXPECT_TRUE(g.logprobs);
    EXPECT_EQ(g.top_logprobs, 4);
    EXPECT_TRUE(g.ignore_eos);
    EXPECT_EQ(g.stop_token_ids, (std::vector<int64_t>{5, 6}));
}

TEST(ServerRequestSchema, IntegralFloatsAreIntegers) {
    const ChatCompletionSpec spec =
        parse_chat_completion_request(chat_body(R"("max_tokens": 5.0, "n": 2.0)"), limits());
    EXPECT_EQ(spec.generation.max_tokens, 5);
    EXPECT_EQ(spec.generation.n, 2);
}

TEST(ServerRequestSchema, WrongTypesNameTheField) {
    struct Case {
        std::string field, json;
    };
    for (const Case& c : std::vector<Case>{
             {"temperature", R"("temperature": "hot")"},
             {"max_tokens", R"("max_tokens": 1.5)"},
             {"max_tokens", R"("max_tokens": "10")"},
             {"n", R"("n": true)"},
             {"stream", R"("stream": "yes")"},
             {"top_p", R"("top_p": [1])"},
             {"stop", R"("stop": 5)"},
             {"stop", R"("stop": ["a", 1])"},
             {"logprobs", R"("logprobs": 1)"},
             {"seed", R"("seed": "x")"},
             {"stream_options.include_usage", R"("stream_options": {"include_usage": 1})"},
             {"tool_choice", R"("tool_choice": 3)"},
             {"model", R"("model": 7)"}}) {
        const ApiError error =
            error_of([&] { parse_chat_completion_request(chat_body(c.json), limits()); });
        EXPECT_EQ(error.status, 400) << c.json;
        EXPECT_EQ(error.type, "invalid_request_error") << c.json;
        EXPECT_EQ(error.param, c.field) << c.json;
        EXPECT_NE(std::string(error.what()).find(c.field), std::string::npos) << error.what();
    }
}

TEST(ServerRequestSchema, OutOfRangeValues) {
    for (const char* json : {R"("temperature": -1)", R"("top_p": 0)", R"("top_p": 1.5)",
                             R"("min_p": 2)", R"("top_k": -2)", R"("n": 0)", R"("n": 129)",
                             R"("max_tokens": 0)", R"("top_logprobs": 21, "logprobs": true)",
                             R"("top_logprobs": 2)", R"("max_tokens": 99999999999999999999)"}) {
        const ApiError error =
            error_of([&] { parse_chat_completion_request(chat_body(json), limits()); });
        EXPECT_EQ(error.status, 400) << json;
    }
}

TEST(ServerRequestSchema, MissingOrBadMessages) {
    ApiError error = error_of([] { parse_chat_completion_request(body("{}"), limits()); });
    EXPECT_EQ(error.status, 400);
    EXPECT_EQ(error.param, "messages");
    error = error_of([] {
        parse_chat_completion_request(body(R"({"messages": [{"role": "wizard", "content": "x"}]})"),
                                      limits());
    });
    EXPECT_EQ(error.status, 400);
    EXPECT_EQ(error.param.rfind("messages[0]", 0), 0u) << error.param;
}

TEST(ServerRequestSchema, UnknownModelIs404) {
    const ApiError error =
        error_of([] { parse_chat_completion_request(chat_body(R"("model": "gpt-9")"), limits()); });
    EXPECT_EQ(error.status, 404);
    EXPECT_EQ(error.code, "model_not_found");
    EXPECT_EQ(error.param, "model");
}

TEST(ServerRequestSchema, FieldsThatCannotBeHonouredAre400) {
    for (const char* json :
         {R"("response_format": {"type": "json_object"})",
          R"("response_format": {"type": "json_schema", "json_schema": {"name": "x"}})",
          R"("logit_bias": {"5": 10})", R"("presence_penalty": 0.5)", R"("frequency_penalty": 1)",
          R"("repetition_penalty": 1.1)", R"("functions": [{"name": "f"}])", R"("best_of": 2)",
          R"("guided_json": {})", R"("min_tokens": 3)", R"("modalities": ["audio"])",
          R"("use_beam_search": true)"}) {
        const ApiError error =
            error_of([&] { parse_chat_completion_request(chat_body(json), limits()); });
        EXPECT_EQ(error.status, 400) << json;
        EXPECT_FALSE(error.param.empty()) << json;
    }
}

TEST(ServerRequestSchema, ToolChoice) {
    auto parse = [](std::string_view extra, RequestLimits l = limits()) {
        return parse_chat_completion_request(
            chat_body(std::string(kTools) + ", " + std::string(extra)), l);
    };
    EXPECT_EQ(parse(R"("n": 1)").tool_choice.kind, ToolChoiceKind::automatic)
        << "tools: auto by default";
    EXPECT_EQ(parse(R"("tool_choice": "none")").tool_choice.kind, ToolChoiceKind::none);
    EXPECT_EQ(parse(R"("tool_choice": "required")").tool_choice.kind, ToolChoiceKind::required);
    const ChatCompletionSpec named =
        parse(R"("tool_choice": {"type": "function", "function": {"name": "add"}})");
    EXPECT_EQ(named.tool_choice.kind, ToolChoiceKind::named);
    EXPECT_EQ(named.tool_choice.name, "add");
    ASSERT_TRUE(named.tool_schemas.is_array());
    EXPECT_EQ(named.tool_schemas.size(), 2u);
    EXPECT_FALSE(parse(R"("parallel_tool_calls": false)").parallel_tool_calls);

    for (const char* bad : {R"("tool_choice": "sometimes")",
                            R"("tool_choice": {"type": "function", "function": {"name": "nope"}})",
                            R"("tool_choice": {"type": "function"})",
                            R"("tool_choice": {"function": {"name": "add"}})"}) {
        EXPECT_EQ(error_of([&] { parse(bad); }).param, "tool_choice") << bad;
    }
    // Required or named without tools.
    EXPECT_EQ(error_of([] {
                  parse_chat_completion_request(chat_body(R"("tool_choice": "required")"),
                                                limits());
              }).status,
              400);
    // auto needs --enable-auto-tool-choice (as in vLLM); none, required and named do not.
    RequestLimits no_auto = limits();
    no_auto.enable_auto_tool_choice = false;
    const ApiError error = error_of([&] { parse(R"("tool_choice": "auto")", no_auto); });
    EXPECT_NE(std::string(error.what()).find("--enable-auto-tool-choice"), std::string::npos);
    EXPECT_EQ(parse(R"("tool_choice": "required")", no_auto).tool_choice.kind,
              ToolChoiceKind::required);
    // No tool parser: no tool calls at all.
    RequestLimits no_parser = limits();
    no_parser.tool_call_parser = ToolCallParser::none;
    EXPECT_EQ(error_of([&] { parse(R"("tool_choice": "required")", no_parser); }).status, 400);
}

TEST(ServerRequestSchema, BodyParsing) {
    EXPECT_EQ(error_of([] { parse_request_body("{bad", limits()); }).status, 400);
    EXPECT_EQ(error_of([] { parse_request_body("", limits()); }).status, 400);
    EXPECT_EQ(error_of([] { parse_request_body("[1, 2]", limits()); }).status, 400);
    EXPECT_EQ(error_of([] { parse_request_body("{\"a\": NaN}", limits()); }).status, 400);
    // Deep nesting is refused before parsing (no recursion on attacker-sized input).
    const std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
    EXPECT_EQ(error_of([&] { parse_request_body(deep, limits()); }).status, 400);
    // Brackets inside strings do not count.
    const std::string quoted = "{\"a\": \"" + std::string(1000, '[') + "\\\"\"}";
    EXPECT_EQ(parse_request_body(quoted, limits())["a"].get<std::string>().size(), 1001u);
}

TEST(ServerRequestSchema, CompletionPrompts) {
    auto parse = [](std::string_view json) {
        return parse_completion_request(body(json), limits());
    };
    CompletionSpec spec = parse(R"({"prompt": "Hello", "logprobs": 3, "echo": false})");
    ASSERT_EQ(spec.prompts.size(), 1u);
    EXPECT_EQ(spec.prompts[0].text, "Hello");
    EXPECT_TRUE(spec.generation.logprobs);
    EXPECT_EQ(spec.generation.top_logprobs, 3);
    spec = parse(R"({"prompt": [1, 2, 3]})");
    ASSERT_EQ(spec.prompts.size(), 1u);
    EXPECT_EQ(spec.prompts[0].token_ids, (std::vector<int32_t>{1, 2, 3}));
    spec = parse(R"({"prompt": ["a", [4, 5]], "n": 2})");
    ASSERT_EQ(spec.prompts.size(), 2u);
    EXPECT_EQ(spec.prompts[1].token_ids, (std::vector<int32_t>{4, 5}));
    EXPECT_FALSE(parse(R"({"prompt": "x"})").generation.logprobs);

    for (const char* bad :
         {R"({})", R"({"prompt": 5})", R"({"prompt": []})", R"({"prompt": [1, -2]})",
          R"({"prompt": [1, "a"]})", R"({"prompt": "x", "echo": true})",
          R"({"prompt": "x", "suffix": "y"})", R"({"prompt": "x", "logprobs": true})"}) {
        const ApiError error = error_of([&] { parse(bad); });
        EXPECT_EQ(error.status, 400) << bad;
    }
}

TEST(ServerRequestSchema, TokenizeAndDetokenize) {
    TokenizeSpec tokenize =
        parse_tokenize_request(body(R"({"prompt": "abc", "return_token_strs": true})"), limits());
    EXPECT_EQ(tokenize.prompt, "abc");
    EXPECT_TRUE(tokenize.return_token_strs);
    tokenize = parse_tokenize_request(chat_body(), limits());
    EXPECT_TRUE(tokenize.chat.has_value());
    EXPECT_EQ(error_of([] { parse_tokenize_request(body("{}"), limits()); }).status, 400);
    EXPECT_EQ(parse_detokenize_request(body(R"({"tokens": [1, 2]})"), limits()).tokens,
              (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(
        error_of([] { parse_detokenize_request(body(R"({"tokens": "x"})"), limits()); }).param,
        "tokens");
    EXPECT_EQ(error_of([] {
                  parse_detokenize_request(body(R"({"tokens": [1], "model": "x"})"), limits());
              }).status,
              404);
}

TEST(ServerPrompt, ForcedToolCallText) {
    ToolChoice named{ToolChoiceKind::named, "add"};
    EXPECT_EQ(forced_tool_call_text(named, true),
              "</think>\n\n<minimax:tool_call>\n<invoke name=\"add\">\n");
    EXPECT_EQ(forced_tool_call_text(named, false), "<minimax:tool_call>\n<invoke name=\"add\">\n");
    EXPECT_EQ(forced_tool_call_text({ToolChoiceKind::required, ""}, true),
              "</think>\n\n<minimax:tool_call>\n<invoke name=\"");
    EXPECT_EQ(forced_tool_call_text({ToolChoiceKind::automatic, ""}, true), "");
    EXPECT_EQ(forced_tool_call_text({ToolChoiceKind::none, ""}, true), "");
}

TEST(ServerPrompt, ChatPromptIsTheRenderedTemplatePlusTheForcedCall) {
    const Tokenizer& tokenizer = test_tokenizer();
    const ChatCompletionSpec spec = parse_chat_completion_request(
        chat_body(std::string(kTools) +
                  R"(, "tool_choice": {"type": "function", "function": {"name": "add"}})"),
        limits());
    const ChatTemplate chat_template = ChatTemplate::builtin();
    const ChatPrompt prompt = build_chat_prompt(spec, chat_template, tokenizer);
    EXPECT_TRUE(prompt.opens_think);
    EXPECT_EQ(prompt.forced_output, "</think>\n\n<minimax:tool_call>\n<invoke name=\"add\">\n");
    EXPECT_EQ(prompt.text, chat_template.render(spec.chat) + prompt.forced_output);
    EXPECT_EQ(prompt.token_ids, tokenizer.encode(prompt.text));
    EXPECT_EQ(tokenizer.decode(prompt.token_ids), prompt.text);

    const ChatPrompt plain = build_chat_prompt(parse_chat_completion_request(chat_body(), limits()),
                                               chat_template, tokenizer);
    EXPECT_TRUE(plain.forced_output.empty());
    EXPECT_TRUE(plain.text.ends_with("]~b]ai\n<think>\n"));
}

TEST(ServerPrompt, ContextCheckNamesBothNumbers) {
    EXPECT_EQ(resolve_max_tokens(std::nullopt, 100, 512), 412)
        << "default: the rest of the context";
    EXPECT_EQ(resolve_max_tokens(12, 500, 512), 12);
    ApiError error = error_of([] { resolve_max_tokens(13, 500, 512); });
    EXPECT_EQ(error.status, 400);
    const std::string message = error.what();
    for (const char* number : {"512", "500", "13", "513"}) {
        EXPECT_NE(message.find(number), std::string::npos) << message;
    }
    error = error_of([] { resolve_max_tokens(std::nullopt, 512, 512); });
    EXPECT_NE(std::string(error.what()).find("512"), std::string::npos);
}

TEST(ServerPrompt, PromptTokenIdsAreChecked) {
    EXPECT_NO_THROW(check_prompt_token_ids({0, 4095}, 4096, "prompt"));
    EXPECT_EQ(error_of([] { check_prompt_token_ids({1, 4096}, 4096, "prompt"); }).param, "prompt");
    EXPECT_EQ(error_of([] { check_prompt_token_ids({}, 4096, "prompt"); }).status, 400);
}

TEST(ServerPrompt, GenerationRequestTakesDefaultsUnderTheRequest) {
    GenerationSpec spec;
    spec.sampling.temperature = 0.3;
    spec.sampling.seed = 7;
    spec.stop_token_ids = {9};
    spec.logprobs = true;
    spec.top_logprobs = 2;
    SamplingParams defaults;
    defaults.temperature = 1.0;
    defaults.top_k = 40;
    defaults.top_p = 0.95;
    const GenerationRequest first = make_generation_request(spec, {1, 2}, 5, defaults, {4052}, 0);
    const GenerationRequest third = make_generation_request(spec, {1, 2}, 5, defaults, {4052}, 2);
    EXPECT_EQ(first.sampling.temperature, 0.3);
    EXPECT_EQ(first.sampling.top_k, 40);
    EXPECT_EQ(first.sampling.top_p, 0.95);
    EXPECT_EQ(first.sampling.seed, 7u);
    EXPECT_EQ(third.sampling.seed, 9u) << "choice i gets seed + i";
    EXPECT_EQ(first.stop_token_ids, (std::vector<int64_t>{4052, 9}));
    EXPECT_EQ(first.max_tokens, 5);
    EXPECT_TRUE(first.logprobs);
    EXPECT_EQ(first.top_logprobs, 2);
    spec.sampling.seed.reset();
    EXPECT_FALSE(make_generation_request(spec, {1}, 5, defaults, {}, 1).sampling.seed);
}

}  // namespace
}  // namespace fourbit
