// Safetensors reader and writer: round trips, a file assembled byte by byte (so the reader is
// not only checked against our own writer), and one test per kind of bad input.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "support/temp_dir.h"
#include "util/error.h"

namespace fourbit {
namespace {

namespace fs = std::filesystem;

using SafetensorsTest = test_support::TempDirTest;

std::string le64(uint64_t value) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
    return bytes;
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A safetensors file assembled by hand: length, header text exactly as given, data.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
    write_bytes(path, le64(header.size()) + header + data);
}

// The message of the Error that opening `path` throws; fails the test when nothing is thrown.
std::string open_error(const std::string& path) {
    try {
        SafetensorsFile::open(path);
    } catch (const Error& error) {
        return error.what();
    }
    ADD_FAILURE() << "opening " << path << " did not throw";
    return "";
}

void expect_mentions(const std::string& message, std::initializer_list<std::string> facts) {
    for (const auto& fact : facts) {
        EXPECT_NE(message.find(fact), std::string::npos)
            << "message: " << message << "\nshould mention: " << fact;
    }
}

std::string bytes_of(const Tensor& tensor) {
    return std::string(static_cast<const char*>(tensor.raw()), tensor.size_bytes());
}

// Distinct, position-dependent bytes per tensor, so a swapped or shifted range shows.
std::vector<uint8_t> pattern_bytes(const TensorPlan& plan, size_t size_bytes) {
    std::vector<uint8_t> bytes(size_bytes);
    for (size_t i = 0; i < size_bytes; ++i) {
        bytes[i] = static_cast<uint8_t>(i * 7 + plan.name.size() * 31 + 1);
    }
    return bytes;
}

void fill_pattern(const TensorPlan& plan, std::span<uint8_t> out) {
    auto bytes = pattern_bytes(plan, out.size());
    std::copy(bytes.begin(), bytes.end(), out.begin());
}

const std::vector<TensorPlan> kMixedPlan = {
    {"weight", DType::f32, {2, 3}},         {"bias_bf16", DType::bf16, {5}},
    {"scales_fp8", DType::f8_e4m3, {3, 1}}, {"positions", DType::i64, {2}},
    {"empty", DType::f32, {0, 4}},          {"last_byte", DType::u8, {1}},
};

TEST_F(SafetensorsTest, RoundTripKeepsDtypesShapesAndBytes) {
    std::vector<std::string> filled;
    write_safetensors(path("mixed.safetensors"), kMixedPlan,
                      [&](const TensorPlan& plan, std::span<uint8_t> out) {
                          filled.push_back(plan.name);
                          fill_pattern(plan, out);
                      });
    auto file = SafetensorsFile::open(path("mixed.safetensors"));

    ASSERT_EQ(file->entries().size(), kMixedPlan.size());
    // Data is laid out largest element first (stable), so each tensor is aligned to its
    // element size: f32 weight, empty; i64 positions first; bf16; then the bytes.
    const std::vector<std::string> layout = {"positions", "weight", "empty", "bias_bf16",
                                             "scales_fp8", "last_byte"};
    EXPECT_EQ(filled, layout) << "fill is called in layout order";
    uint64_t offset = 0;
    for (size_t i = 0; i < layout.size(); ++i) {
        const SafetensorsEntry& entry = *file->find(layout[i]);
        EXPECT_EQ(entry.begin_bytes, offset) << entry.name;
        EXPECT_EQ(entry.begin_bytes % dtype_size_bytes(entry.dtype), 0u) << entry.name;
        offset = entry.end_bytes;
    }
    for (const TensorPlan& plan : kMixedPlan) {
        const SafetensorsEntry& entry = *file->find(plan.name);
        EXPECT_EQ(entry.dtype, plan.dtype);
        EXPECT_EQ(entry.shape, plan.shape);
        Tensor tensor = file->tensor(plan.name);
        EXPECT_EQ(tensor.dtype(), plan.dtype);
        EXPECT_EQ(tensor.shape(), plan.shape);
        auto expected = pattern_bytes(plan, planned_size_bytes(plan));
        EXPECT_EQ(bytes_of(tensor), std::string(expected.begin(), expected.end())) << plan.name;
    }
    EXPECT_EQ(file->find("empty")->end_bytes, file->find("empty")->begin_bytes);
    EXPECT_TRUE(file->tensor("empty").defined());
    EXPECT_TRUE(file->metadata().empty());
}

TEST_F(SafetensorsTest, RoundTripKeepsMetadata) {
    std::map<std::string, std::string> metadata = {
        {"format", "pt"}, {"quantization", "nvfp4"}, {"note", "caf\xc3\xa9, \"quoted\""}};
    write_safetensors(path("meta.safetensors"), kMixedPlan, fill_pattern, metadata);
    auto file = SafetensorsFile::open(path("meta.safetensors"));
    EXPECT_EQ(file->metadata(), metadata);
    EXPECT_EQ(file->find("__metadata__"), nullptr);
    EXPECT_EQ(file->entries().size(), kMixedPlan.size());
}

TEST_F(SafetensorsTest, WriterPadsHeaderSoDataStartsEightByteAligned) {
    // One-character names make the header length land on every residue mod 8 across sizes.
    for (int n_tensors = 1; n_tensors <= 8; ++n_tensors) {
        std::vector<TensorPlan> plan;
        for (int i = 0; i < n_tensors; ++i) {
            plan.push_back({std::string(1, static_cast<char>('a' + i)), DType::u8, {3}});
        }
        std::string file_path = path(fmt::format("pad{}.safetensors", n_tensors));
        write_safetensors(file_path, plan, fill_pattern);
        std::string bytes = read_bytes(file_path);
        ASSERT_GE(bytes.size(), 8u);
        uint64_t header_bytes = 0;
        for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | uint8_t(bytes[i]);
        EXPECT_EQ(header_bytes % 8, 0u);
        EXPECT_EQ(bytes.size(), 8 + header_bytes + 3 * n_tensors);
        std::string header = bytes.substr(8, header_bytes);
        EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1).back(), '}');
        EXPECT_FALSE(fs::exists(file_path + ".tmp"));
    }
}

