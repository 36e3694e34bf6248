// The tokenizer make-model writes into every checkpoint (a BPE learned here, MiniMax-M2's
// added tokens), read back by fourbit's own tokenizer: ids where MiniMax-M2 has them, the think
// and tool-call tags kept by skip_special_tokens, exact round trips of rendered chats.
// tools/reference/check_checkpoint_tokenizer.py compares the same files with Hugging Face's.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "text/bpe_trainer.h"
#include "text/chat_request.h"
#include "text/chat_template.h"
#include "text/minimax_special_tokens.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace fourbit {
namespace {

Tokenizer trained(int64_t vocab_size) {
    // The same text make-model learns from (models/tokenizer_corpus.txt) is embedded in the
    // library; a short text of our own keeps this test independent of it.
    const std::string corpus =
        "The quick brown fox jumps over the lazy dog. def forward(self, x): return x * 2\n"
        "MiniMax-M2 routes each token to 8 of 256 experts; NVFP4 keeps weights in 4 bits.\n";
    BpeTrainingOptions options;
    options.vocab_size = vocab_size;
    return Tokenizer::from_json_text(train_byte_level_bpe(corpus + corpus, options).dump(),
                                     "trained");
}

TEST(CheckpointTokenizer, AddedTokensTakeMiniMaxIdsInAFullVocabulary) {
    Tokenizer tokenizer = trained(200064);
    EXPECT_EQ(tokenizer.token_id("[e~["), 200020);
    EXPECT_EQ(tokenizer.token_id("]~b]"), 200019);
    EXPECT_EQ(tokenizer.token_id("]~!b["), 200034);
    EXPECT_EQ(tokenizer.token_id("<think>"), 200050);
    EXPECT_EQ(tokenizer.token_id("</minimax:tool_call>"), 200053);
    EXPECT_TRUE(tokenizer.is_special(200020));
    EXPECT_FALSE(tokenizer.is_special(200050)) << "<think> survives skip_special_tokens";
}

TEST(CheckpointTokenizer, AddedTokensTakeTheTopOfASmallVocabulary) {
    Tokenizer tokenizer = trained(4096);
    EXPECT_EQ(tokenizer.token_id("[e~["), 4096 - 64 + 20);
    EXPECT_EQ(tokenizer.token_id("[e~["), minimax_added_token_id(4096, 20));
    EXPECT_LE(tokenizer.vocab_size(), 4096u);
    for (const AddedTokenSpec& token : minimax_m2_added_tokens()) {
        EXPECT_EQ(tokenizer.encode(token.content),
                  std::vector<int32_t>{minimax_added_token_id(4096, token.offset)})
            << token.content;
    }
}

TEST(CheckpointTokenizer, RenderedChatRoundTripsAndStartsWithTheDocumentToken) {
    Tokenizer tokenizer = trained(8192);
    ChatRequest request = parse_chat_request(nlohmann::ordered_json::parse(R"({
        "messages": [{"role": "user", "content": "Héllo, 世界! 🤖 Use\ttabs\r\nand spaces   ."}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})"));
    const std::string prompt = ChatTemplate::builtin().render(request);
    std::vector<int32_t> ids = tokenizer.encode(prompt);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), tokenizer.token_id("]~!b["));
    EXPECT_EQ(tokenizer.decode(ids), prompt);
    const std::string visible = tokenizer.decode(ids, /*skip_special_tokens=*/true);
    EXPECT_EQ(visible.find("]~b]"), std::string::npos);
    EXPECT_NE(visible.find("<think>"), std::string::npos);
}

TEST(CheckpointTokenizer, TrainingIsDeterministicAndLearnsMerges) {
    BpeTrainingOptions options;
    options.vocab_size = 4096;
    const std::string corpus = "abababab cdcdcd abab cd ab";
    nlohmann::json first = train_byte_level_bpe(corpus, options);
    EXPECT_EQ(first, train_byte_level_bpe(corpus, options));
    ASSERT_FALSE(first["model"]["merges"].empty());
    EXPECT_EQ(first["model"]["merges"][0], "a b") << "the most frequent pair merges first";
    options.vocab_size = 300;
    EXPECT_THROW(train_byte_level_bpe(corpus, options), Error)
        << "300 ids cannot hold 256 bytes and 64 added tokens";
}

}  // namespace
}  // namespace fourbit
