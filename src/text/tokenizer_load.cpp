// tokenizer.json -> TokenizerState: every field checked, every unsupported component refused
// by name, so that a file we accept is encoded exactly as Hugging Face encodes it.
#include <atomic>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "text/byte_level.h"
#include "text/tokenizer_state.h"
#include "text/utf8.h"
#include "util/error.h"

namespace fourbit::text_detail {

namespace {

using nlohmann::json;

// The pattern of Hugging Face's ByteLevel pre-tokenizer with use_regex (GPT-2's).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string describe(const json& value) {
    std::string text = value.dump();
    if (text.size() > 60) text = text.substr(0, 57) + "...";
    return text;
}

class Loader {
public:
    explicit Loader(const std::string& source) : source_(source) {}

    [[noreturn]] void bad(const std::string& field, const std::string& problem) const {
        fail("{}: {}: {}", source_, field, problem);
    }

    const json& member(const json& object, const char* key, const std::string& path) const {
        auto it = object.find(key);
        if (it == object.end()) bad(path, fmt::format("missing field '{}'", key));
        return *it;
    }

    const json& object_at(const json& value, const std::string& path) const {
        if (!value.is_object()) bad(path, "expected an object, got " + describe(value));
        return value;
    }

    // A boolean field; null or absent -> `fallback`.
    bool flag(const json& object, const char* key, bool fallback, const std::string& path) const {
        auto it = object.find(key);
        if (it == object.end() || it->is_null()) return fallback;
        if (!it->is_boolean())
            bad(path + "." + key, "expected true or false, got " + describe(*it));
        return it->get<bool>();
    }

    std::string string_at(const json& value, const std::string& path) const {
        if (!value.is_string()) bad(path, "expected a string, got " + describe(value));
        return value.get<std::string>();
    }

    // Ids index per-id tables, so a file with one huge id could claim gigabytes: ids are
    // capped far above any real vocabulary (the largest are ~260K).
    static constexpr int64_t kMaxId = (1 << 22) - 1;

    // A token id; -1 when `value` is not one (the caller names the field).
    static int32_t id_or_invalid(const json& value) {
        if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
            value.get<int64_t>() > kMaxId) {
            return -1;
        }
        return static_cast<int32_t>(value.get<int64_t>());
    }

    int32_t id_at(const json& value, const std::string& path) const {
        const int32_t id = id_or_invalid(value);
        if (id < 0) {
            bad(path, fmt::format("expected a token id (an integer from 0 to {}), got {}", kMaxId,
                                  describe(value)));
        }
        return id;
    }

    std::string type_of(const json& object, const std::string& path) const {
        object_at(object, path);
        return string_at(member(object, "type", path), path + ".type");
    }

    void normalizer(const json& value, const std::string& path, TokenizerState& state) const {
        if (value.is_null()) return;
        const std::string type = type_of(value, path);
        if (type == "NFC") {
            state.nfc = true;
        } else if (type == "Sequence") {
            const json& list = member(value, "normalizers", path);
            if (!list.is_array()) bad(path + ".normalizers", "expected an array");
            for (size_t i = 0; i < list.size(); ++i) {
                normalizer(list[i], fmt::format("{}.normalizers[{}]", path, i), state);
            }
        } else {
            bad(path, fmt::format("normalizer type '{}' is not supported (supported: NFC, "
                                  "Sequence)",
                                  type));
        }
    }

