#include "text/minimax_special_tokens.h"

#include <algorithm>
#include <array>
#include <string>

namespace fourbit {

const std::vector<AddedTokenSpec>& minimax_m2_added_tokens() {
    static const std::vector<AddedTokenSpec> tokens = [] {
        // Ids known from the published configs and the parsers' needs (minimax_m2.md §4).
        std::vector<AddedTokenSpec> known = {
            {"]!p~[", 0, true},
            {"]~b]", 19, true},
            {"[e~[", 20, true},
            {"]!d~[", 21, true},
            {"]<]start of image[>[", 29, true},
            {"]<]end of image[>[", 30, true},
            {"]<]vision pad[>[", 33, true},
            {"]~!b[", 34, true},
            {"<think>", 50, false},
            {"</think>", 51, false},
            {"<minimax:tool_call>", 52, false},
            {"</minimax:tool_call>", 53, false},
        };
        // The rest of tokenizer_config.json's extra_special_tokens fill the free offsets in
        // the order that file lists them (their exact ids are not published); <reserved_N>
        // stand for offsets whose token is not published at all.
        static const std::array<std::string_view, 52> rest = {
            "<code_interpreter>", "<commit_after>", "<commit_before>", "<commit_msg>",
            "<empty_output>", "<filename>", "<fim_middle>", "<fim_pad>", "<fim_prefix>",
            "<fim_suffix>", "<function_call>", "<gh_stars>", "]<]speech[>[", "]<]image[>[",
            "]<]video[>[", "]<]start of speech[>[", "]<]end of speech[>[",
            "]<]start of video[>[", "]<]end of video[>[", "<issue_closed>", "<issue_comment>",
            "<issue_start>", "<jupyter_code>", "<jupyter_output>", "<jupyter_start>",
            "<jupyter_text>", "<reponame>", "<jupyter_error>", "<add_file>", "<delete_file>",
            "<rename_file>", "<edit_file>", "<commit_message>", "<empty_source_file>",
            "<repo_struct>", "<code_context>", "<file_content>", "<source_files>", "<pr_start>",
            "<review_comment>", "<filepath>", "<file_sep>", "<reserved_0>", "<reserved_1>",
            "<reserved_2>", "<reserved_3>", "<reserved_4>", "<reserved_5>", "<reserved_6>",
            "<reserved_7>", "<reserved_8>", "<reserved_9>"};
        std::vector<AddedTokenSpec> all = known;
        size_t next = 0;
        for (int32_t offset = 0; offset < kMiniMaxM2AddedTokenCount; ++offset) {
            bool taken = std::any_of(known.begin(), known.end(),
                                     [offset](const AddedTokenSpec& t) { return t.offset == offset; });
            if (!taken) all.push_back({rest[next++], offset, true});
        }
        std::sort(all.begin(), all.end(),
                  [](const AddedTokenSpec& a, const AddedTokenSpec& b) { return a.offset < b.offset; });
        return all;
    }();
    return tokens;
}

}  // namespace fourbit
