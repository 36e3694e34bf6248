// Encoding and decoding (the pipeline Hugging Face runs, in the same order): added tokens in
// the raw text -> normalizer -> added tokens in the normalized text -> Splits -> ByteLevel ->
// BPE. Loading is in tokenizer_load.cpp.
#include "text/tokenizer.h"

#include <memory>

#include "text/byte_level.h"
#include "text/tokenizer_state.h"
#include "text/utf8.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fourbit {

using text_detail::TokenizerState;

namespace {

// One thread's buffers for one tokenizer: reused by every call, so the hot path allocates
// nothing once warm. Kept per thread (not shared) so the BPE cache needs no lock.
struct EncodeScratch {
    uint64_t instance = 0;
    uint64_t last_use = 0;
    text_detail::BpeCache cache;
    text_detail::BpeWork work;
    text_detail::MatchScratch match;
    std::string sanitized;             // the input with invalid UTF-8 replaced
    std::string normalized;            // NFC output
    std::vector<int32_t> code_points;  // NFC's working buffer
    std::string prefixed;              // a piece with ByteLevel's prefix space
};

EncodeScratch& scratch_for(const TokenizerState& state) {
    // A handful of tokenizers per thread at most; the least recently used one makes room.
    constexpr size_t kMaxPerThread = 4;
    thread_local std::vector<std::unique_ptr<EncodeScratch>> scratches;
    thread_local uint64_t clock = 0;
    ++clock;
    for (auto& s : scratches) {
        if (s->instance == state.instance) {
            s->last_use = clock;
            return *s;
        }
    }
    auto fresh = std::make_unique<EncodeScratch>();
    fresh->instance = state.instance;
    fresh->last_use = clock;
    if (scratches.size() < kMaxPerThread) {
        scratches.push_back(std::move(fresh));
        return *scratches.back();
    }
    auto oldest = scratches.begin();
    for (auto it = scratches.begin(); it != scratches.end(); ++it) {
        if ((*it)->last_use < (*oldest)->last_use) oldest = it;
    }
    *oldest = std::move(fresh);
    return **oldest;
}

// Runs the pre-tokenizer from Split number `stage` on `piece` (non-empty) and hands each
// final piece (raw bytes; ByteLevel's mapping is implicit) to `sink`.
template <typename Sink>
void pre_tokenize_piece(const TokenizerState& state, EncodeScratch& scratch, size_t stage,
                        std::string_view piece, Sink& sink) {
    if (stage < state.splits.size()) {
        text_detail::split_pieces(state.splits[stage], piece, scratch.match,
                                  [&](std::string_view sub) {
                                      pre_tokenize_piece(state, scratch, stage + 1, sub, sink);
                                  });
        return;
    }
    const text_detail::ByteLevelStep& byte_level = state.byte_level;
    std::string_view text = piece;
    if (byte_level.add_prefix_space && piece[0] != ' ') {
        // NOTE: ByteLevel is the last step, so one buffer serves every piece.
        scratch.prefixed.assign(1, ' ');
        scratch.prefixed.append(piece);
        text = scratch.prefixed;
    }
    if (byte_level.use_regex) {
        text_detail::split_pieces(byte_level.gpt2, text, scratch.match, sink);
    } else {
        sink(text);
    }
}

// The text to encode: `text` itself when valid UTF-8, else a copy with U+FFFD replacements.
std::string_view sanitized(std::string_view text, EncodeScratch& scratch) {
    if (utf8::is_valid(text)) return text;
    scratch.sanitized.clear();
    utf8::append_lossy(scratch.sanitized, text);
    return scratch.sanitized;
}

// NFC of `text` when the normalizer asks for it and it could change anything.
std::string_view normalized(const TokenizerState& state, std::string_view text,
                            EncodeScratch& scratch) {
    if (!state.nfc || !text_detail::may_need_nfc(text)) return text;
    text_detail::nfc(text, scratch.normalized, scratch.code_points);
    return scratch.normalized;
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerState> state) : state_(std::move(state)) {}

Tokenizer Tokenizer::load(const std::string& path) {
    auto file = MappedFile::open(path);
    return from_json_text(
        std::string_view(reinterpret_cast<const char*>(file->data()), file->size_bytes()), path);
}

Tokenizer Tokenizer::from_json_text(std::string_view json, const std::string& source) {
    return Tokenizer(text_detail::load_tokenizer_state(json, source));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    encode(text, ids);
    return ids;
}

void Tokenizer::encode(std::string_view text, std::vector<int32_t>& out) const {
    const TokenizerState& state = *state_;
    EncodeScratch& scratch = scratch_for(state);
    auto to_bpe = [&](std::string_view piece) {
        state.bpe.encode(piece, scratch.cache, scratch.work, out);
    };
    auto on_token = [&](int32_t id) { out.push_back(id); };
    auto on_normalized_text = [&](std::string_view segment) {
        if (!segment.empty()) pre_tokenize_piece(state, scratch, 0, segment, to_bpe);
    };
    auto on_raw_text = [&](std::string_view segment) {
        if (segment.empty()) return;
        state.normalized_added.split(normalized(state, segment, scratch), on_normalized_text,
                                     on_token);
    };
    state.raw_added.split(sanitized(text, scratch), on_raw_text, on_token);
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
    const TokenizerState& state = *state_;
    EncodeScratch& scratch = scratch_for(state);
    std::vector<std::string> pieces;
    auto collect = [&](std::string_view piece) {
        pieces.emplace_back();
        byte_level::append_mapped(pieces.back(), piece);
    };
    const std::string_view input = normalized(state, sanitized(text, scratch), scratch);
    if (!input.empty()) pre_tokenize_piece(state, scratch, 0, input, collect);
    return pieces;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    const TokenizerState& state = *state_;
    std::string bytes;
    for (int32_t id : ids) {
        if (!state.contains(id)) {
            fail("{}: token id {} is not in the vocabulary (size {})", state.source, id,
                 state.vocab_size());
        }
        if (skip_special_tokens && (state.flags[id] & TokenizerState::kSpecial)) continue;
        bytes.append(state.bytes_of(id));
    }
    if (utf8::is_valid(bytes)) return bytes;
    std::string text;
    utf8::append_lossy(text, bytes);
    return text;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token_text) const {
    const int32_t id = state_->text_to_id.find(token_text);
    if (id < 0) return std::nullopt;
    return id;
}

std::optional<std::string_view> Tokenizer::token_text(int32_t id) const {
    if (!state_->contains(id)) return std::nullopt;
    return state_->text_of(id);
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
    if (!state_->contains(id)) {
        fail("{}: token id {} is not in the vocabulary (size {})", state_->source, id,
             state_->vocab_size());
    }
    return state_->bytes_of(id);
}

bool Tokenizer::contains(int32_t id) const { return state_->contains(id); }

size_t Tokenizer::vocab_size() const { return state_->vocab_size(); }

bool Tokenizer::is_special(int32_t id) const {
    return state_->contains(id) && (state_->flags[id] & TokenizerState::kSpecial);
}

const std::string& Tokenizer::source() const { return state_->source; }

StreamDetokenizer::StreamDetokenizer(Tokenizer tokenizer, bool skip_special_tokens)
    : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

std::string StreamDetokenizer::push(int32_t id) {
    std::string out;
    push(id, out);
    return out;
}

void StreamDetokenizer::push(int32_t id, std::string& out) {
    const std::string_view bytes = tokenizer_.token_bytes(id);  // Error before any change
    if (skip_special_tokens_ && tokenizer_.is_special(id)) return;
    pending_.append(bytes);
    // Everything up to the last complete character goes out; the bytes of an unfinished one
    // wait. Invalid bytes count as complete and become U+FFFD exactly as decode() makes them,
    // since a maximal invalid subpart never straddles the cut.
    const size_t ready = utf8::complete_prefix_length(pending_);
    utf8::append_lossy(out, std::string_view(pending_).substr(0, ready));
    pending_.erase(0, ready);
}

std::string StreamDetokenizer::flush() {
    std::string out;
    utf8::append_lossy(out, pending_);
    pending_.clear();
    return out;
}

}  // namespace fourbit
