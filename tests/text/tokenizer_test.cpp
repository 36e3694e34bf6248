// The tokenizer against Hugging Face `tokenizers` (tests/golden/tokenizers/expected.json, made
// by tools/reference/make_tokenizer_reference.py): identical ids, decodes and pre-tokenizer
// pieces for every corpus text on the four reference vocabularies and on the tiny variants;
// round trips; invalid UTF-8; threads; long inputs.
#include "text/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer_test_data.h"
#include "util/error.h"

// Counts operator new calls on this thread, for the allocation-free hot path test. The
// replacements pair malloc with free; GCC cannot see that new and delete are both replaced
// here and warns at every inlined delete.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
thread_local bool g_count_allocations = false;
thread_local size_t g_allocations = 0;

void* operator new(size_t size) {
    if (g_count_allocations) ++g_allocations;
    if (void* p = std::malloc(size ? size : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace fourbit {
namespace {

using nlohmann::json;
using namespace tokenizer_test;

std::vector<int32_t> ids_of(const json& value) { return value.get<std::vector<int32_t>>(); }

std::string from_hex(const std::string& hex) {
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return bytes;
}

// Every expectation of one case on one tokenizer: ids, both decodes, pieces, round trip.
void check_case(const Tokenizer& tokenizer, const std::string& label, const std::string& text,
                const json& want) {
    const std::vector<int32_t> ids = tokenizer.encode(text);
    const std::vector<int32_t> want_ids = ids_of(want.at("ids"));
    if (ids != want_ids) {
        auto [a, b] = std::mismatch(ids.begin(), ids.end(), want_ids.begin(), want_ids.end());
        ADD_FAILURE() << label << ": ids differ at index " << (a - ids.begin())
                      << "\n  ours: " << show(ids) << "\n  HF:   " << show(want_ids);
        return;
    }
    EXPECT_EQ(tokenizer.decode(ids), want.at("decode").get<std::string>()) << label;
    EXPECT_EQ(tokenizer.decode(ids, true), want.at("decode_skip_special").get<std::string>())
        << label;
    EXPECT_EQ(tokenizer.pre_tokenize(text), want.at("pieces").get<std::vector<std::string>>())
        << label;
}

class ReferenceVocabulary : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceVocabulary, IdsDecodesAndPiecesMatchHuggingFace) {
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    for (const json& c : expected().at("cases")) {
        check_case(tokenizer, GetParam() + "/" + c.at("name").get<std::string>(),
                   c.at("text").get<std::string>(), c.at("results").at(GetParam()));
    }
}

TEST_P(ReferenceVocabulary, DecodeRoundTripsEveryCorpusText) {
    // decode(encode(s)) == s, or NFC(s) where the normalizer is NFC: HF's decode of HF's ids
    // is the reference for the latter, and is checked against s itself where there is no NFC.
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    for (const json& c : expected().at("cases")) {
        const std::string text = c.at("text").get<std::string>();
        const std::string round_trip = tokenizer.decode(tokenizer.encode(text));
        if (GetParam() == "qwen3") {
            EXPECT_EQ(round_trip, c.at("results").at("qwen3").at("decode").get<std::string>());
        } else {
            EXPECT_EQ(round_trip, text) << c.at("name");
        }
    }
}

TEST_P(ReferenceVocabulary, DecodesOfArbitraryIdsMatchHuggingFace) {
    // Random ids, byte tokens among them: broken UTF-8 becomes U+FFFD exactly as HF makes it.
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    for (const json& c : expected().at("decode_cases").at(GetParam())) {
        const std::vector<int32_t> ids = ids_of(c.at("ids"));
        EXPECT_EQ(tokenizer.decode(ids), c.at("decode").get<std::string>()) << show(ids);
        EXPECT_EQ(tokenizer.decode(ids, true), c.at("decode_skip_special").get<std::string>())
            << show(ids);
    }
}

TEST_P(ReferenceVocabulary, InvalidUtf8IsEncodedAsItsReplacedForm) {
    // Our choice (HF cannot receive such text): each maximal invalid subpart becomes U+FFFD,
    // as Python's bytes.decode(errors="replace") does.
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    for (const json& c : expected().at("invalid_utf8_cases")) {
        const std::string raw = from_hex(c.at("hex").get<std::string>());
        const std::vector<int32_t> ids = tokenizer.encode(raw);
        EXPECT_EQ(ids, ids_of(c.at("ids").at(GetParam()))) << c.at("hex");
        EXPECT_EQ(tokenizer.decode(ids), c.at("replaced").get<std::string>()) << c.at("hex");
    }
}

TEST_P(ReferenceVocabulary, VocabSizeIsLargestIdPlusOne) {
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    EXPECT_EQ(tokenizer.vocab_size(),
              expected().at("vocabularies").at(GetParam()).at("vocab_size").get<size_t>());
    EXPECT_TRUE(tokenizer.contains(static_cast<int32_t>(tokenizer.vocab_size()) - 1));
    EXPECT_FALSE(tokenizer.contains(static_cast<int32_t>(tokenizer.vocab_size())));
    EXPECT_FALSE(tokenizer.contains(-1));
}

TEST_P(ReferenceVocabulary, EncodeAppendsToTheCallersVector) {
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    std::vector<int32_t> out = {7, 8};
    tokenizer.encode("Hello world", out);
    tokenizer.encode("", out);
    tokenizer.encode(" again", out);
    std::vector<int32_t> want = {7, 8};
    for (const char* text : {"Hello world", " again"}) {
        const std::vector<int32_t> ids = tokenizer.encode(text);
        want.insert(want.end(), ids.begin(), ids.end());
    }
    EXPECT_EQ(out, want);
}

TEST_P(ReferenceVocabulary, WarmEncodeAllocatesNothing) {
    // Once a thread has encoded a text (buffers sized, BPE cache filled), encoding it again
    // into a vector with room allocates nothing, NFC included.
    static std::unique_ptr<std::string> escaped;
    g_allocations = 0;
    g_count_allocations = true;
    escaped = std::make_unique<std::string>(1000, 'x');  // the counter works
    g_count_allocations = false;
    ASSERT_GT(g_allocations, 0u);

    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    std::vector<int32_t> ids;
    ids.reserve(1 << 20);
    for (const json& c : expected().at("cases")) {
        const std::string text = c.at("text").get<std::string>();
        tokenizer.encode(text, ids);
        ids.clear();
        g_allocations = 0;
        g_count_allocations = true;
        tokenizer.encode(text, ids);
        g_count_allocations = false;
        EXPECT_EQ(g_allocations, 0u) << c.at("name");
        ids.clear();
    }
}

TEST_P(ReferenceVocabulary, ThreadsEncodingAtOnceGetTheSameIds) {
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> want;
    for (const json& c : expected().at("cases")) {
        texts.push_back(c.at("text").get<std::string>());
        want.push_back(ids_of(c.at("results").at(GetParam()).at("ids")));
    }
    std::vector<int> failures(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            const Tokenizer copy = tokenizer;  // copies share the state
            for (int round = 0; round < 3; ++round) {
                for (size_t i = 0; i < texts.size(); ++i) {
                    const size_t k = (i * (t + 1) + round) % texts.size();
                    if (copy.encode(texts[k]) != want[k]) ++failures[t];
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < 4; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

TEST_P(ReferenceVocabulary, LongUniformInputsEncodeAndRoundTrip) {
    // One pre-token of 1 MB (the heap path of BPE, PCRE2's JIT stack), and long runs of what
    // the patterns repeat over.
    const Tokenizer& tokenizer = reference_tokenizer(GetParam());
    std::string cjk;
    for (int i = 0; i < 100000; ++i) cjk += (i % 3 == 0) ? "\xe4\xb8\xad" : "\xe6\x96\x87";
    for (const std::string& text :
         {std::string(1 << 20, ' '), std::string(1 << 20, 'a'), std::string(1 << 20, '\n'),
          std::string(300000, '7'), std::string(1 << 18, '!'), cjk}) {
        const std::vector<int32_t> ids = tokenizer.encode(text);
        EXPECT_FALSE(ids.empty());
        EXPECT_EQ(tokenizer.decode(ids), text) << text.substr(0, 8) << "... " << text.size();
    }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, ReferenceVocabulary, ::testing::ValuesIn(vocabularies()),
                         [](const auto& info) { return info.param; });

class TinyVariant : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyVariant, MatchesHuggingFace) {
    // Features the four reference files do not use: prefix space, GPT-2's ByteLevel regex, the
    // other Split behaviours, string patterns, lstrip/rstrip/single_word/normalized tokens.
    for (const json& variant : expected().at("tiny_variants")) {
        if (variant.at("name") != GetParam()) continue;
        const Tokenizer tokenizer =
            Tokenizer::from_json_text(apply_variant(variant).dump(), "tiny/" + GetParam());
        for (const json& c : variant.at("cases")) {
            const std::string text = c.at("text").get<std::string>();
            check_case(tokenizer, GetParam() + ": " + json(text).dump(), text, c);
        }
        return;
    }
    FAIL() << "no variant " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TinyVariant,
                         ::testing::Values("base", "ignore_merges", "gpt2_byte_level",
                                           "byte_level_regex_no_prefix", "split_then_prefix_space",
                                           "split_removed", "split_merged_with_previous",
                                           "split_merged_with_next", "split_contiguous",
                                           "split_isolated_invert", "split_string_pattern",
                                           "single_split_no_sequence",
                                           "nfc_sequence_and_added_flags"),
                         [](const auto& info) { return info.param; });

TEST(Tokenizer, KnownTokensOfTheReferenceFiles) {
    const Tokenizer& qwen = reference_tokenizer("qwen3");
    EXPECT_EQ(qwen.token_id("<|im_end|>"), 151645);
    EXPECT_TRUE(qwen.is_special(151645));
    EXPECT_EQ(qwen.token_id("<think>"), 151667);
    EXPECT_FALSE(qwen.is_special(151667));  // survives skip_special_tokens
    EXPECT_EQ(qwen.token_text(151667), "<think>");
    EXPECT_EQ(qwen.token_id("\xc4\xa0the"), qwen.encode(" the").at(0));  // "Ġthe"
    EXPECT_EQ(qwen.token_bytes(*qwen.token_id("\xc4\xa0the")), " the");
    EXPECT_EQ(qwen.token_id("no such token"), std::nullopt);
    EXPECT_EQ(qwen.decode(qwen.encode("<think>x</think><|im_end|>"), true), "<think>x</think>");

    const Tokenizer& deepseek = reference_tokenizer("deepseek_v3");
    // Added tokens that are also vocabulary entries keep their id.
    EXPECT_EQ(deepseek.token_id("<\xef\xbd\x9c"
                                "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"),
              0);
    EXPECT_TRUE(deepseek.is_special(0));

    const Tokenizer& gpt4o = reference_tokenizer("gpt4o");
    EXPECT_EQ(gpt4o.token_id("<|endoftext|>"), 199999);
    EXPECT_FALSE(gpt4o.contains(200017));  // a gap between ids
    EXPECT_EQ(gpt4o.token_text(200017), std::nullopt);
}

TEST(Tokenizer, DecodeRefusesIdsWithoutAToken) {
    const Tokenizer& gpt4o = reference_tokenizer("gpt4o");
    for (int32_t id : {200017, 200019, -1, 1 << 30}) {
        try {
            gpt4o.decode(std::vector<int32_t>{1, id});
            ADD_FAILURE() << "no error for id " << id;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(std::to_string(id)), std::string::npos)
                << e.what();
        }
    }
    EXPECT_THROW(gpt4o.token_bytes(200017), Error);
}

TEST(Tokenizer, CopiesShareTheLoadedState) {
    Tokenizer a = reference_tokenizer("llama3");
    Tokenizer b = a;
    Tokenizer c = std::move(a);
    EXPECT_EQ(b.encode("copy me"), c.encode("copy me"));
    EXPECT_EQ(b.vocab_size(), c.vocab_size());
}

TEST(Tokenizer, ManyTokenizersOnOneThreadKeepTheirOwnCaches) {
    // More tokenizers than the per-thread buffers hold, used in turn: no cache may leak ids
    // from one vocabulary into another.
    std::vector<Tokenizer> tokenizers;
    for (int round = 0; round < 2; ++round) {
        for (const std::string& name : vocabularies())
            tokenizers.push_back(reference_tokenizer(name));
    }
    tokenizers.push_back(Tokenizer::from_json_text(tiny_json().dump(), "tiny"));
    const std::string text = "The same words, the same words again. 12345";
    std::vector<std::vector<int32_t>> first;
    for (const Tokenizer& t : tokenizers) first.push_back(t.encode(text));
    for (int round = 0; round < 3; ++round) {
        for (size_t i = 0; i < tokenizers.size(); ++i) {
            EXPECT_EQ(tokenizers[i].encode(text), first[i]) << i;
        }
    }
    EXPECT_NE(first.back(), first.front());
}

}  // namespace
}  // namespace fourbit
