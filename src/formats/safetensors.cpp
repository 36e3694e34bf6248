// Reading and writing safetensors files. The reader trusts nothing in the file: every length,
// offset and shape is checked before a pointer into the mapping is formed.
#include "formats/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"

namespace fourbit {

namespace {

using nlohmann::json;

constexpr uint64_t kLengthBytes = 8;
// Real headers are a few MB even with 100k tensors. A bigger claim is a corrupt or hostile
// file, and refusing it bounds what the JSON parser may allocate.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// The deepest a valid header nests is root object > tensor entry > shape array. Refusing
// anything deeper keeps a hostile "[[[[..." from costing more than it must.
constexpr int kMaxJsonDepth = 3;
constexpr std::string_view kMetadataKey = "__metadata__";

uint64_t decode_u64_le(const uint8_t* bytes) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
    return value;
}

void encode_u64_le(uint64_t value, uint8_t* bytes) {
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
}

// Multiplies extents left to right, as shape_numel does, and fails where any partial product
// leaves int64: shape_numel would overflow there, which is undefined behaviour.
uint64_t checked_size_bytes(DType dtype, const Shape& shape, const std::string& where) {
    int64_t numel = 1;
    for (int64_t extent : shape) {
        if (extent < 0) fail("{}: shape {} has a negative extent", where, shape_text(shape));
        if (__builtin_mul_overflow(numel, extent, &numel)) {
            fail("{}: shape {} has more elements than fit in 64 bits", where, shape_text(shape));
        }
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), dtype_size_bytes(dtype), &bytes)) {
        fail("{}: shape {} of dtype {} has more bytes than fit in 64 bits", where,
             shape_text(shape), dtype_name(dtype));
    }
    return bytes;
}

json parse_header(const std::string& path, const char* begin, const char* end) {
    // nlohmann keeps the last of two equal keys, which would silently drop a tensor, so the
    // top-level keys are checked for repeats while parsing.
    std::set<std::string> seen_names;
    auto guard = [&](int depth, json::parse_event_t event, json& parsed) {
        bool opens =
            event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
        if (opens && depth >= kMaxJsonDepth) {
            fail("{}: header JSON nests deeper than a safetensors header can", path);
        }
        if (event == json::parse_event_t::key && depth == 1) {
            const auto& name = parsed.get_ref<const std::string&>();
            if (!seen_names.insert(name).second) {
                fail("{}: tensor '{}' appears twice in the header", path, name);
            }
        }
        return true;
    };
    try {
        return json::parse(begin, end, guard);
    } catch (const json::exception& e) {
        fail("{}: header is not valid JSON: {}", path, e.what());
    }
}

Shape parse_shape(const std::string& where, const json& entry) {
    auto field = entry.find("shape");
    if (field == entry.end() || !field->is_array()) {
        fail("{}: field \"shape\" is missing or not an array", where);
    }
    Shape shape;
    shape.reserve(field->size());
    for (const json& extent : *field) {
        if (extent.is_number_unsigned()) {
            uint64_t value = extent.get<uint64_t>();
            if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                fail("{}: field \"shape\" has extent {}, too large for 64 bits", where, value);
            }
            shape.push_back(static_cast<int64_t>(value));
        } else if (extent.is_number_integer()) {
            fail("{}: field \"shape\" has negative extent {}", where, extent.get<int64_t>());
        } else {
            fail("{}: field \"shape\" has extent {}, not an integer", where, extent.dump());
        }
    }
    return shape;
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& value) {
    std::string where = fmt::format("{}: tensor '{}'", path, name);
    if (!value.is_object()) fail("{}: entry is not a JSON object", where);

    auto dtype_field = value.find("dtype");
    if (dtype_field == value.end() || !dtype_field->is_string()) {
        fail("{}: field \"dtype\" is missing or not a string", where);
    }
    const auto& dtype_text = dtype_field->get_ref<const std::string&>();
    std::optional<DType> dtype = dtype_from_name(dtype_text);
    if (!dtype) fail("{}: unknown dtype \"{}\"", where, dtype_text);

    Shape shape = parse_shape(where, value);

    auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
        fail("{}: field \"data_offsets\" is not [begin, end] of two non-negative integers", where);
    }
    uint64_t begin = (*offsets)[0].get<uint64_t>();
    uint64_t end = (*offsets)[1].get<uint64_t>();
    if (end < begin) fail("{}: data_offsets [{}, {}] end before they begin", where, begin, end);

    uint64_t needed = checked_size_bytes(*dtype, shape, where);
    if (end - begin != needed) {
        fail("{}: shape {} of dtype {} needs {} bytes but data_offsets give {}", where,
             shape_text(shape), dtype_text, needed, end - begin);
    }
    return SafetensorsEntry{name, *dtype, std::move(shape), begin, end};
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& value) {
    if (!value.is_object()) fail("{}: \"{}\" is not a JSON object", path, kMetadataKey);
    std::map<std::string, std::string> metadata;
    for (auto it = value.begin(); it != value.end(); ++it) {
        if (!it.value().is_string()) {
            fail("{}: \"{}\" value of key '{}' is not a string", path, kMetadataKey, it.key());
        }
        metadata.emplace(it.key(), it.value().get<std::string>());
    }
    return metadata;
}

