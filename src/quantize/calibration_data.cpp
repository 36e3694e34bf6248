// Reading calibration records: file splitting (JSONL or JSON), layout recognition by fields,
// and the conversion of each layout into a chat request the renderer takes.
#include "quantize/calibration_data.h"

#include <fstream>
#include <sstream>

#include "text/python_json.h"
#include "util/error.h"

namespace fourbit {

namespace {

using ordered_json = nlohmann::ordered_json;

bool has(const ordered_json& record, const char* key) {
    auto it = record.find(key);
    return it != record.end() && !it->is_null();
}

// A field that datasets store either as JSON or as JSON text (xlam's tools and answers,
// SWE-smith's messages).
ordered_json json_or_json_text(const ordered_json& value, const std::string& what) {
    if (!value.is_string()) return value;
    return parse_json_like_python(value.get<std::string>(), what);
}

const std::string& string_field(const ordered_json& record, const char* key,
                                const std::string& where) {
    const ordered_json& value = record.at(key);
    if (!value.is_string()) fail("{}: field '{}' must be a string", where, key);
    return value.get_ref<const std::string&>();
}

// OpenAI tools from a dataset's tool list: entries already of the form {"type": "function",
// "function": {...}} are kept; xlam's bare {name, description, parameters} are wrapped, their
// parameters (a map of parameter name to {type, description}) becoming a JSON-schema object.
ordered_json openai_tools(const ordered_json& tools, const std::string& where) {
    if (!tools.is_array()) fail("{}: 'tools' must be a list", where);
    ordered_json out = ordered_json::array();
    for (size_t i = 0; i < tools.size(); ++i) {
        const ordered_json& tool = tools[i];
        if (!tool.is_object() || (!tool.contains("name") && !tool.contains("function"))) {
            fail("{}: tools[{}] is neither {{\"type\": \"function\", ...}} nor {{\"name\", ...}}",
                 where, i);
        }
        if (tool.contains("function")) {
            out.push_back(tool);
            continue;
        }
        ordered_json function = ordered_json::object();
        function["name"] = tool["name"];
        if (tool.contains("description")) function["description"] = tool["description"];
        ordered_json parameters = tool.value("parameters", ordered_json::object());
        if (parameters.is_object() && !parameters.contains("properties") &&
            parameters.value("type", "") != "object") {
            parameters = ordered_json{{"type", "object"}, {"properties", parameters}};
        }
        function["parameters"] = parameters;
        out.push_back(ordered_json{{"type", "function"}, {"function", function}});
    }
    return out;
}

ChatRequest chat_request(ordered_json messages, const ordered_json* tools,
                         const std::string& where) {
    ordered_json body = ordered_json::object();
    body["messages"] = std::move(messages);
    if (tools) body["tools"] = openai_tools(*tools, where);
    body["add_generation_prompt"] = false;
    try {
        return parse_chat_request(body);
    } catch (const Error& error) {
        fail("{}: {}", where, error.what());
    }
}

ChatRequest from_messages(const ordered_json& record, const std::string& where) {
    ordered_json messages = json_or_json_text(record.at("messages"), where + ": messages");
    if (!messages.is_array() || messages.empty()) {
        fail("{}: 'messages' must be a non-empty list of messages", where);
    }
    std::optional<ordered_json> tools;
    if (has(record, "tools")) tools = json_or_json_text(record.at("tools"), where + ": tools");
    return chat_request(std::move(messages), tools ? &*tools : nullptr, where);
}

ChatRequest from_conversations(const ordered_json& record, const std::string& where) {
    const ordered_json& turns = record.at("conversations");
    if (!turns.is_array() || turns.empty()) fail("{}: 'conversations' must be a non-empty list", where);
    ordered_json messages = ordered_json::array();
    for (size_t i = 0; i < turns.size(); ++i) {
        const ordered_json& turn = turns[i];
        if (!turn.is_object() || !turn.contains("from") || !turn.contains("value")) {
            fail("{}: conversations[{}] needs 'from' and 'value'", where, i);
        }
        const std::string from = turn["from"].is_string() ? turn["from"].get<std::string>() : "";
        std::string role;
        if (from == "human" || from == "user") role = "user";
        if (from == "gpt" || from == "assistant") role = "assistant";
        if (from == "system") role = "system";
        if (role.empty()) {
            fail("{}: conversations[{}].from '{}' is not human, gpt or system", where, i, from);
        }
        messages.push_back(ordered_json{{"role", role}, {"content", turn["value"]}});
    }
    return chat_request(std::move(messages), nullptr, where);
}

// xlam: the user's query, then one assistant turn calling the answer's tools.
ChatRequest from_query_answers(const ordered_json& record, const std::string& where) {
    const std::string& query = string_field(record, "query", where);
    ordered_json answers = json_or_json_text(record.at("answers"), where + ": answers");
    if (!answers.is_array()) fail("{}: 'answers' must be a list of tool calls", where);
    ordered_json calls = ordered_json::array();
    for (size_t i = 0; i < answers.size(); ++i) {
        const ordered_json& answer = answers[i];
        if (!answer.is_object() || !answer.contains("name") || !answer["name"].is_string()) {
            fail("{}: answers[{}] needs a string 'name'", where, i);
        }
        ordered_json arguments = answer.value("arguments", ordered_json::object());
        calls.push_back(ordered_json{
            {"id", fmt::format("call_{}", i)},
            {"type", "function"},
            {"function",
             {{"name", answer["name"]},
              {"arguments", arguments.is_string() ? arguments.get<std::string>()
                                                  : python_json_dumps(arguments)}}}});
    }
    ordered_json messages = ordered_json::array();
    messages.push_back(ordered_json{{"role", "user"}, {"content", query}});
    messages.push_back(
        ordered_json{{"role", "assistant"}, {"content", ""}, {"tool_calls", std::move(calls)}});
    std::optional<ordered_json> tools;
    if (has(record, "tools")) tools = json_or_json_text(record.at("tools"), where + ": tools");
    return chat_request(std::move(messages), tools ? &*tools : nullptr, where);
}

ChatRequest from_instruction_output(const ordered_json& record, const std::string& where) {
    std::string prompt = string_field(record, "instruction", where);
    if (has(record, "input")) {
        const std::string& input = string_field(record, "input", where);
        if (!input.empty()) prompt += "\n\n" + input;
    }
    ordered_json messages = ordered_json::array();
    messages.push_back(ordered_json{{"role", "user"}, {"content", prompt}});
    messages.push_back(
        ordered_json{{"role", "assistant"}, {"content", string_field(record, "output", where)}});
    return chat_request(std::move(messages), nullptr, where);
}

std::string field_list(const ordered_json& record) {
    std::string names;
    for (auto it = record.begin(); it != record.end(); ++it) {
        names += (names.empty() ? "" : ", ") + it.key();
    }
    return names.empty() ? "none" : names;
}

std::string read_whole_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) fail("cannot read dataset {}", path);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

bool looks_like_jsonl(const std::string& path, const std::string& text) {
    if (path.ends_with(".jsonl")) return true;
    if (path.ends_with(".json")) return false;
    size_t first = text.find_first_not_of(" \t\r\n");
    return first != std::string::npos && text[first] == '{';
}

}  // namespace