    void pre_tokenizer(const json& value, const std::string& path, TokenizerState& state,
                       bool& seen_byte_level) const {
        if (value.is_null()) return;
        const std::string type = type_of(value, path);
        if (type == "Sequence") {
            const json& list = member(value, "pretokenizers", path);
            if (!list.is_array()) bad(path + ".pretokenizers", "expected an array");
            for (size_t i = 0; i < list.size(); ++i) {
                pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", path, i), state,
                              seen_byte_level);
            }
        } else if (type == "Split") {
            if (seen_byte_level) bad(path, "a Split after ByteLevel is not supported");
            state.splits.push_back(split(value, path));
        } else if (type == "ByteLevel") {
            if (seen_byte_level) bad(path, "a second ByteLevel is not supported");
            seen_byte_level = true;
            state.byte_level.add_prefix_space = flag(value, "add_prefix_space", true, path);
            state.byte_level.use_regex = flag(value, "use_regex", true, path);
            if (state.byte_level.use_regex) {
                state.byte_level.gpt2.regex = Regex::compile(kGpt2Pattern, false, path);
            }
        } else {
            bad(path, fmt::format("pre-tokenizer type '{}' is not supported (supported: "
                                  "Sequence, Split, ByteLevel)",
                                  type));
        }
    }

    SplitStep split(const json& value, const std::string& path) const {
        SplitStep step;
        const json& pattern = object_at(member(value, "pattern", path), path + ".pattern");
        if (pattern.size() != 1 || (!pattern.contains("Regex") && !pattern.contains("String"))) {
            bad(path + ".pattern",
                "expected {\"Regex\": ...} or {\"String\": ...}, got " + describe(pattern));
        }
        const bool literal = pattern.contains("String");
        const std::string where = path + (literal ? ".pattern.String" : ".pattern.Regex");
        const std::string text = string_at(pattern.begin().value(), where);
        step.regex = Regex::compile(text, literal, fmt::format("{}: {}", source_, where));
        static const std::map<std::string, SplitBehavior> behaviors = {
            {"Removed", SplitBehavior::Removed},
            {"Isolated", SplitBehavior::Isolated},
            {"MergedWithPrevious", SplitBehavior::MergedWithPrevious},
            {"MergedWithNext", SplitBehavior::MergedWithNext},
            {"Contiguous", SplitBehavior::Contiguous},
        };
        const std::string behavior = string_at(member(value, "behavior", path), path + ".behavior");
        auto it = behaviors.find(behavior);
        if (it == behaviors.end()) bad(path + ".behavior", "unknown behavior '" + behavior + "'");
        step.behavior = it->second;
        step.invert = flag(value, "invert", false, path);
        return step;
    }

    void decoder(const json& value, const std::string& path) const {
        if (value.is_null()) {
            bad(path, "a byte-level tokenizer needs the ByteLevel decoder (found none)");
        }
        const std::string type = type_of(value, path);
        if (type == "Sequence") {
            const json& list = member(value, "decoders", path);
            if (!list.is_array() || list.size() != 1) {
                bad(path, "only a Sequence of one ByteLevel decoder is supported");
            }
            decoder(list[0], path + ".decoders[0]");
        } else if (type != "ByteLevel") {
            bad(path,
                fmt::format("decoder type '{}' is not supported (supported: ByteLevel)", type));
        }
    }

private:
    const std::string& source_;
};

struct Vocabulary {
    std::vector<std::string> text_of_id;  // "" where no entry
    std::vector<bool> has_id;
    StringIdMap ids;
};

Vocabulary read_vocab(const Loader& loader, const json& model) {
    const json& vocab = loader.member(model, "vocab", "model");
    if (!vocab.is_object()) loader.bad("model.vocab", "expected an object of token -> id");
    Vocabulary v;
    v.ids.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        int32_t id = Loader::id_or_invalid(it.value());
        if (id < 0) id = loader.id_at(it.value(), "model.vocab['" + it.key() + "']");  // fails
        if (static_cast<size_t>(id) >= v.text_of_id.size()) {
            v.text_of_id.resize(id + 1);
            v.has_id.resize(id + 1);
        }
        if (v.has_id[id]) {
            loader.bad("model.vocab", fmt::format("id {} is given to both '{}' and '{}'", id,
                                                  v.text_of_id[id], it.key()));
        }
        v.has_id[id] = true;
        v.text_of_id[id] = it.key();
        v.ids.insert(it.key(), id);  // keys of a JSON object are unique
    }
    return v;
}

