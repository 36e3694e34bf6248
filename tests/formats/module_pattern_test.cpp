// Ignore-list patterns in both spellings: fnmatch wildcards (whole name) and `re:` regexes
// (anchored at the start only, as Python's re.match), exact names, and the translation between
// the two spellings that convert relies on.
#include "formats/module_pattern.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace fourbit {
namespace {

bool matches(const std::string& pattern, const std::string& module) {
    return ModulePattern::parse(pattern, "test").matches(module);
}

TEST(ModulePattern, ExactNamesMatchOnlyThemselves) {
    EXPECT_EQ(ModulePattern::parse("lm_head", "t").kind(), ModulePattern::Kind::exact);
    EXPECT_TRUE(matches("lm_head", "lm_head"));
    EXPECT_FALSE(matches("lm_head", "lm_head.weight"));
    EXPECT_FALSE(matches("lm_head", "model.lm_head"));
    EXPECT_FALSE(matches("model.layers.0", "model.layers.0.self_attn.q_proj"));
}

TEST(ModulePattern, WildcardsMatchTheWholeNameAndStarCrossesDots) {
    EXPECT_EQ(ModulePattern::parse("model.layers.0.*", "t").kind(), ModulePattern::Kind::wildcard);
    EXPECT_TRUE(matches("model.layers.0.*", "model.layers.0.self_attn.q_proj"));
    EXPECT_TRUE(matches("model.layers.0.*", "model.layers.0.block_sparse_moe.experts.3.w1"));
    EXPECT_FALSE(matches("model.layers.0.*", "model.layers.10.self_attn.q_proj"));
    EXPECT_FALSE(matches("model.layers.0.*", "model.layers.0"));
    // fnmatch's `model.layers.1*` is the classic trap: it also takes layers 10-19.
    EXPECT_TRUE(matches("model.layers.1*", "model.layers.12.self_attn.o_proj"));
    // The whole name: `*gate` is the router, not gate_proj.
    EXPECT_TRUE(matches("*gate", "model.layers.3.block_sparse_moe.gate"));
    EXPECT_FALSE(matches("*gate", "model.layers.3.mlp.gate_proj"));
    EXPECT_TRUE(matches("*block_sparse_moe.gate*", "model.layers.3.block_sparse_moe.gate"));
    // A dot is a literal dot, not "any character".
    EXPECT_FALSE(matches("model.layers.0.*", "modelXlayersX0Xq"));
    // ? is one character, [seq] and [!seq] are sets, an unclosed [ is a literal.
    EXPECT_TRUE(matches("model.layers.?.self_attn.q_proj", "model.layers.7.self_attn.q_proj"));
    EXPECT_FALSE(matches("model.layers.?.self_attn.q_proj", "model.layers.17.self_attn.q_proj"));
    EXPECT_TRUE(matches("*.w[13]", "model.layers.1.block_sparse_moe.experts.0.w3"));
    EXPECT_FALSE(matches("*.w[13]", "model.layers.1.block_sparse_moe.experts.0.w2"));
    EXPECT_TRUE(matches("*.w[!13]", "model.layers.1.block_sparse_moe.experts.0.w2"));
    EXPECT_TRUE(matches("a[b*", "a[bcd"));
}

TEST(ModulePattern, RegexesAreAnchoredAtTheStartOnlyLikeReMatch) {
    EXPECT_EQ(ModulePattern::parse("re:.*gate$", "t").kind(), ModulePattern::Kind::regex);
    // re.match: must match from the first character...
    EXPECT_FALSE(matches("re:layers", "model.layers.0.self_attn.q_proj"));
    EXPECT_TRUE(matches("re:.*layers", "model.layers.0.self_attn.q_proj"));
    // ...but not to the last: a prefix is enough unless the regex says `$`.
    EXPECT_TRUE(
        matches("re:model\\.layers\\.0\\.", "model.layers.0.block_sparse_moe.experts.9.w2"));
    EXPECT_FALSE(matches("re:model\\.layers\\.0\\.", "model.layers.01.self_attn.q_proj"));
    EXPECT_TRUE(matches("re:.*block_sparse_moe\\.gate$", "model.layers.61.block_sparse_moe.gate"));
    EXPECT_FALSE(
        matches("re:.*block_sparse_moe\\.gate$", "model.layers.61.block_sparse_moe.gate_x"));
    EXPECT_FALSE(
        matches("re:.*block_sparse_moe\\.gate$", "model.layers.61.block_sparse_moe.experts.0.w1"));
    // Python syntax PCRE2 shares: classes, alternation, named groups.
    EXPECT_TRUE(matches("re:model\\.layers\\.(0|61)\\.", "model.layers.61.self_attn.k_proj"));
    EXPECT_FALSE(matches("re:model\\.layers\\.(0|61)\\.", "model.layers.6.self_attn.k_proj"));
    EXPECT_TRUE(matches("re:model\\.layers\\.\\d+\\.mlp", "model.layers.42.mlp"));
    EXPECT_TRUE(matches("re:(?P<l>model)\\.", "model.norm"));
}

TEST(ModulePattern, BadRegexIsAnErrorNamingPatternAndSource) {
    try {
        ModulePattern::parse("re:model.(layers", "config.json");
        FAIL() << "accepted an unbalanced regex";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("config.json"), std::string::npos) << message;
        EXPECT_NE(message.find("re:model.(layers"), std::string::npos) << message;
    }
}

