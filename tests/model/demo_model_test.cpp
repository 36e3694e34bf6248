// The bundled demo model (models/minimax-m2-demo) against transformers' MiniMaxM2ForCausalLM
// (tests/golden/demo, made in float64 on the saved bf16/f32 weights by
// tools/demo-model/train_model.py right after training): logits, greedy continuation, held-out
// perplexity, and the tokenizer and chat renderer against Hugging Face `tokenizers` and jinja2.
//
// Bound on logits: as the foundation parity test (golden_test.cpp), 1e-4. Measured here:
// 1.6e-5 at most, on logits up to 29 in magnitude (reference.json: largest_abs_logit); f32
// against float64 through 6 layers. A real mistake moves logits by 1e-1 or more. The trained
// router leaves the k-th and (k+1)-th biased scores as close as 1.2e-6 on one token of the
// reference (smallest_routing_gap), still ten times the f32 noise of a router logit of these
// prompts, and any flip would show as a logit difference far above the bound. The smallest
// top-2 gap on the greedy path is 1.6e-3, so greedy ids must match exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/minimax_m2.h"
#include "model/sequence_cache.h"
#include "support/greedy_reference.h"
#include "text/chat_request.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace fourbit {
namespace {

constexpr float kLogitBound = 1e-4f;

const std::string kModelDir = std::string(FOURBIT_SOURCE_DIR) + "/models/minimax-m2-demo";
const std::string kGoldenDir = std::string(FOURBIT_SOURCE_DIR) + "/tests/golden/demo";

std::vector<int32_t> ids_of(const Tensor& tensor) {
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < tensor.numel(); ++i) {
        ids.push_back(static_cast<int32_t>(tensor.data<int64_t>()[i]));
    }
    return ids;
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

Tensor prefill(const MiniMaxM2& model, const std::vector<int32_t>& ids) {
    SequenceCache cache(model, static_cast<int64_t>(ids.size()));
    return cache.forward(model, ids, LogitRows::all);
}

// Sum over positions t of -log softmax(logits[t])[ids[t + 1]], in double.
double next_token_nll(const Tensor& logits, const std::vector<int32_t>& ids) {
    const int64_t vocab = logits.dim(1);
    double total = 0;
    for (int64_t t = 0; t + 1 < static_cast<int64_t>(ids.size()); ++t) {
        const float* row = logits.data<float>() + t * vocab;
        double largest = row[0];
        for (int64_t v = 1; v < vocab; ++v) largest = std::max(largest, double(row[v]));
        double sum = 0;
        for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - largest);
        total += largest + std::log(sum) - double(row[ids[t + 1]]);
    }
    return total;
}

class DemoModel : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        model_ = new MiniMaxM2(load_model_weights(kModelDir));
        reference_ = new std::shared_ptr<const SafetensorsFile>(
            SafetensorsFile::open(kGoldenDir + "/reference.safetensors"));
        summary_ = new nlohmann::json(read_json_file(kGoldenDir + "/reference.json"));
    }
    static void TearDownTestSuite() {
        delete model_;
        delete reference_;
        delete summary_;
    }
    static const SafetensorsFile& reference() { return **reference_; }
    static inline MiniMaxM2* model_ = nullptr;
    static inline std::shared_ptr<const SafetensorsFile>* reference_ = nullptr;
    static inline nlohmann::json* summary_ = nullptr;
};

TEST_F(DemoModel, ConfigIsMiniMaxM2AtDemoSize) {
    const MiniMaxM2Config& config = model_->config();
    EXPECT_EQ(config.num_local_experts, 16);
    EXPECT_EQ(config.num_experts_per_tok, 4);
    EXPECT_LT(config.num_key_value_heads, config.num_attention_heads);  // GQA
    EXPECT_EQ(config.rotary_dim * 2, config.head_dim);                 // partial RoPE
    // The native transformers config (rope_parameters.partial_rotary_factor) reads the same.
    MiniMaxM2Config native = parse_minimax_m2_config(
        read_json_file(kGoldenDir + "/config.transformers.json"), "native");
    EXPECT_EQ(native.rotary_dim, config.rotary_dim);
    EXPECT_EQ(native.q_width(), config.q_width());
}

TEST_F(DemoModel, LogitsMatchTransformers) {
    const auto& rows_from = (*summary_)["logit_rows_from"];
    ASSERT_EQ(rows_from.size(), 4u);
    for (int i = 0; i < 4; ++i) {
        std::vector<int32_t> prompt = ids_of(reference().tensor("prompt." + std::to_string(i)));
        Tensor logits = prefill(*model_, prompt);
        Tensor expected = reference().tensor("logits." + std::to_string(i));
        const int64_t first = rows_from[i].get<int64_t>();
        ASSERT_EQ(first + expected.dim(0), logits.dim(0)) << "prompt " << i;
        Tensor mine = logits.rows(first, expected.dim(0));
        float largest = 0;
        for (int64_t k = 0; k < expected.numel(); ++k) {
            largest = std::max(largest, std::fabs(mine.data<float>()[k] - expected.data<float>()[k]));
        }
        EXPECT_LT(largest, kLogitBound) << "prompt " << i;
        RecordProperty("max_abs_difference_" + std::to_string(i), std::to_string(largest));
    }
}

