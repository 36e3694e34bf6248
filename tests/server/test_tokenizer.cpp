#include "server/test_tokenizer.h"

#include "support/temp_dir.h"
#include "text/checkpoint_tokenizer.h"

namespace fourbit {

const Tokenizer& test_tokenizer() {
    static const Tokenizer tokenizer = [] {
        const test_support::TempDir dir("fourbit_server_test");
        write_checkpoint_tokenizer(dir.path().string(), 4096);
        return Tokenizer::load(dir / "tokenizer.json");
    }();
    return tokenizer;
}

}  // namespace fourbit
