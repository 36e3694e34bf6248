// Lossless conversion of an NVFP4 checkpoint between the compressed-tensors and ModelOpt layouts
// (nvfp4.md §1.7): codes and block scales are copied byte for byte, tensors renamed, global and
// input scales replaced by their reciprocals, the source's shards kept, configs rewritten and
// every other file (tokenizer, chat template, generation config) copied.
#pragma once

#include <cstddef>
#include <string>

#include "formats/quantization_scheme.h"

namespace fourbit {

struct ConvertOptions {
    std::string model_dir;
    std::string out_dir;  // must not exist yet, or be empty
    QuantizationFormat format = QuantizationFormat::nvfp4_compressed_tensors;
};

struct ConvertSummary {
    QuantizationFormat from = QuantizationFormat::none;
    size_t n_nvfp4_modules = 0;
    size_t n_tensors = 0;
    size_t n_files_copied = 0;
};

// Every module is read with read_nvfp4_linear's checks, and each global and input scale must
// come back bit-identical through the other layout's reciprocal (fl(1/fl(1/x)) == x); a scale
// that would not is an Error naming the module, never a silent change. So are a source that is
// not NVFP4 and configs this conversion could not carry over unchanged (a KV-cache scheme,
// targets other than every Linear).
ConvertSummary convert_nvfp4_checkpoint(const ConvertOptions& options);

// Copies the files of checkpoint `from` that a rewrite keeps unchanged (tokenizer, chat
// template, generation config, ...): every regular file except shards, `.tmp` files, the index
// and the configs a writer rewrites. Returns how many were copied.
size_t copy_checkpoint_side_files(const std::string& from, const std::string& to);

}  // namespace fourbit
