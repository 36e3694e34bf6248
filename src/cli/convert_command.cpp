// `fourbit convert --model DIR --out DIR --format compressed-tensors|modelopt`: an NVFP4
// checkpoint rewritten losslessly in the other layout (formats/convert_checkpoint.h).
#include <cstdio>

#include "cli/commands.h"
#include "formats/convert_checkpoint.h"

namespace fourbit {

void add_convert_command(CLI::App& app) {
    struct Options {
        std::string model_dir;
        std::string out_dir;
        std::string format;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand(
        "convert", "rewrite an NVFP4 checkpoint in the compressed-tensors or ModelOpt layout");
    command->add_option("--model", options->model_dir, "NVFP4 checkpoint directory")->required();
    command->add_option("--out", options->out_dir, "new output directory")->required();
    command->add_option("--format", options->format, "compressed-tensors or modelopt")
        ->required()
        ->check(CLI::IsMember({"compressed-tensors", "modelopt"}));
    command->callback([options] {
        ConvertOptions convert;
        convert.model_dir = options->model_dir;
        convert.out_dir = options->out_dir;
        convert.format = options->format == "modelopt"
                             ? QuantizationFormat::nvfp4_modelopt
                             : QuantizationFormat::nvfp4_compressed_tensors;
        ConvertSummary summary = convert_nvfp4_checkpoint(convert);
        std::printf(
            "converted %zu NVFP4 modules (%zu tensors) from %s to %s in %s; copied %zu "
            "other files\n",
            summary.n_nvfp4_modules, summary.n_tensors,
            std::string(quantization_format_name(summary.from)).c_str(), options->format.c_str(),
            options->out_dir.c_str(), summary.n_files_copied);
    });
}

}  // namespace fourbit
