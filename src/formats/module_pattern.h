// Module-name patterns of quantization configs (compressed-tensors `ignore`, ModelOpt
// `exclude_modules`), in every spelling the producers write:
//   exact     `lm_head`                      the whole name
//   wildcard  `model.layers.0.*`, `*gate`    Python fnmatch (ModelOpt, vLLM's ModelOpt loader):
//                                            `*` any run, `?` one character, `[seq]`, `[!seq]`;
//                                            the whole name must match
//   regex     `re:.*block_sparse_moe\.gate$` Python re.match (compressed-tensors): anchored at the
//                                            start of the name only, so `re:model\.layers\.0\.`
//                                            covers everything under layer 0
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fourbit {

class ModulePattern {
public:
    enum class Kind { exact, wildcard, regex };

    // `source` names the file for errors (a regex that does not compile).
    static ModulePattern parse(const std::string& text, std::string_view source);

    bool matches(std::string_view module) const;
    Kind kind() const { return kind_; }
    const std::string& text() const { return text_; }

private:
    struct Compiled;
    std::string text_;
    Kind kind_ = Kind::exact;
    std::shared_ptr<const Compiled> compiled_;  // wildcard and regex: PCRE2 code
};

// The first pattern of `patterns` that matches `module`, or nullptr.
const ModulePattern* first_match(const std::vector<ModulePattern>& patterns,
                                 std::string_view module);

// The same set of names in the other spelling. An exact name stays as it is (both loaders take
// exact names). A wildcard always has a regex twin; a regex has a wildcard twin only when it is
// made of literals, `.`, `.*` and an optional final `$`. The two are inverse on the forms they
// produce: `model.layers.0.*` <-> `re:model\.layers\.0\.`, `*block_sparse_moe.gate` <->
// `re:.*block_sparse_moe\.gate$`.
std::string pattern_as_regex(const ModulePattern& pattern);
std::optional<std::string> pattern_as_wildcard(const ModulePattern& pattern);

}  // namespace fourbit