TEST_F(SafetensorsTest, ReadsHandAssembledFile) {
    // Keys out of offset order, metadata last, and space padding, as other writers produce.
    std::string header = R"({"b":{"dtype":"I16","shape":[2],"data_offsets":[4,8]},)"
                         R"("a":{"data_offsets":[0,4],"shape":[1,1],"dtype":"F32"},)"
                         R"("z":{"dtype":"BOOL","shape":[0],"data_offsets":[8,8]},)"
                         R"("__metadata__":{"format":"pt"}}      )";
    float a_value = 1.5f;
    int16_t b_values[2] = {-2, 300};
    std::string data(8, '\0');
    std::memcpy(data.data(), &a_value, 4);  // the test host is little-endian, like the format
    std::memcpy(data.data() + 4, b_values, 4);
    write_raw(path("hand.safetensors"), header, data);

    auto file = SafetensorsFile::open(path("hand.safetensors"));
    ASSERT_EQ(file->entries().size(), 3u);
    EXPECT_EQ(file->entries()[0].name, "a");  // ordered by data offset
    EXPECT_EQ(file->entries()[1].name, "b");
    EXPECT_EQ(file->metadata().at("format"), "pt");

    Tensor a = file->tensor("a");
    EXPECT_EQ(a.dtype(), DType::f32);
    EXPECT_EQ(a.shape(), (Shape{1, 1}));
    EXPECT_EQ(a.data<float>()[0], 1.5f);
    Tensor b = file->tensor("b");
    EXPECT_EQ(b.dtype(), DType::i16);
    EXPECT_EQ(b.shape(), (Shape{2}));
    EXPECT_EQ(b.data<int16_t>()[0], -2);
    EXPECT_EQ(b.data<int16_t>()[1], 300);
    EXPECT_EQ(file->tensor("z").numel(), 0);
}

TEST_F(SafetensorsTest, TensorKeepsMappingAliveAfterFileIsDropped) {
    write_safetensors(path("alive.safetensors"), kMixedPlan, fill_pattern);
    auto file = SafetensorsFile::open(path("alive.safetensors"));
    Tensor weight = file->tensor("weight");
    file.reset();
    auto expected = pattern_bytes(kMixedPlan[0], 24);
    EXPECT_EQ(bytes_of(weight), std::string(expected.begin(), expected.end()));
}