TEST_F(DemoModel, GreedyContinuationMatchesTransformers) {
    std::vector<int32_t> expected = ids_of(reference().tensor("greedy.0"));
    EXPECT_EQ(test_support::greedy_reference(*model_, ids_of(reference().tensor("prompt.0")),
                                               static_cast<int64_t>(expected.size())), expected);
}

// fourbit's tokenizer gives the held-out text the ids Hugging Face `tokenizers` gave it, and
// fourbit's perplexity over the reference windows (each window from scratch) is transformers'
// float64 one: per window within 1e-4 relative.
TEST_F(DemoModel, HeldOutPerplexityMatchesTransformers) {
    Tokenizer tokenizer = Tokenizer::load(kModelDir + "/tokenizer.json");
    std::vector<int32_t> ids = tokenizer.encode(read_text(kGoldenDir + "/heldout.txt"));
    std::vector<int32_t> expected = ids_of(reference().tensor("ppl.tokens"));
    ASSERT_GT(ids.size(), expected.size());
    ids.resize(expected.size());
    ASSERT_EQ(ids, expected) << "the tokenizer disagrees with Hugging Face tokenizers";

    const int64_t window = (*summary_)["ppl_window"].get<int64_t>();
    const auto& window_nll = (*summary_)["ppl_window_nll"];
    double total = 0;
    for (size_t w = 0; w < window_nll.size(); ++w) {
        std::vector<int32_t> row(expected.begin() + w * window, expected.begin() + (w + 1) * window + 1);
        std::vector<int32_t> inputs(row.begin(), row.end() - 1);
        Tensor logits = prefill(*model_, inputs);
        const double nll = next_token_nll(logits, row);
        const double reference_nll = window_nll[w].get<double>();
        EXPECT_NEAR(nll, reference_nll, 1e-4 * reference_nll) << "window " << w;
        total += nll;
    }
    const double perplexity = std::exp(total / (window * window_nll.size()));
    const double reference_perplexity = (*summary_)["ppl_float64"].get<double>();
    EXPECT_NEAR(perplexity, reference_perplexity, 1e-4 * reference_perplexity);
    RecordProperty("heldout_perplexity", std::to_string(perplexity));
    // And the model has learned the text: a uniform guess over the vocabulary would be 8192.
    EXPECT_LT(perplexity, 30.0);
}

// The tokenizer test corpus (tests/golden/tokenizers/corpus.json: whitespace, digits, scripts,
// emoji, added tokens) gets Hugging Face's ids with the demo tokenizer, and decodes back to
// Hugging Face's text (tools/demo-model/make_tokenizer_expected.py).
TEST_F(DemoModel, TokenizerMatchesHuggingFaceOnTheTokenizerCorpus) {
    Tokenizer tokenizer = Tokenizer::load(kModelDir + "/tokenizer.json");
    const nlohmann::json expected = read_json_file(kGoldenDir + "/tokenizer_expected.json");
    ASSERT_GT(expected["cases"].size(), 50u);
    for (const auto& test_case : expected["cases"]) {
        const std::string name = test_case["name"].get<std::string>();
        const std::vector<int32_t> ids = test_case["ids"].get<std::vector<int32_t>>();
        EXPECT_EQ(tokenizer.encode(test_case["text"].get<std::string>()), ids) << name;
        EXPECT_EQ(tokenizer.decode(ids), test_case["decoded"].get<std::string>()) << name;
    }
}

// Prompt 2 is a chat request rendered by jinja2 with the official template and tokenized by
// Hugging Face (tools/demo-model/make_prompts.py); fourbit's renderer, reading the template from
// the model's tokenizer_config.json, and tokenizer must give the same ids.
TEST_F(DemoModel, ChatPromptTokenizesAsTransformers) {
    const std::string body = R"({"messages": [{"role": "user",
        "content": "What's the weather like in Lisbon?"}],
      "tools": [{"type": "function", "function": {"name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string",
          "description": "The city name, e.g. Paris"}}, "required": ["city"]}}}]})";
    ChatTemplate chat_template = ChatTemplate::load_from_model_dir(kModelDir);
    std::string prompt = chat_template.render(parse_chat_request_text(body), true);
    Tokenizer tokenizer = Tokenizer::load(kModelDir + "/tokenizer.json");
    EXPECT_EQ(tokenizer.encode(prompt), ids_of(reference().tensor("prompt.2"))) << prompt;
}

TEST_F(DemoModel, IncrementalDecodeEqualsOnePrefill) {
    std::vector<int32_t> ids = ids_of(reference().tensor("prompt.2"));
    Tensor full = prefill(*model_, ids);
    SequenceCache cache(*model_, static_cast<int64_t>(ids.size()));
    const int64_t split = static_cast<int64_t>(ids.size()) - 8;
    std::vector<int32_t> head(ids.begin(), ids.begin() + split);
    cache.forward(*model_, head);
    for (int64_t t = split; t < static_cast<int64_t>(ids.size()); ++t) {
        std::vector<int32_t> one{ids[t]};
        Tensor logits = cache.forward(*model_, one);
        Tensor expected = full.rows(t, 1);
        float largest = 0;
        for (int64_t k = 0; k < expected.numel(); ++k) {
            largest = std::max(largest, std::fabs(logits.data<float>()[k] - expected.data<float>()[k]));
        }
        EXPECT_LT(largest, kLogitBound) << "position " << t;
    }
}

}  // namespace
}  // namespace fourbit