void read_model(const Loader& loader, const json& root, TokenizerState& state, Vocabulary& v) {
    const json& model = loader.object_at(loader.member(root, "model", "(root)"), "model");
    if (model.contains("type")) {
        const std::string type = loader.string_at(model["type"], "model.type");
        if (type != "BPE") {
            loader.bad("model.type",
                       fmt::format("model type '{}' is not supported (only BPE)", type));
        }
    }
    v = read_vocab(loader, model);
    if (model.contains("dropout") && !model["dropout"].is_null() &&
        !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
        loader.bad("model.dropout",
                   "BPE dropout is not supported, got " + describe(model["dropout"]));
    }
    if (loader.flag(model, "byte_fallback", false, "model")) {
        loader.bad("model.byte_fallback", "byte_fallback is not supported");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (model.contains(key) && !model[key].is_null() &&
            loader.string_at(model[key], fmt::format("model.{}", key)) != "") {
            loader.bad(fmt::format("model.{}", key),
                       "subword prefixes and suffixes are not "
                       "supported, got " +
                           describe(model[key]));
        }
    }
    BpeModel& bpe = state.bpe;
    bpe.ignore_merges = loader.flag(model, "ignore_merges", false, "model");
    bpe.fuse_unk = loader.flag(model, "fuse_unk", false, "model");
    if (model.contains("unk_token") && !model["unk_token"].is_null()) {
        const std::string unk = loader.string_at(model["unk_token"], "model.unk_token");
        bpe.unk_id = v.ids.find(unk);
        if (bpe.unk_id < 0) loader.bad("model.unk_token", "'" + unk + "' is not in the vocabulary");
    }
    for (int b = 0; b < 256; ++b) {
        std::string c;
        utf8::append(c, byte_level::char_of_byte(static_cast<uint8_t>(b)));
        bpe.byte_ids[b] = v.ids.find(c);
    }
    if (bpe.ignore_merges) {
        std::string bytes;
        bpe.raw_vocab.reserve(v.ids.size());
        for (size_t id = 0; id < v.text_of_id.size(); ++id) {
            if (v.has_id[id] && byte_level::unmap(v.text_of_id[id], bytes)) {
                bpe.raw_vocab.insert(bytes, static_cast<int32_t>(id));
            }
        }
    }

    const json& merges = loader.member(model, "merges", "model");
    if (!merges.is_array()) loader.bad("model.merges", "expected an array");
    bpe.merges.reserve(merges.size());
    uint32_t rank = 0;
    std::string merged_text;
    for (size_t i = 0; i < merges.size(); ++i) {
        const json& merge = merges[i];
        auto path = [i] { return fmt::format("model.merges[{}]", i); };
        std::string_view left, right;
        if (merge.is_string()) {
            const std::string& line = merge.get_ref<const std::string&>();
            if (line.rfind("#version", 0) == 0) continue;  // skipped, and takes no rank
            const size_t space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
                loader.bad(path(),
                           "expected two tokens separated by one space, got '" + line + "'");
            }
            left = std::string_view(line).substr(0, space);
            right = std::string_view(line).substr(space + 1);
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                   merge[1].is_string()) {
            left = merge[0].get_ref<const std::string&>();
            right = merge[1].get_ref<const std::string&>();
        } else {
            loader.bad(path(), "expected \"a b\" or [\"a\", \"b\"], got " + describe(merge));
        }
        const int32_t left_id = v.ids.find(left);
        const int32_t right_id = v.ids.find(right);
        merged_text.assign(left).append(right);
        const int32_t merged_id = v.ids.find(merged_text);
        for (const auto& [id, text] : {std::pair{left_id, left}, std::pair{right_id, right},
                                       std::pair{merged_id, std::string_view(merged_text)}}) {
            if (id < 0) loader.bad(path(), fmt::format("'{}' is not in the vocabulary", text));
        }
        bpe.merges.insert(left_id, right_id, rank++, merged_id);
    }
}

void read_added_tokens(const Loader& loader, const json& root, TokenizerState& state, Vocabulary& v,
                       std::vector<AddedToken>& added) {
    auto it = root.find("added_tokens");
    if (it == root.end() || it->is_null()) return;
    if (!it->is_array()) loader.bad("added_tokens", "expected an array");
    std::map<int32_t, size_t> index_of_id;
    std::map<std::string, size_t> index_of_content;
    for (size_t i = 0; i < it->size(); ++i) {
        const std::string path = fmt::format("added_tokens[{}]", i);
        const json& entry = loader.object_at((*it)[i], path);
        AddedToken token;
        token.id = loader.id_at(loader.member(entry, "id", path), path + ".id");
        token.content = loader.string_at(loader.member(entry, "content", path), path + ".content");
        token.special = loader.flag(entry, "special", false, path);
        token.single_word = loader.flag(entry, "single_word", false, path);
        token.lstrip = loader.flag(entry, "lstrip", false, path);
        token.rstrip = loader.flag(entry, "rstrip", false, path);
        token.normalized = loader.flag(entry, "normalized", true, path);
        if (token.content.empty()) continue;  // Hugging Face ignores these
        if (auto c = index_of_content.find(token.content); c != index_of_content.end()) {
            const AddedToken& other = added[c->second];
            if (other.id != token.id) {
                loader.bad(path, fmt::format("'{}' is added twice, with ids {} and {}",
                                             token.content, other.id, token.id));
            }
            added[c->second] = token;  // the later definition's flags, as Hugging Face
            continue;
        }
        if (auto d = index_of_id.find(token.id); d != index_of_id.end()) {
            loader.bad(path, fmt::format("id {} is given to both '{}' and '{}'", token.id,
                                         added[d->second].content, token.content));
        }
        const int32_t vocab_id = v.ids.find(token.content);
        if (vocab_id >= 0 && vocab_id != token.id) {
            loader.bad(path, fmt::format("'{}' has id {} but the vocabulary gives it id {}",
                                         token.content, token.id, vocab_id));
        }
        if (vocab_id < 0 && static_cast<size_t>(token.id) < v.has_id.size() && v.has_id[token.id]) {
            loader.bad(path, fmt::format("id {} of '{}' is the vocabulary's '{}'", token.id,
                                         token.content, v.text_of_id[token.id]));
        }
        index_of_id[token.id] = added.size();
        index_of_content[token.content] = added.size();
        added.push_back(token);
    }
}