TEST_F(SafetensorsTest, TensorOfUnknownNameThrowsNamingIt) {
    write_safetensors(path("small.safetensors"), kMixedPlan, fill_pattern);
    auto file = SafetensorsFile::open(path("small.safetensors"));
    EXPECT_EQ(file->find("missing"), nullptr);
    try {
        file->tensor("missing");
        FAIL() << "no Error";
    } catch (const Error& error) {
        expect_mentions(error.what(), {"small.safetensors", "missing"});
    }
}

TEST_F(SafetensorsTest, NamedTensorOverloadWritesTensorData) {
    Tensor values = Tensor::zeros(DType::i32, {2, 2});
    for (int i = 0; i < 4; ++i) values.data<int32_t>()[i] = (i + 1) * 1000;
    write_safetensors(path("named.safetensors"),
                      {{"values", values}, {"nothing", Tensor::zeros(DType::f16, {0})}},
                      {{"k", "v"}});
    auto file = SafetensorsFile::open(path("named.safetensors"));
    Tensor read = file->tensor("values");
    EXPECT_EQ(read.shape(), (Shape{2, 2}));
    EXPECT_EQ(bytes_of(read), bytes_of(values));
    EXPECT_EQ(file->tensor("nothing").dtype(), DType::f16);
    EXPECT_EQ(file->metadata().at("k"), "v");
}

TEST_F(SafetensorsTest, WriterReportsFullDiskAndLeavesNoFile) {
    if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
    // The writer opens PATH.tmp; pointing that at /dev/full makes every write fail with ENOSPC.
    fs::create_symlink("/dev/full", path("full.safetensors.tmp"));
    try {
        write_safetensors(path("full.safetensors"), kMixedPlan, fill_pattern);
        FAIL() << "no Error";
    } catch (const Error& error) {
        expect_mentions(error.what(), {"full.safetensors.tmp", "cannot write"});
    }
    EXPECT_FALSE(fs::exists(path("full.safetensors")));
    EXPECT_FALSE(fs::is_symlink(path("full.safetensors.tmp")));
}

TEST_F(SafetensorsTest, FillerFailureLeavesNoFile) {
    auto failing = [](const TensorPlan& plan, std::span<uint8_t>) {
        if (plan.name == "positions") throw Error("source tensor unreadable");
    };
    EXPECT_THROW(write_safetensors(path("fail.safetensors"), kMixedPlan, failing), Error);
    EXPECT_FALSE(fs::exists(path("fail.safetensors")));
    EXPECT_FALSE(fs::exists(path("fail.safetensors.tmp")));
}

TEST_F(SafetensorsTest, WriterRejectsBadPlans) {
    std::vector<TensorPlan> duplicate = {{"x", DType::u8, {1}}, {"x", DType::u8, {2}}};
    std::vector<TensorPlan> negative = {{"neg", DType::f32, {2, -3}}};
    std::vector<TensorPlan> huge = {{"huge", DType::f32, {int64_t{1} << 62, 8}}};
    std::vector<TensorPlan> reserved = {{"__metadata__", DType::u8, {1}}};
    for (const auto& [plan, fact] :
         {std::pair{duplicate, "'x'"}, std::pair{negative, "'neg'"}, std::pair{huge, "'huge'"},
          std::pair{reserved, "'__metadata__'"}}) {
        try {
            write_safetensors(path("bad.safetensors"), plan, fill_pattern);
            ADD_FAILURE() << "no Error for " << fact;
        } catch (const Error& error) {
            expect_mentions(error.what(), {"bad.safetensors", fact});
        }
        EXPECT_FALSE(fs::exists(path("bad.safetensors")));
    }
}

// ---- bad input: one test per kind, each checking the message names file and culprit ----

TEST_F(SafetensorsTest, FileShorterThanLengthFieldIsRejected) {
    write_bytes(path("tiny.safetensors"), "abc");
    expect_mentions(open_error(path("tiny.safetensors")), {"tiny.safetensors", "3 bytes"});
    write_bytes(path("empty.safetensors"), "");
    expect_mentions(open_error(path("empty.safetensors")), {"empty.safetensors", "too short"});
}

TEST_F(SafetensorsTest, TruncatedFileIsRejected) {
    std::vector<TensorPlan> plan = {{"head", DType::f32, {4}}, {"tail", DType::f32, {64}}};
    write_safetensors(path("cut.safetensors"), plan, fill_pattern);
    std::string bytes = read_bytes(path("cut.safetensors"));
    write_bytes(path("cut.safetensors"), bytes.substr(0, bytes.size() - 100));  // mid "tail"
    expect_mentions(open_error(path("cut.safetensors")),
                    {"cut.safetensors", "'tail'", "past the end"});
}

