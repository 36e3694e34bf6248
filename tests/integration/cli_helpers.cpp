#include "integration/cli_helpers.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "formats/safetensors.h"

namespace fourbit::cli_test {

namespace {

std::string quoted_command(const std::vector<std::string>& argv) {
    std::string text;
    for (size_t i = 0; i < argv.size(); ++i) {
        std::string word = i == 0 ? fs::path(argv[i]).filename().string() : argv[i];
        if (i) text += ' ';
        const bool quote = word.find(' ') != std::string::npos;
        if (quote) text += '\'';
        text += word;
        if (quote) text += '\'';
    }
    return text;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Closes a file descriptor once, whatever path leaves the scope.
struct Fd {
    int fd = -1;
    ~Fd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

}  // namespace

std::string CommandResult::describe() const {
    std::string how;
    if (timed_out) {
        how = "TIMED OUT and was killed";
    } else if (signal != 0) {
        how = fmt::format("CRASHED: killed by signal {} ({})", signal, strsignal(signal));
    } else {
        how = fmt::format("exit status {}", exit_code);
    }
    return fmt::format("`{}` -> {}\n--- stderr ---\n{}--- stdout (first 2000 bytes) ---\n{}",
                       quoted_command(argv), how, err, out.substr(0, 2000));
}

CommandResult run_command(const std::vector<std::string>& argv, double timeout_s) {
    CommandResult result;
    result.argv = argv;
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
        return result;
    }
    Fd out_read{out_pipe[0]}, out_write{out_pipe[1]}, err_read{err_pipe[0]}, err_write{err_pipe[1]};
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        return result;
    }
    if (pid == 0) {
        // The child: only async-signal-safe calls until exec. dup2 clears O_CLOEXEC on 1 and 2.
        int null_fd = ::open("/dev/null", O_RDONLY);
        if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::execv(args[0], args.data());
        const char message[] = "cli_test: exec failed\n";
        [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, message, sizeof(message) - 1);
        ::_exit(255);
    }
    out_write.reset();
    err_write.reset();

