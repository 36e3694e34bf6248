// The streaming detokenizer: for every prefix of many id sequences, what it has returned plus
// what flush() would return equals decode(prefix); it never returns a broken UTF-8 sequence.
#include <gtest/gtest.h>

#include <random>

#include "text/tokenizer.h"
#include "text/utf8.h"
#include "tokenizer_test_data.h"
#include "util/error.h"

namespace fourbit {
namespace {

using nlohmann::json;
using namespace tokenizer_test;

// The id of the token that is the single byte `byte`.
int32_t byte_token(const Tokenizer& tokenizer, uint8_t byte) {
    for (int32_t id = 0; id < static_cast<int32_t>(tokenizer.vocab_size()); ++id) {
        if (tokenizer.contains(id) && tokenizer.token_bytes(id) == std::string(1, char(byte))) {
            return id;
        }
    }
    ADD_FAILURE() << "no token for byte " << int(byte);
    return 0;
}

// Pushes `ids` one at a time, checking every prefix.
void check_stream(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool skip) {
    StreamDetokenizer stream(tokenizer, skip);
    std::string emitted;
    for (size_t k = 0; k < ids.size(); ++k) {
        const std::string piece = stream.push(ids[k]);
        ASSERT_TRUE(utf8::is_valid(piece)) << show(ids) << " at " << k;
        emitted += piece;
        StreamDetokenizer copy = stream;  // flushing a copy leaves the stream going
        const std::vector<int32_t> prefix(ids.begin(), ids.begin() + k + 1);
        ASSERT_EQ(emitted + copy.flush(), tokenizer.decode(prefix, skip))
            << show(prefix) << " skip=" << skip;
    }
    EXPECT_EQ(emitted + stream.flush(), tokenizer.decode(ids, skip));
    EXPECT_EQ(stream.flush(), "");
}

class Stream : public ::testing::TestWithParam<std::string> {};

TEST_P(Stream, EveryPrefixOfCorpusIdsMatchesDecode) {
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    for (const json& c : expected().at("cases")) {
        const std::vector<int32_t> ids =
            c.at("results").at(GetParam()).at("ids").get<std::vector<int32_t>>();
        if (ids.size() > 400) continue;  // quadratic check; long texts add nothing new
        check_stream(tokenizer, ids, false);
        check_stream(tokenizer, ids, true);
    }
}

TEST_P(Stream, EveryPrefixOfRandomIdsMatchesDecode) {
    // Byte tokens in random order: unfinished and invalid sequences at every position.
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    for (const json& c : expected().at("decode_cases").at(GetParam())) {
        check_stream(tokenizer, c.at("ids").get<std::vector<int32_t>>(), false);
        check_stream(tokenizer, c.at("ids").get<std::vector<int32_t>>(), true);
    }
    std::mt19937 rng(7);
    std::vector<int32_t> byte_ids;  // continuation and lead bytes
    for (int b = 0x80; b < 0x100; ++b) byte_ids.push_back(byte_token(tokenizer, b));
    ASSERT_FALSE(byte_ids.empty());
    for (int round = 0; round < 200; ++round) {
        std::vector<int32_t> ids;
        const int n = 1 + rng() % 12;
        for (int i = 0; i < n; ++i) {
            ids.push_back(rng() % 3 ? byte_ids[rng() % byte_ids.size()]
                                    : static_cast<int32_t>(rng() % tokenizer.vocab_size()));
            if (!tokenizer.contains(ids.back())) ids.back() = byte_ids[0];
        }
        check_stream(tokenizer, ids, false);
    }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, Stream, ::testing::ValuesIn(vocabularies()),
                         [](const auto& info) { return info.param; });

TEST(Stream, SplitCharacterWaitsForItsLastByte) {
    const Tokenizer& qwen = reference_tokenizer("qwen3");
    // "中" is E4 B8 AD: push its bytes as three byte tokens.
    const std::vector<int32_t> bytes = {byte_token(qwen, 0xe4), byte_token(qwen, 0xb8),
                                        byte_token(qwen, 0xad)};
    StreamDetokenizer stream(qwen);
    EXPECT_EQ(stream.push(bytes[0]), "");
    EXPECT_EQ(stream.push(bytes[1]), "");
    EXPECT_EQ(stream.push(bytes[2]), "\xe4\xb8\xad");
    EXPECT_EQ(stream.push(bytes[0]), "");
    EXPECT_EQ(stream.flush(), "\xef\xbf\xbd");  // unfinished at the end: U+FFFD, as decode
}

TEST(Stream, SkipsSpecialTokensWhenAsked) {
    const Tokenizer& qwen = reference_tokenizer("qwen3");
    StreamDetokenizer stream(qwen, true);
    std::string text;
    for (int32_t id : qwen.encode("<|im_start|>assistant\n<think>x</think><|im_end|>")) {
        text += stream.push(id);
    }
    EXPECT_EQ(text + stream.flush(), "assistant\n<think>x</think>");
}

TEST(Stream, UnknownIdIsAnErrorAndLeavesTheStreamAsItWas) {
    const Tokenizer& gpt4o = reference_tokenizer("gpt4o");
    StreamDetokenizer stream(gpt4o);
    const std::vector<int32_t> ids = gpt4o.encode("\xe4\xb8\xad");
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_THROW(stream.push(200017), Error);
    EXPECT_EQ(stream.push(ids[0]), "\xe4\xb8\xad");
}

}  // namespace
}  // namespace fourbit