// Per-id tables: text, decoded bytes, flags; and the matchers of added tokens.
void build_tables(TokenizerState& state, const Vocabulary& v,
                  const std::vector<AddedToken>& added) {
    size_t size = v.text_of_id.size();
    for (const AddedToken& t : added) size = std::max(size, static_cast<size_t>(t.id) + 1);
    std::vector<const AddedToken*> added_of_id(size, nullptr);
    for (const AddedToken& t : added) added_of_id[t.id] = &t;

    // What the decoder sees for an added token: its normalized form when it is normalized
    // (Hugging Face's simple_id_to_token).
    std::vector<std::string> decode_text(added.size());
    std::vector<std::string> raw_patterns, normalized_patterns;
    std::vector<AddedToken> raw_tokens, normalized_tokens;
    for (size_t i = 0; i < added.size(); ++i) {
        const AddedToken& t = added[i];
        decode_text[i] = t.content;
        std::vector<int32_t> buffer;
        if (t.normalized && state.nfc) nfc(t.content, decode_text[i], buffer);
        (t.normalized ? normalized_patterns : raw_patterns).push_back(decode_text[i]);
        (t.normalized ? normalized_tokens : raw_tokens).push_back(t);
    }
    state.raw_added.build(raw_patterns, raw_tokens);
    state.normalized_added.build(normalized_patterns, normalized_tokens);

    state.flags.assign(size, 0);
    state.text_offsets.assign(size + 1, 0);
    state.bytes_offsets.assign(size + 1, 0);
    state.text_to_id.reserve(size);
    for (size_t id = 0; id < size; ++id) {
        state.text_offsets[id] = static_cast<uint32_t>(state.text_arena.size());
        state.bytes_offsets[id] = static_cast<uint32_t>(state.bytes_arena.size());
        if (const AddedToken* t = added_of_id[id]) {
            const std::string& shown = decode_text[t - added.data()];
            state.flags[id] = TokenizerState::kExists | (t->special ? TokenizerState::kSpecial : 0);
            state.text_arena += t->content;
            state.bytes_arena += byte_level::unmapped_bytes(shown);
            state.text_to_id.insert(t->content, static_cast<int32_t>(id));
        } else if (id < v.has_id.size() && v.has_id[id]) {
            state.flags[id] = TokenizerState::kExists;
            state.text_arena += v.text_of_id[id];
            state.bytes_arena += byte_level::unmapped_bytes(v.text_of_id[id]);
            state.text_to_id.insert(v.text_of_id[id], static_cast<int32_t>(id));
        }
    }
    state.text_offsets[size] = static_cast<uint32_t>(state.text_arena.size());
    state.bytes_offsets[size] = static_cast<uint32_t>(state.bytes_arena.size());
}

}  // namespace

std::shared_ptr<const TokenizerState> load_tokenizer_state(std::string_view json_text,
                                                           const std::string& source) {
    static std::atomic<uint64_t> next_instance{1};
    json root;
    try {
        root = json::parse(json_text.begin(), json_text.end());
    } catch (const json::exception& e) {
        fail("{}: not a valid JSON file: {}", source, e.what());
    }
    Loader loader(source);
    loader.object_at(root, "(root)");
    auto state = std::make_shared<TokenizerState>();
    state->instance = next_instance.fetch_add(1);
    state->source = source;
    try {
        loader.normalizer(root.value("normalizer", json()), "normalizer", *state);
        bool seen_byte_level = false;
        loader.pre_tokenizer(root.value("pre_tokenizer", json()), "pre_tokenizer", *state,
                             seen_byte_level);
        if (!seen_byte_level) {
            loader.bad("pre_tokenizer", "not a byte-level BPE: no ByteLevel pre-tokenizer");
        }
        loader.decoder(root.value("decoder", json()), "decoder");
        Vocabulary vocab;
        read_model(loader, root, *state, vocab);
        std::vector<AddedToken> added;
        read_added_tokens(loader, root, *state, vocab, added);
        build_tables(*state, vocab, added);
    } catch (const json::exception& e) {
        // A value of an unexpected JSON type somewhere the checks above did not foresee.
        fail("{}: unexpected content: {}", source, e.what());
    }
    return state;
}

}  // namespace fourbit::text_detail