// `entries` sorted by begin offset. Then if no range overlaps the one before it, ends never
// decrease either, so checking neighbours finds every overlap. Empty ranges hold no bytes and
// collide with nothing.
void check_no_overlap(const std::string& path, const std::vector<SafetensorsEntry>& entries) {
    const SafetensorsEntry* previous = nullptr;  // the last non-empty range
    for (const auto& entry : entries) {
        if (entry.begin_bytes == entry.end_bytes) continue;
        if (previous != nullptr && entry.begin_bytes < previous->end_bytes) {
            fail("{}: tensors '{}' (bytes {}..{}) and '{}' (bytes {}..{}) overlap", path,
                 previous->name, previous->begin_bytes, previous->end_bytes, entry.name,
                 entry.begin_bytes, entry.end_bytes);
        }
        previous = &entry;
    }
}

// Compact JSON, tensors in plan order, padded with spaces so the data starts 8-byte aligned.
// Built member by member because nlohmann's ordered_json looks keys up linearly, which is
// quadratic over the 100k+ tensors of a large MoE checkpoint.
std::string encode_header(const std::string& path, const std::vector<TensorPlan>& plan,
                          const std::map<std::string, std::string>& metadata) {
    std::string text = "{";
    auto append_member = [&](std::string_view key, const json& value) {
        if (text.size() > 1) text += ',';
        text += json(key).dump();
        text += ':';
        text += value.dump();
    };
    try {
        if (!metadata.empty()) append_member(kMetadataKey, json(metadata));
        std::set<std::string_view> names;
        uint64_t offset = 0;
        for (const auto& tensor : plan) {
            std::string where = fmt::format("{}: tensor '{}'", path, tensor.name);
            if (tensor.name == kMetadataKey) fail("{}: the name is reserved for metadata", where);
            if (!names.insert(tensor.name).second) fail("{}: planned twice", where);
            uint64_t bytes = checked_size_bytes(tensor.dtype, tensor.shape, where);
            uint64_t end = 0;
            if (__builtin_add_overflow(offset, bytes, &end)) {
                fail("{}: ends past 2^64 bytes", where);
            }
            json entry = {{"dtype", std::string(dtype_name(tensor.dtype))},
                          {"shape", tensor.shape},
                          {"data_offsets", json::array({offset, end})}};
            append_member(tensor.name, entry);
            offset = end;
        }
    } catch (const json::exception& e) {
        // dump() refuses names or metadata that are not valid UTF-8.
        fail("{}: cannot encode the header: {}", path, e.what());
    }
    text += '}';
    text.append((kLengthBytes - text.size() % kLengthBytes) % kLengthBytes, ' ');
    return text;
}

// A file written under `final_path + ".tmp"` and renamed into place only by commit(), so a
// crash or an error never leaves a truncated file under the final name.
class PendingFile {
public:
    explicit PendingFile(std::string final_path)
        : final_path_(std::move(final_path)), temp_path_(final_path_ + ".tmp") {
        file_ = std::fopen(temp_path_.c_str(), "wb");
        if (file_ == nullptr) fail("cannot create {}: {}", temp_path_, std::strerror(errno));
    }
    ~PendingFile() {
        if (file_ != nullptr) std::fclose(file_);
        if (!committed_) {
            std::error_code ignored;
            std::filesystem::remove(temp_path_, ignored);
        }
    }
    PendingFile(const PendingFile&) = delete;
    PendingFile& operator=(const PendingFile&) = delete;

    void write(const void* data, size_t size_bytes) {
        if (size_bytes == 0) return;
        if (std::fwrite(data, 1, size_bytes, file_) != size_bytes) {
            fail("cannot write {}: {}", temp_path_, std::strerror(errno));
        }
    }

    void commit() {
        // fflush and fsync surface errors that fwrite defers (a full disk, a lost NFS server);
        // fsync also keeps the rename from reaching the disk before the data does.
        bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
        int flush_errno = errno;
        bool closed = std::fclose(file_) == 0;
        file_ = nullptr;
        if (!flushed || !closed) {
            fail("cannot write {}: {}", temp_path_, std::strerror(flushed ? errno : flush_errno));
        }
        std::error_code error;
        std::filesystem::rename(temp_path_, final_path_, error);
        if (error) fail("cannot rename {} to {}: {}", temp_path_, final_path_, error.message());
        committed_ = true;
    }

private:
    std::string final_path_;
    std::string temp_path_;
    std::FILE* file_ = nullptr;
    bool committed_ = false;
};

}  // namespace

