// Loading tokenizer.json: every malformed or unsupported file is an Error whose message names
// the file and the offending field or component; never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "text/tokenizer.h"
#include "tokenizer_test_data.h"
#include "util/error.h"

namespace fourbit {
namespace {

using nlohmann::json;
using namespace tokenizer_test;

const std::string kSource = "broken/tokenizer.json";

// Error from loading `text`, with every needle in its message.
void expect_refused(const std::string& text, const std::vector<std::string>& needles) {
    try {
        Tokenizer::from_json_text(text, kSource);
        ADD_FAILURE() << "accepted: " << text.substr(0, 200);
    } catch (const Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(kSource), std::string::npos) << message;
        for (const std::string& needle : needles) {
            EXPECT_NE(message.find(needle), std::string::npos)
                << "'" << needle << "' not in: " << message;
        }
    }
}

// The tiny tokenizer changed by `edit`, then refused with every needle in the message.
void expect_refused(const std::function<void(json&)>& edit,
                    const std::vector<std::string>& needles) {
    json data = tiny_json();
    edit(data);
    expect_refused(data.dump(), needles);
}

TEST(TokenizerLoad, TheTinyTokenizerLoads) {
    const Tokenizer tokenizer = Tokenizer::from_json_text(tiny_json().dump(), "tiny");
    EXPECT_EQ(tokenizer.decode(tokenizer.encode("Hello there<|end|>")), "Hello there<|end|>");
}

TEST(TokenizerLoad, NotJson) {
    expect_refused("", {"JSON"});
    expect_refused("{\"model\": ", {"JSON"});
    expect_refused("[1, 2, 3]", {"(root)", "object"});
    expect_refused("\"text\"", {"(root)"});
    expect_refused("{\"model\": {\"vocab\": {\"\xff\": 0}}}", {"JSON"});  // invalid UTF-8
}

TEST(TokenizerLoad, MissingFile) {
    EXPECT_THROW(Tokenizer::load("/nonexistent/tokenizer.json"), Error);
    try {
        Tokenizer::load("/nonexistent/tokenizer.json");
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"), std::string::npos);
    }
}

TEST(TokenizerLoad, MissingOrWrongModel) {
    expect_refused([](json& d) { d.erase("model"); }, {"model"});
    expect_refused([](json& d) { d["model"] = 3; }, {"model", "object"});
    expect_refused([](json& d) { d["model"]["type"] = "Unigram"; }, {"model.type", "Unigram"});
    expect_refused([](json& d) { d["model"]["type"] = "WordPiece"; }, {"WordPiece"});
    expect_refused([](json& d) { d["model"].erase("vocab"); }, {"vocab"});
    expect_refused([](json& d) { d["model"].erase("merges"); }, {"merges"});
    expect_refused([](json& d) { d["model"]["vocab"] = json::array(); }, {"model.vocab"});
    expect_refused([](json& d) { d["model"]["merges"] = json::object(); }, {"model.merges"});
}

TEST(TokenizerLoad, BadVocabulary) {
    expect_refused([](json& d) { d["model"]["vocab"]["x!"] = -1; }, {"model.vocab", "x!"});
    expect_refused([](json& d) { d["model"]["vocab"]["x!"] = "7"; }, {"model.vocab", "x!"});
    expect_refused([](json& d) { d["model"]["vocab"]["x!"] = 1.5; }, {"model.vocab"});
    expect_refused([](json& d) { d["model"]["vocab"]["x!"] = 5000000000LL; }, {"model.vocab"});
    // Ids far past any real vocabulary would size the per-id tables: refused.
    expect_refused([](json& d) { d["model"]["vocab"]["x!"] = 1 << 30; }, {"model.vocab", "x!"});
    expect_refused([](json& d) { d["added_tokens"][0]["id"] = 2147483000; },
                   {"added_tokens[0].id"});
    // Duplicate ids: two entries with one id.
    expect_refused([](json& d) { d["model"]["vocab"]["duplicate!"] = 3; },
                   {"model.vocab", "id 3", "duplicate!"});
}

TEST(TokenizerLoad, BadMerges) {
    expect_refused([](json& d) { d["model"]["merges"].push_back("zz qq"); },
                   {"model.merges[3000]", "'zz' is not in the vocabulary"});
    expect_refused(
        [](json& d) {
            d["model"]["merges"][5] = json::array({"a", "nope"});
        },
        {"model.merges[5]", "nope"});
    // Both halves exist, their concatenation does not.
    expect_refused([](json& d) { d["model"]["merges"].push_back("q z"); },
                   {"model.merges[3000]", "'qz' is not in the vocabulary"});
    expect_refused([](json& d) { d["model"]["merges"][0] = "a b c"; }, {"model.merges[0]"});
    expect_refused([](json& d) { d["model"]["merges"][0] = "ab"; }, {"model.merges[0]"});
    expect_refused([](json& d) { d["model"]["merges"][0] = 7; }, {"model.merges[0]"});
    expect_refused([](json& d) { d["model"]["merges"][0] = json::array({"a"}); },
                   {"model.merges[0]"});
}

TEST(TokenizerLoad, UnsupportedModelOptions) {
    expect_refused([](json& d) { d["model"]["byte_fallback"] = true; }, {"byte_fallback"});
    expect_refused([](json& d) { d["model"]["dropout"] = 0.1; }, {"model.dropout"});
    expect_refused([](json& d) { d["model"]["continuing_subword_prefix"] = "##"; },
                   {"continuing_subword_prefix"});
    expect_refused([](json& d) { d["model"]["end_of_word_suffix"] = "</w>"; },
                   {"end_of_word_suffix"});
    expect_refused([](json& d) { d["model"]["unk_token"] = "<unk>"; },
                   {"model.unk_token", "<unk>"});
    expect_refused([](json& d) { d["model"]["ignore_merges"] = "yes"; }, {"ignore_merges"});
}

TEST(TokenizerLoad, UnsupportedNormalizers) {
    expect_refused([](json& d) { d["normalizer"] = {{"type", "NFKC"}}; }, {"normalizer", "NFKC"});
    expect_refused([](json& d) { d["normalizer"] = {{"type", "Lowercase"}}; }, {"Lowercase"});
    expect_refused(
        [](json& d) {
            d["normalizer"] = {{"type", "Sequence"},
                               {"normalizers", {{{"type", "NFC"}}, {{"type", "Strip"}}}}};
        },
        {"normalizer.normalizers[1]", "Strip"});
    expect_refused([](json& d) { d["normalizer"] = {{"kind", "NFC"}}; }, {"normalizer", "type"});
}

TEST(TokenizerLoad, UnsupportedPreTokenizers) {
    expect_refused(
        [](json& d) {
            d["pre_tokenizer"] = {{"type", "Metaspace"}};
        },
        {"pre_tokenizer", "Metaspace"});
    expect_refused(
        [](json& d) {
            d["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}};
        },
        {"pre_tokenizer.pretokenizers[0]", "Whitespace"});
    expect_refused([](json& d) { d["pre_tokenizer"] = nullptr; }, {"pre_tokenizer", "ByteLevel"});
    expect_refused([](json& d) { d["pre_tokenizer"]["pretokenizers"].erase(1); },
                   {"pre_tokenizer", "ByteLevel"});
    expect_refused(
        [](json& d) {
            auto& list = d["pre_tokenizer"]["pretokenizers"];
            std::swap(list[0], list[1]);
        },
        {"pre_tokenizer.pretokenizers[1]", "after ByteLevel"});
    expect_refused(
        [](json& d) { d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(a"; },
        {"pre_tokenizer.pretokenizers[0].pattern.Regex", "(a"});
    expect_refused([](json& d) { d["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; },
                   {"pre_tokenizer.pretokenizers[0].behavior", "Sideways"});
    expect_refused(
        [](json& d) {
            d["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Glob", "*"}};
        },
        {"pre_tokenizer.pretokenizers[0].pattern"});
}

TEST(TokenizerLoad, UnsupportedDecoders) {
    expect_refused(
        [](json& d) {
            d["decoder"] = {{"type", "WordPiece"}};
        },
        {"decoder", "WordPiece"});
    expect_refused([](json& d) { d["decoder"] = nullptr; }, {"decoder", "ByteLevel"});
}

TEST(TokenizerLoad, BadAddedTokens) {
    expect_refused([](json& d) { d["added_tokens"] = 1; }, {"added_tokens"});
    expect_refused([](json& d) { d["added_tokens"][0].erase("id"); }, {"added_tokens[0]", "id"});
    expect_refused([](json& d) { d["added_tokens"][0]["content"] = 5; },
                   {"added_tokens[0].content"});
    expect_refused([](json& d) { d["added_tokens"][0]["special"] = "true"; },
                   {"added_tokens[0].special"});
    // Two contents for one id; one content with two ids; an id that is another vocab entry's.
    expect_refused([](json& d) { d["added_tokens"][1]["id"] = d["added_tokens"][0]["id"]; },
                   {"added_tokens[1]", "<|end|>", "<tool>"});
    expect_refused(
        [](json& d) {
            json copy = d["added_tokens"][0];
            copy["id"] = 999999;
            d["added_tokens"].push_back(copy);
        },
        {"added_tokens[2]", "<|end|>"});
    expect_refused([](json& d) { d["added_tokens"][0]["id"] = 5; }, {"added_tokens[0]", "id 5"});
    // In the vocabulary under another id.
    expect_refused([](json& d) { d["added_tokens"][0]["content"] = "a"; },
                   {"added_tokens[0]", "'a'"});
}

TEST(TokenizerLoad, ArbitraryMutationsNeverCrash) {
    // Small random edits of a valid file: each either loads or is an Error.
    std::string text = tiny_json().dump();
    text.resize(std::min<size_t>(text.size(), 20000));  // truncated: never valid JSON
    uint32_t state = 12345;
    auto next = [&state] { return state = state * 1664525u + 1013904223u; };
    const std::string small =
        json{{"model",
              {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
             {"pre_tokenizer", {{"type", "ByteLevel"}}},
             {"decoder", {{"type", "ByteLevel"}}},
             {"added_tokens", {{{"id", 3}, {"content", "<x>"}}}}}
            .dump();
    for (int round = 0; round < 2000; ++round) {
        std::string mutated = small;
        for (int k = 0; k < 1 + int(next() % 3); ++k) {
            const size_t at = next() % mutated.size();
            switch (next() % 3) {
                case 0:
                    mutated[at] = static_cast<char>(next() % 128);
                    break;
                case 1:
                    mutated.erase(at, 1);
                    break;
                default:
                    mutated.insert(at, 1, "{}[]\",:0a "[next() % 11]);
                    break;
            }
        }
        try {
            const Tokenizer t = Tokenizer::from_json_text(mutated, "mutated");
            t.decode(t.encode("ab<x>ba"));
        } catch (const Error&) {
        }
    }
}

TEST(TokenizerLoad, MinimalFileWithDefaults) {
    // Fields left out take Hugging Face's defaults (ByteLevel: add_prefix_space and use_regex
    // on; added tokens normalized, not special).
    const std::string text =
        R"({"model": {"vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": [["a", "b"]]},
            "pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
            "added_tokens": [{"id": 4, "content": "<x>"}]})";
    const Tokenizer t = Tokenizer::from_json_text(text, "minimal");
    EXPECT_EQ(t.encode("ab<x>ba"), (std::vector<int32_t>{3, 2, 4, 3, 1, 0}));
    EXPECT_EQ(t.decode(t.encode("ab<x>ba")), " ab<x> ba");
    EXPECT_FALSE(t.is_special(4));
    EXPECT_EQ(t.vocab_size(), 5u);
}

}  // namespace
}  // namespace fourbit
