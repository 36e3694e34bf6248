// The harness itself: a child's streams come back separately, and a death by signal or a hang
// is reported as such, never mistaken for a clean error exit.
#include <gtest/gtest.h>

#include <csignal>

#include "integration/cli_helpers.h"

namespace fourbit::cli_test {
namespace {

TEST(CommandRunner, CapturesStdoutStderrAndExitStatusSeparately) {
    CommandResult result = run_command({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
    EXPECT_TRUE(result.exited);
    EXPECT_EQ(result.exit_code, 3);
    EXPECT_EQ(result.signal, 0);
    EXPECT_EQ(result.out, "out\n");
    EXPECT_EQ(result.err, "err\n");
    EXPECT_FALSE(succeeded(result));
}

TEST(CommandRunner, DeathBySignalIsACrashNotACleanFailure) {
    CommandResult result =
        run_command({"/bin/sh", "-c", "echo 'fourbit: error: something' >&2; kill -SEGV $$"});
    EXPECT_FALSE(result.exited);
    EXPECT_EQ(result.signal, SIGSEGV);
    ::testing::AssertionResult verdict = failed_cleanly(result, {"something"});
    EXPECT_FALSE(verdict);
    EXPECT_NE(std::string(verdict.message()).find("CRASHED"), std::string::npos)
        << verdict.message();
}

TEST(CommandRunner, CleanFailureNeedsOneErrorLineNamingTheCulprit) {
    CommandResult one =
        run_command({"/bin/sh", "-c",
                     "echo '[info] loading' >&2; echo 'fourbit: error: x.json: bad' >&2; exit 1"});
    EXPECT_TRUE(failed_cleanly(one, {"x.json"}));
    EXPECT_FALSE(failed_cleanly(one, {"y.json"}));
    CommandResult assertion = run_command(
        {"/bin/sh", "-c", "echo 'fourbit: error: internal error at a.cpp:1' >&2; exit 1"});
    EXPECT_FALSE(failed_cleanly(assertion, {}));
    CommandResult success = run_command({"/bin/sh", "-c", "exit 0"});
    EXPECT_FALSE(failed_cleanly(success, {}));
}

TEST(CommandRunner, HangIsKilledAndReported) {
    CommandResult result = run_command({"/bin/sh", "-c", "exec sleep 30"}, /*timeout_s=*/0.3);
    EXPECT_TRUE(result.timed_out);
    EXPECT_FALSE(result.exited);
    EXPECT_FALSE(failed_cleanly(result, {}));
}

}  // namespace
}  // namespace fourbit::cli_test
