#include "tokenizer_test_data.h"

#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace fourbit::tokenizer_test {

namespace {
const std::string kGoldenDir = std::string(FOURBIT_SOURCE_DIR) + "/tests/golden/tokenizers";
}

const std::vector<std::string>& vocabularies() {
    static const std::vector<std::string> names = {"qwen3", "llama3", "deepseek_v3", "gpt4o"};
    return names;
}

std::string tokenizer_path(const std::string& vocabulary) {
    return std::string(FOURBIT_TOKENIZER_JSON_DIR) + "/" + vocabulary + ".tokenizer.json";
}

const Tokenizer& reference_tokenizer(const std::string& vocabulary) {
    static std::mutex mutex;
    static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = loaded[vocabulary];
    if (!slot) slot = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path(vocabulary)));
    return *slot;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
}

const nlohmann::json& expected() {
    static const nlohmann::json data =
        nlohmann::json::parse(read_file(kGoldenDir + "/expected.json"));
    return data;
}

const nlohmann::json& tiny_json() {
    static const nlohmann::json data =
        nlohmann::json::parse(read_file(kGoldenDir + "/tiny.tokenizer.json"));
    return data;
}

nlohmann::json apply_variant(const nlohmann::json& variant) {
    nlohmann::json data = tiny_json();
    for (auto& [key, value] : variant.at("set").items()) data[key] = value;
    for (auto& [key, value] : variant.at("model").items()) data["model"][key] = value;
    return data;
}

std::string show(const std::vector<int32_t>& ids) {
    std::string text = "[";
    for (size_t i = 0; i < ids.size(); ++i) text += (i ? ", " : "") + std::to_string(ids[i]);
    return text + "]";
}

}  // namespace fourbit::tokenizer_test
