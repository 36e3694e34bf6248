#include "model/inspect_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "formats/checkpoint.h"

namespace fourbit {

namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Input scales should be all or nothing: W4A4 serving needs one for every quantized module, and
// a checkpoint with some missing was calibrated incompletely (e.g. experts no token reached).
void check_input_scales(CheckpointReport& report) {
    std::vector<const LinearRecord*> with, without;
    for (const LinearRecord& record : report.linears) {
        if (record.storage != LinearStorage::nvfp4 || !record.ok) continue;
        (record.input_scale ? with : without).push_back(&record);
    }
    if (!with.empty() && !without.empty()) {
        for (const LinearRecord* record : without) {
            report.anomalies.push_back(
                {"missing_input_scale", record->module.prefix,
                 fmt::format("has no input scale while {} other NVFP4 modules have one",
                             with.size())});
        }
    } else if (with.empty() && !without.empty() && report.scheme.input_scales) {
        report.anomalies.push_back(
            {"missing_input_scale", report.scheme.source,
             fmt::format("declares quantized activations (W4A4) but none of the {} NVFP4 modules "
                         "has an input scale",
                         without.size())});
    } else if (!with.empty() && !report.scheme.input_scales) {
        report.anomalies.push_back(
            {"unexpected_input_scale", report.scheme.source,
             fmt::format("declares weight-only NVFP4 but {} modules carry input scales",
                         with.size())});
    }
}

}  // namespace

std::string storage_kind(const LinearRecord& record) {
    switch (record.storage) {
        case LinearStorage::nvfp4:
            return "nvfp4";
        case LinearStorage::fp8_block:
            return "fp8";
        case LinearStorage::missing:
            return "missing";
        case LinearStorage::dense:
            return lower(dtype_name(record.dtype));
    }
    return "?";
}

CheckpointReport inspect_checkpoint(const std::string& dir) {
    CheckpointReport report;
    report.dir = dir;
    Checkpoint checkpoint = Checkpoint::open(dir);
    CheckedWeights checked = read_checked_weights(
        dir, checkpoint, LoadOptions{},
        [&report](CheckpointProblem problem) { report.anomalies.push_back(std::move(problem)); });
    report.config = checked.weights.config;
    report.scheme = checked.scheme;
    report.linears = checked.linears;
    report.other_bytes = checked.other_bytes;
    report.layers.resize(report.config.num_hidden_layers);

    for (const LinearRecord& record : report.linears) {
        const std::string kind = storage_kind(record);
        StorageKindSummary& summary = report.kinds[kind];
        ++summary.n_modules;
        summary.bytes_on_disk += record.bytes;
        summary.bytes_in_memory += record.bytes_in_memory;
        const std::string& prefix = record.module.prefix;
        if (record.module.layer < 0) {
            ++report.lm_head[kind];
            continue;
        }
        LayerSummary& layer = report.layers.at(record.module.layer);
        if (prefix.find(".self_attn.") != std::string::npos) {
            ++layer.attention[kind];
        } else if (prefix.ends_with("block_sparse_moe.gate")) {
            ++layer.router[kind];
        } else {
            ++layer.experts[kind];
        }
    }

    for (const std::string& name : checkpoint.tensor_names()) {
        const SafetensorsEntry& entry = checkpoint.entry(name);
        const uint64_t bytes = entry.end_bytes - entry.begin_bytes;
        ++report.n_tensors;
        report.bytes_on_disk += bytes;
        if (checked.used.contains(name)) continue;
        ++report.n_unused;
        report.unused_bytes += bytes;
        report.anomalies.push_back({"unused_tensor", name, "is not read by the model"});
    }
    check_input_scales(report);
    return report;
}

}  // namespace fourbit