uint64_t planned_size_bytes(const TensorPlan& plan) {
    return checked_size_bytes(plan.dtype, plan.shape, fmt::format("tensor '{}'", plan.name));
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    auto result = std::make_shared<SafetensorsFile>();
    result->file_ = MappedFile::open(path);
    const uint8_t* bytes = result->file_->data();
    uint64_t file_bytes = result->file_->size_bytes();

    if (file_bytes < kLengthBytes) {
        fail("{}: file is {} bytes, too short for the 8-byte header length", path, file_bytes);
    }
    uint64_t header_bytes = decode_u64_le(bytes);
    if (header_bytes > kMaxHeaderBytes) {
        fail("{}: header length {} is over the {} byte limit (corrupt file?)", path, header_bytes,
             kMaxHeaderBytes);
    }
    if (header_bytes > file_bytes - kLengthBytes) {
        fail("{}: header length {} is larger than the {} bytes that follow it", path, header_bytes,
             file_bytes - kLengthBytes);
    }
    const char* header_begin = reinterpret_cast<const char*>(bytes + kLengthBytes);
    json header = parse_header(path, header_begin, header_begin + header_bytes);
    if (!header.is_object()) fail("{}: header is not a JSON object", path);

    uint64_t data_bytes = file_bytes - kLengthBytes - header_bytes;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == kMetadataKey) {
            result->metadata_ = parse_metadata(path, it.value());
            continue;
        }
        SafetensorsEntry entry = parse_entry(path, it.key(), it.value());
        if (entry.end_bytes > data_bytes) {
            fail(
                "{}: tensor '{}': data_offsets [{}, {}] reach past the end of the file ({} data "
                "bytes; truncated file?)",
                path, entry.name, entry.begin_bytes, entry.end_bytes, data_bytes);
        }
        result->entries_.push_back(std::move(entry));
    }

    // "File order" is the order of the data, which is how a sequential reader wants them.
    std::stable_sort(result->entries_.begin(), result->entries_.end(),
                     [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                         return a.begin_bytes < b.begin_bytes;
                     });
    check_no_overlap(path, result->entries_);
    for (size_t i = 0; i < result->entries_.size(); ++i) {
        result->index_.emplace(result->entries_[i].name, i);
    }
    result->data_section_ = bytes + kLengthBytes + header_bytes;
    return result;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
    const SafetensorsEntry* entry = find(name);
    if (entry == nullptr) fail("{}: no tensor '{}'", path(), name);
    return Tensor::borrow(entry->dtype, entry->shape, data_section_ + entry->begin_bytes, file_);
}

void write_safetensors(const std::string& path, const std::vector<TensorPlan>& plan,
                       const TensorFiller& fill,
                       const std::map<std::string, std::string>& metadata) {
    // Larger elements first (stable, as the safetensors library does): with the 8-byte-aligned
    // data start, every tensor then begins at a multiple of its element size, so f32 and i64
    // views of a mapped file are aligned.
    std::vector<TensorPlan> ordered = plan;
    std::stable_sort(ordered.begin(), ordered.end(), [](const TensorPlan& a, const TensorPlan& b) {
        return dtype_size_bytes(a.dtype) > dtype_size_bytes(b.dtype);
    });
    std::string header = encode_header(path, ordered, metadata);
    uint8_t length_bytes[kLengthBytes];
    encode_u64_le(header.size(), length_bytes);

    PendingFile out(path);
    out.write(length_bytes, sizeof(length_bytes));
    out.write(header.data(), header.size());
    // One buffer, resized per tensor: memory holds the largest tensor, never the whole file.
    std::vector<uint8_t> buffer;
    for (const auto& tensor : ordered) {
        buffer.resize(planned_size_bytes(tensor));
        fill(tensor, std::span<uint8_t>(buffer));
        out.write(buffer.data(), buffer.size());
    }
    out.commit();
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    std::vector<TensorPlan> plan;
    std::map<std::string_view, const Tensor*> by_name;
    plan.reserve(tensors.size());
    for (const auto& named : tensors) {
        if (!named.tensor.defined()) fail("{}: tensor '{}' has no data", path, named.name);
        plan.push_back({named.name, named.tensor.dtype(), named.tensor.shape()});
        by_name.emplace(named.name, &named.tensor);
    }
    auto copy = [&](const TensorPlan& tensor_plan, std::span<uint8_t> out) {
        const Tensor& tensor = *by_name.at(tensor_plan.name);
        FOURBIT_ASSERT(out.size() == tensor.size_bytes(), "tensor '{}'", tensor_plan.name);
        if (!out.empty()) std::memcpy(out.data(), tensor.raw(), out.size());
    };
    write_safetensors(path, plan, copy, metadata);
}

}  // namespace fourbit