const char* record_layout_name(RecordLayout layout) {
    switch (layout) {
        case RecordLayout::input_ids:
            return "input_ids";
        case RecordLayout::messages:
            return "messages";
        case RecordLayout::conversations:
            return "conversations";
        case RecordLayout::query_answers:
            return "query/tools/answers";
        case RecordLayout::instruction_output:
            return "instruction/output";
        case RecordLayout::text:
            return "text";
    }
    return "?";
}

CalibrationRecord parse_calibration_record(const ordered_json& record, const std::string& where) {
    if (!record.is_object()) fail("{}: a record must be a JSON object", where);
    CalibrationRecord out;
    out.where = where;
    if (has(record, "input_ids")) {
        out.layout = RecordLayout::input_ids;
        const ordered_json& ids = record["input_ids"];
        if (!ids.is_array() || ids.empty()) fail("{}: 'input_ids' must be a non-empty list", where);
        for (size_t i = 0; i < ids.size(); ++i) {
            if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 ||
                ids[i].get<int64_t>() > INT32_MAX) {
                fail("{}: input_ids[{}] is not a token id", where, i);
            }
            out.token_ids.push_back(static_cast<int32_t>(ids[i].get<int64_t>()));
        }
    } else if (has(record, "messages")) {
        out.layout = RecordLayout::messages;
        out.chat = from_messages(record, where);
    } else if (has(record, "conversations")) {
        out.layout = RecordLayout::conversations;
        out.chat = from_conversations(record, where);
    } else if (has(record, "query") && has(record, "answers")) {
        out.layout = RecordLayout::query_answers;
        out.chat = from_query_answers(record, where);
    } else if (has(record, "instruction") && has(record, "output")) {
        out.layout = RecordLayout::instruction_output;
        out.chat = from_instruction_output(record, where);
    } else if (has(record, "text")) {
        out.layout = RecordLayout::text;
        out.text = string_field(record, "text", where);
    } else {
        fail(
            "{}: record has none of the recognised layouts (text, messages, conversations, "
            "input_ids, instruction+output, query+answers); its fields: {}",
            where, field_list(record));
    }
    return out;
}

DatasetFile read_dataset_file(const std::string& path, bool skip_bad_records) {
    DatasetFile file;
    file.path = path;
    const std::string text = read_whole_file(path);
    auto take = [&](auto&& parse) {
        try {
            file.records.push_back(parse());
        } catch (const Error& error) {
            if (!skip_bad_records) throw;
            file.skipped.push_back(error.what());
        }
    };
    if (looks_like_jsonl(path, text)) {
        size_t begin = 0;
        for (int64_t line = 1; begin < text.size(); ++line) {
            size_t end = text.find('\n', begin);
            if (end == std::string::npos) end = text.size();
            const std::string_view row(text.data() + begin, end - begin);
            begin = end + 1;
            if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
            const std::string where = fmt::format("{}:{}", path, line);
            take([&] {
                auto json = try_parse_json_like_python(row);
                if (!json) fail("{}: not a JSON object (a JSONL file has one per line)", where);
                return parse_calibration_record(*json, where);
            });
        }
    } else {
        auto json = try_parse_json_like_python(text);
        if (!json) fail("{}: not valid JSON (expected a list of records, or JSONL)", path);
        if (!json->is_array()) fail("{}: expected a JSON list of records", path);
        for (size_t i = 0; i < json->size(); ++i) {
            const std::string where = fmt::format("{}: record {}", path, i);
            take([&] { return parse_calibration_record((*json)[i], where); });
        }
    }
    if (file.records.empty()) fail("{}: no usable records", path);
    return file;
}

}  // namespace fourbit