TEST_F(SafetensorsTest, HeaderLengthLargerThanFileIsRejected) {
    write_bytes(path("lies.safetensors"), le64(1000) + "{}");
    expect_mentions(open_error(path("lies.safetensors")),
                    {"lies.safetensors", "header length 1000"});
    write_bytes(path("absurd.safetensors"), le64(uint64_t{1} << 63) + "{}");
    expect_mentions(open_error(path("absurd.safetensors")),
                    {"absurd.safetensors", "header length 9223372036854775808"});
}

TEST_F(SafetensorsTest, MalformedHeaderJsonIsRejected) {
    write_raw(path("broken.safetensors"), R"({"a": {"dtype": "F32", )", "");
    expect_mentions(open_error(path("broken.safetensors")),
                    {"broken.safetensors", "not valid JSON"});
    write_raw(path("array.safetensors"), "[1, 2]", "");
    expect_mentions(open_error(path("array.safetensors")),
                    {"array.safetensors", "not a JSON object"});
    write_raw(path("utf8.safetensors"), "{\"\xff\": 1}", "");
    expect_mentions(open_error(path("utf8.safetensors")), {"utf8.safetensors", "not valid JSON"});
}

TEST_F(SafetensorsTest, MissingOrMistypedFieldsAreRejected) {
    struct Case {
        std::string entry;
        std::string field;
    };
    const std::vector<Case> cases = {
        {R"(5)", "not a JSON object"},
        {R"({"shape":[1],"data_offsets":[0,4]})", "\"dtype\""},
        {R"({"dtype":7,"shape":[1],"data_offsets":[0,4]})", "\"dtype\""},
        {R"({"dtype":"F32","data_offsets":[0,4]})", "\"shape\""},
        {R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})", "\"shape\""},
        {R"({"dtype":"F32","shape":[1.0],"data_offsets":[0,4]})", "\"shape\""},
        {R"({"dtype":"F32","shape":[1]})", "\"data_offsets\""},
        {R"({"dtype":"F32","shape":[1],"data_offsets":[4]})", "\"data_offsets\""},
        {R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", "\"data_offsets\""},
        {R"({"dtype":"F32","shape":[1],"data_offsets":["0","4"]})", "\"data_offsets\""},
    };
    for (const auto& c : cases) {
        write_raw(path("fields.safetensors"), R"({"the_tensor":)" + c.entry + "}", "0123");
        SCOPED_TRACE(c.entry);
        expect_mentions(open_error(path("fields.safetensors")),
                        {"fields.safetensors", "'the_tensor'", c.field});
    }
}

TEST_F(SafetensorsTest, UnknownDtypeIsRejected) {
    write_raw(path("dtype.safetensors"),
              R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", "0123");
    expect_mentions(open_error(path("dtype.safetensors")),
                    {"dtype.safetensors", "'w'", "unknown dtype \"F33\""});
}

TEST_F(SafetensorsTest, NegativeOrOverflowingShapeIsRejected) {
    write_raw(path("neg.safetensors"),
              R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,4]}})", "0123");
    expect_mentions(open_error(path("neg.safetensors")), {"neg.safetensors", "'w'", "negative"});

    // Each extent fits, the product does not: 2^32 * 2^32 wraps to 0, which must not pass as
    // a zero-size tensor.
    write_raw(path("wrap.safetensors"),
              R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "");
    expect_mentions(open_error(path("wrap.safetensors")), {"wrap.safetensors", "'w'", "64 bits"});

    write_raw(path("big.safetensors"),
              R"({"w":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}})", "");
    expect_mentions(open_error(path("big.safetensors")), {"big.safetensors", "'w'", "64 bits"});

    // Fits int64 elements but not bytes.
    write_raw(path("bytes.safetensors"),
              R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", "");
    expect_mentions(open_error(path("bytes.safetensors")), {"bytes.safetensors", "'w'", "64 bits"});
}

TEST_F(SafetensorsTest, EndBeforeBeginIsRejected) {
    write_raw(path("order.safetensors"), R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})",
              "0123");
    expect_mentions(open_error(path("order.safetensors")), {"order.safetensors", "'w'", "[4, 0]"});
}

