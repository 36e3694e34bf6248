#include "text/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>
#include <map>
#include <memory>

namespace fourbit::text_detail {

namespace {

// Decodes the character of valid UTF-8 `text` that starts at `i`.
uint32_t decode_at(std::string_view text, size_t i, size_t* length) {
    utf8proc_int32_t c = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                    static_cast<utf8proc_ssize_t>(text.size() - i), &c);
    *length = n > 0 ? static_cast<size_t>(n) : 1;
    return n > 0 ? static_cast<uint32_t>(c) : 0xfffd;
}

// Start of the character of valid UTF-8 `text` that ends at `end` (> 0).
size_t previous_char_start(std::string_view text, size_t end) {
    size_t i = end - 1;
    while (i > 0 && (static_cast<uint8_t>(text[i]) & 0xc0) == 0x80) --i;
    return i;
}

}  // namespace

bool is_unicode_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

bool is_word_char(uint32_t c) {
    if (c < 0x80) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    }
    if (c == 0x200c || c == 0x200d) return true;  // Join_Control
    if ((c >= 0x24b6 && c <= 0x24e9) || (c >= 0x1f130 && c <= 0x1f149) ||
        (c >= 0x1f150 && c <= 0x1f169) || (c >= 0x1f170 && c <= 0x1f189)) {
        return true;  // Other_Alphabetic symbols (circled and squared letters)
    }
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
        case UTF8PROC_CATEGORY_LU:
        case UTF8PROC_CATEGORY_LL:
        case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM:
        case UTF8PROC_CATEGORY_LO:
        case UTF8PROC_CATEGORY_MN:
        case UTF8PROC_CATEGORY_MC:
        case UTF8PROC_CATEGORY_ME:
        case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_NL:
        case UTF8PROC_CATEGORY_PC:
            return true;
        default:
            return false;
    }
}

void AddedTokenMatcher::build(const std::vector<std::string>& patterns,
                              const std::vector<AddedToken>& tokens) {
    // A pointer trie first, then flattened into nodes_ / edges_ breadth-first.
    struct BuildNode {
        int32_t token = -1;
        std::map<uint8_t, std::unique_ptr<BuildNode>> children;
    };
    BuildNode root;
    tokens_ = tokens;
    for (size_t t = 0; t < patterns.size(); ++t) {
        const std::string& pattern = patterns[t];
        if (pattern.empty()) continue;
        BuildNode* node = &root;
        for (char c : pattern) {
            auto& child = node->children[static_cast<uint8_t>(c)];
            if (!child) child = std::make_unique<BuildNode>();
            node = child.get();
        }
        node->token = static_cast<int32_t>(t);
        first_byte_[static_cast<uint8_t>(pattern[0])] = true;
    }
    nodes_.clear();
    edges_.clear();
    std::vector<const BuildNode*> order{&root};
    nodes_.push_back(Node{root.token, 0, 0});
    for (size_t k = 0; k < order.size(); ++k) {
        const BuildNode* node = order[k];
        nodes_[k].first_edge = static_cast<uint32_t>(edges_.size());
        nodes_[k].n_edges = static_cast<uint32_t>(node->children.size());
        for (const auto& [byte, child] : node->children) {
            edges_.push_back(Edge{byte, static_cast<uint32_t>(order.size())});
            order.push_back(child.get());
            nodes_.push_back(Node{child->token, 0, 0});
        }
    }
    if (patterns.empty() || std::none_of(patterns.begin(), patterns.end(),
                                         [](const std::string& p) { return !p.empty(); })) {
        tokens_.clear();
    }
}

int32_t AddedTokenMatcher::longest_match(std::string_view text, size_t pos, size_t* length) const {
    int32_t best = -1;
    uint32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
        const Node& n = nodes_[node];
        const auto byte = static_cast<uint8_t>(text[i]);
        const Edge* begin = edges_.data() + n.first_edge;
        const Edge* end = begin + n.n_edges;
        const Edge* e = std::lower_bound(begin, end, byte,
                                         [](const Edge& edge, uint8_t b) { return edge.byte < b; });
        if (e == end || e->byte != byte) break;
        node = e->child;
        if (nodes_[node].token >= 0) {
            best = nodes_[node].token;
            *length = i + 1 - pos;
        }
    }
    return best;
}

bool AddedTokenMatcher::accept(const AddedToken& token, std::string_view text, size_t* start,
                               size_t* stop, size_t emitted) {
    size_t length = 0;
    if (token.single_word) {
        const bool word_before =
            *start > 0 && is_word_char(decode_at(text, previous_char_start(text, *start), &length));
        const bool word_after =
            *stop < text.size() && is_word_char(decode_at(text, *stop, &length));
        if (word_before || word_after) return false;
    }
    if (token.lstrip) {
        size_t s = *start;
        while (s > 0) {
            const size_t p = previous_char_start(text, s);
            if (!is_unicode_space(decode_at(text, p, &length))) break;
            s = p;
        }
        *start = std::max(s, emitted);
    }
    if (token.rstrip) {
        while (*stop < text.size() && is_unicode_space(decode_at(text, *stop, &length))) {
            *stop += length;
        }
    }
    return true;
}

}  // namespace fourbit::text_detail