TEST(ModulePattern, FirstMatchReportsThePattern) {
    std::vector<ModulePattern> patterns = {ModulePattern::parse("lm_head", "t"),
                                           ModulePattern::parse("*gate", "t")};
    ASSERT_NE(first_match(patterns, "model.layers.2.block_sparse_moe.gate"), nullptr);
    EXPECT_EQ(first_match(patterns, "model.layers.2.block_sparse_moe.gate")->text(), "*gate");
    EXPECT_EQ(first_match(patterns, "model.layers.2.self_attn.q_proj"), nullptr);
}

std::string as_regex(const std::string& text) {
    return pattern_as_regex(ModulePattern::parse(text, "t"));
}
std::optional<std::string> as_wildcard(const std::string& text) {
    return pattern_as_wildcard(ModulePattern::parse(text, "t"));
}

TEST(ModulePattern, SpellingsTranslateBothWays) {
    // The seed ignore list in both spellings.
    EXPECT_EQ(as_regex("*block_sparse_moe.gate"), "re:.*block_sparse_moe\\.gate$");
    EXPECT_EQ(as_wildcard("re:.*block_sparse_moe\\.gate$"), "*block_sparse_moe.gate");
    EXPECT_EQ(as_regex("model.layers.0.*"), "re:model\\.layers\\.0\\.");
    EXPECT_EQ(as_wildcard("re:model\\.layers\\.0\\."), "model.layers.0.*");
    EXPECT_EQ(as_regex("*embed_tokens*"), "re:.*embed_tokens");
    EXPECT_EQ(as_wildcard("re:.*embed_tokens"), "*embed_tokens*");
    EXPECT_EQ(as_regex("model.layers.?.mlp"), "re:model\\.layers\\..\\.mlp$");
    EXPECT_EQ(as_wildcard("re:model\\.layers\\..\\.mlp$"), "model.layers.?.mlp");
    EXPECT_EQ(as_wildcard("re:^lm_head\\Z"), "lm_head");
    // Exact names are exact in both.
    EXPECT_EQ(as_regex("lm_head"), "lm_head");
    EXPECT_EQ(as_wildcard("lm_head"), "lm_head");
    // Regexes with no wildcard spelling.
    EXPECT_EQ(as_wildcard("re:model\\.layers\\.\\d+\\."), std::nullopt);
    EXPECT_EQ(as_wildcard("re:model\\.layers\\.(0|61)\\."), std::nullopt);
    EXPECT_EQ(as_wildcard("re:a+"), std::nullopt);
}

// The translations keep the set of names matched.
TEST(ModulePattern, TranslationsMatchTheSameNames) {
    const std::vector<std::string> names = {"lm_head",
                                            "model.embed_tokens",
                                            "model.layers.0.self_attn.q_proj",
                                            "model.layers.10.self_attn.q_proj",
                                            "model.layers.1.block_sparse_moe.gate",
                                            "model.layers.1.block_sparse_moe.gate_up",
                                            "model.layers.1.block_sparse_moe.experts.2.w1",
                                            "model.layers.3.mlp"};
    for (const char* text : {"*block_sparse_moe.gate", "model.layers.0.*", "*embed_tokens*",
                             "model.layers.?.mlp", "*.w[13]", "model.layers.1*"}) {
        ModulePattern wildcard = ModulePattern::parse(text, "t");
        ModulePattern regex = ModulePattern::parse(pattern_as_regex(wildcard), "t");
        for (const std::string& name : names) {
            EXPECT_EQ(wildcard.matches(name), regex.matches(name)) << text << " on " << name;
        }
        if (auto back = pattern_as_wildcard(regex)) {
            ModulePattern again = ModulePattern::parse(*back, "t");
            for (const std::string& name : names) {
                EXPECT_EQ(wildcard.matches(name), again.matches(name)) << *back << " on " << name;
            }
        }
    }
}

}  // namespace
}  // namespace fourbit