TEST_F(SafetensorsTest, ShapeBytesMismatchIsRejected) {
    write_raw(path("size.safetensors"),
              R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", std::string(24, 'x'));
    expect_mentions(open_error(path("size.safetensors")),
                    {"size.safetensors", "'w'",
                     "shape [2, 3] of dtype F32 needs 24 bytes but data_offsets give 20"});
}

TEST_F(SafetensorsTest, OffsetsOutsideFileAreRejected) {
    write_raw(path("outside.safetensors"),
              R"({"ok":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
              R"("far":{"dtype":"U8","shape":[4],"data_offsets":[1000,1004]}})",
              "0123");
    expect_mentions(open_error(path("outside.safetensors")),
                    {"outside.safetensors", "'far'", "past the end"});
}

TEST_F(SafetensorsTest, OverlappingTensorsAreRejected) {
    write_raw(path("overlap.safetensors"),
              R"({"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("second":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
              std::string(12, 'x'));
    expect_mentions(open_error(path("overlap.safetensors")),
                    {"overlap.safetensors", "'first'", "'second'", "overlap"});

    // A range nested inside a long one is caught too, not only adjacent neighbours.
    write_raw(path("nested.safetensors"),
              R"({"long":{"dtype":"U8","shape":[12],"data_offsets":[0,12]},)"
              R"("mid":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
              R"("inner":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})",
              std::string(12, 'x'));
    expect_mentions(open_error(path("nested.safetensors")),
                    {"nested.safetensors", "'long'", "overlap"});
}

TEST_F(SafetensorsTest, NonStringMetadataIsRejected) {
    write_raw(path("meta.safetensors"), R"({"__metadata__":{"format":"pt","epoch":5}})", "");
    expect_mentions(open_error(path("meta.safetensors")),
                    {"meta.safetensors", "__metadata__", "'epoch'"});
    write_raw(path("meta2.safetensors"), R"({"__metadata__":["pt"]})", "");
    expect_mentions(open_error(path("meta2.safetensors")), {"meta2.safetensors", "__metadata__"});
}

TEST_F(SafetensorsTest, DuplicateTensorNameInHeaderIsRejected) {
    write_raw(path("dup.safetensors"),
              R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
              R"("w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
              std::string(8, 'x'));
    expect_mentions(open_error(path("dup.safetensors")), {"dup.safetensors", "'w'", "twice"});
}

TEST_F(SafetensorsTest, DeeplyNestedHeaderIsRejectedWithoutCrashing) {
    std::string header = R"({"w":)" + std::string(200000, '[') + std::string(200000, ']') + "}";
    write_raw(path("deep.safetensors"), header, "");
    expect_mentions(open_error(path("deep.safetensors")), {"deep.safetensors", "nests"});
}

// Hostile input must end in an Error or a valid file, never a crash (run under ASan/UBSan).
TEST_F(SafetensorsTest, CorruptedFilesNeverCrash) {
    write_safetensors(path("good.safetensors"), kMixedPlan, fill_pattern, {{"format", "pt"}});
    const std::string good = read_bytes(path("good.safetensors"));
    std::mt19937 random(1234);
    int n_rejected = 0;
    auto try_open = [&](const std::string& bytes) {
        write_bytes(path("mutant.safetensors"), bytes);
        try {
            auto file = SafetensorsFile::open(path("mutant.safetensors"));
            for (const auto& entry : file->entries()) {
                Tensor tensor = file->tensor(entry.name);
                volatile uint8_t sink = 0;
                for (size_t i = 0; i < tensor.size_bytes(); ++i) {
                    sink = sink ^ tensor.data<uint8_t>()[i];
                }
            }
        } catch (const Error&) {
            ++n_rejected;
        }
    };
    for (size_t length = 0; length < good.size(); length += 3) try_open(good.substr(0, length));
    for (int round = 0; round < 1500; ++round) {
        std::string bytes = good;
        int n_flips = 1 + static_cast<int>(random() % 4);
        for (int i = 0; i < n_flips; ++i) {
            // Mostly the length and header, where the parsing happens.
            size_t at = random() % std::min<size_t>(bytes.size(), random() % 2 ? 16 : 400);
            bytes[at] = static_cast<char>(random());
        }
        try_open(bytes);
    }
    EXPECT_GT(n_rejected, 100);
}

}  // namespace
}  // namespace fourbit