    // Drain both pipes together, so a child filling one never blocks on the other.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    char buffer[65536];
    while (out_read.fd >= 0 || err_read.fd >= 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            result.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        pollfd fds[2] = {{out_read.fd, POLLIN, 0}, {err_read.fd, POLLIN, 0}};
        int ready = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
        if (ready < 0 && errno != EINTR) {
            ADD_FAILURE() << "poll: " << std::strerror(errno);
            ::kill(pid, SIGKILL);
            break;
        }
        Fd* pipes[2] = {&out_read, &err_read};
        std::string* sinks[2] = {&result.out, &result.err};
        for (int i = 0; i < 2; ++i) {
            if (pipes[i]->fd < 0 || fds[i].revents == 0) continue;
            ssize_t n = ::read(pipes[i]->fd, buffer, sizeof(buffer));
            if (n > 0) {
                sinks[i]->append(buffer, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                pipes[i]->reset();
            }
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) {
        result.exited = true;
        result.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        result.signal = WTERMSIG(status);
    }
    if (result.timed_out) result.exited = false;
    return result;
}

CommandResult run_fourbit(const std::vector<std::string>& args) {
    // libgomp's default spin-waiting makes OpenMP regions crawl when processes outnumber cores
    // (ctest -j2 on a shared 2-core machine took 16 s instead of 2.4 s). Passive waiting changes
    // timing only, never results; an explicit setting from the caller wins.
    ::setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
    std::vector<std::string> argv = {FOURBIT_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
}

::testing::AssertionResult succeeded(const CommandResult& result) {
    if (result.exited && result.exit_code == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "expected success: " << result.describe();
}

::testing::AssertionResult failed_cleanly(const CommandResult& result,
                                          const std::vector<std::string>& needles) {
    if (!result.exited) {
        return ::testing::AssertionFailure()
               << "bad input must end in an error message, not a crash: " << result.describe();
    }
    if (result.exit_code == 0) {
        return ::testing::AssertionFailure()
               << "bad input was accepted (expected a non-zero exit): " << result.describe();
    }
    const bool cli11_usage = result.exit_code >= 100 && result.exit_code <= 127;
    if (result.exit_code != 1 && !cli11_usage) {
        return ::testing::AssertionFailure()
               << "expected exit status 1 or a CLI11 usage code: " << result.describe();
    }
    if (result.err.find("internal error") != std::string::npos) {
        return ::testing::AssertionFailure()
               << "bad input reached an internal assertion: " << result.describe();
    }
    // The one line that explains the failure: "fourbit: error: ..." (or CLI11's first line).
    std::vector<std::string> error_lines;
    for (const std::string& line : lines_of(result.err)) {
        if (line.rfind("fourbit: error:", 0) == 0) error_lines.push_back(line);
    }
    if (cli11_usage && error_lines.empty() && !result.err.empty()) {
        error_lines.push_back(lines_of(result.err).front());
    }
    if (error_lines.size() != 1) {
        return ::testing::AssertionFailure() << "expected exactly one error line on stderr, got "
                                             << error_lines.size() << ": " << result.describe();
    }
    for (const std::string& needle : needles) {
        if (error_lines[0].find(needle) == std::string::npos) {
            return ::testing::AssertionFailure()
                   << "the error message does not name '" << needle << "': " << result.describe();
        }
    }
    return ::testing::AssertionSuccess();
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
}

void write_file(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

void write_json(const fs::path& path, const nlohmann::json& json) {
    write_file(path, json.dump(2) + "\n");
}

void copy_model_dir(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    for (const auto& entry : fs::directory_iterator(from)) {
        if (entry.is_regular_file()) fs::copy_file(entry.path(), to / entry.path().filename());
    }
}

std::vector<fs::path> shard_files(const fs::path& dir) {
    std::vector<fs::path> shards;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() == ".safetensors") shards.push_back(entry.path());
    }
    std::sort(shards.begin(), shards.end());
    return shards;
}

fs::path shard_of(const fs::path& dir, const std::string& tensor) {
    nlohmann::json index = read_json(dir / "model.safetensors.index.json");
    return dir / index.at("weight_map").at(tensor).get<std::string>();
}

uint64_t header_length(const std::string& file_bytes) {
    uint64_t length = 0;
    for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(file_bytes.at(i));
    return length;
}

void set_header_length(std::string& file_bytes, uint64_t length) {
    for (int i = 0; i < 8; ++i) file_bytes.at(i) = static_cast<char>(length >> (8 * i));
}

std::string join_ids(const std::vector<int64_t>& ids) {
    std::string text;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i) text += ',';
        text += std::to_string(ids[i]);
    }
    return text;
}

nlohmann::json generate_json(const CommandResult& result) {
    std::vector<std::string> lines = lines_of(result.out);
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    if (lines.empty()) {
        ADD_FAILURE() << "generate printed nothing on stdout: " << result.describe();
        return {};
    }
    nlohmann::json parsed = nlohmann::json::parse(lines.back(), nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("token_ids") ||
        !parsed["token_ids"].is_array()) {
        ADD_FAILURE() << "expected {\"token_ids\": [...]} on stdout: " << result.describe();
        return {};
    }
    return parsed;
}

LogitsFile read_logits(const fs::path& path) {
    auto file = SafetensorsFile::open(path.string());
    Tensor logits = file->tensor("logits");
    LogitsFile result;
    if (logits.dtype() != DType::f32 || logits.rank() != 2) {
        ADD_FAILURE() << path << ": logits are " << dtype_name(logits.dtype()) << " "
                      << shape_text(logits.shape()) << ", expected F32 [rows, vocab]";
        return result;
    }
    result.rows = logits.dim(0);
    result.vocab = logits.dim(1);
    result.values.assign(logits.data<float>(), logits.data<float>() + logits.numel());
    return result;
}

namespace {

// Made on first use, removed when the process exits. Under ctest every test is its own process,
// so a test that needs no model makes none.
struct SharedModels {
    std::unique_ptr<TempDir> dir;
    fs::path tiny, tiny_sharded;
};

SharedModels& shared_models() {
    static SharedModels models;
    if (!models.dir) {
        models.dir = std::make_unique<TempDir>("fourbit_cli_test");
        models.tiny = models.dir->path() / "tiny";
        models.tiny_sharded = models.dir->path() / "tiny_sharded";
    }
    return models;
}

// `fourbit make-model --preset tiny --seed 1 --out DIR` plus `extra`, once per process.
const fs::path& ensure_tiny_model(const fs::path& dir, const std::vector<std::string>& extra) {
    if (fs::exists(dir / "model.safetensors.index.json")) return dir;
    std::vector<std::string> args = {"make-model", "--preset", "tiny",      "--seed",
                                     "1",          "--out",    dir.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult made = run_fourbit(args);
    if (!succeeded(made)) ADD_FAILURE() << "making a shared tiny model failed: " << made.describe();
    return dir;
}

}  // namespace

void CliTest::SetUpTestSuite() { shared_models(); }

void CliTest::SetUp() {
    ASSERT_TRUE(fs::exists(FOURBIT_BINARY)) << "no fourbit binary at " << FOURBIT_BINARY;
    temp_ = std::make_unique<TempDir>("fourbit_cli_test");
}

const fs::path& CliTest::tiny_dir() { return ensure_tiny_model(shared_models().tiny, {}); }
const fs::path& CliTest::tiny_sharded_dir() {
    return ensure_tiny_model(shared_models().tiny_sharded, {"--shard-size-mb", "5"});
}

}  // namespace fourbit::cli_test
