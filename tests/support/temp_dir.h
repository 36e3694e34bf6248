// Temporary directories for tests: one per object (TempDir) or one per test (TempDirTest), each
// fresh under the system temporary directory and removed with everything in it.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace fourbit::test_support {

// A fresh directory named `prefix` plus a unique suffix (mkdtemp), so parallel ctest runs and
// repeated tests never share one.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "fourbit") {
        std::string pattern =
            (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
        }
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    // The path of `name` inside the directory.
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// Base fixture: a fresh directory per test, named after the test, removed afterwards.
class TempDirTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = fmt::format("fourbit_{}_{}", info->test_suite_name(), info->name());
        std::replace(name.begin(), name.end(), '/', '_');  // parameterized tests: "Suite/Test/0"
        temp_ = std::make_unique<TempDir>(name);
        dir_ = temp_->path();
    }
    void TearDown() override { temp_.reset(); }

    // The directory, and the path of `file_name` inside it.
    std::string dir() const { return dir_.string(); }
    std::string path(const std::string& file_name) const { return (dir_ / file_name).string(); }

    std::filesystem::path dir_;

private:
    std::unique_ptr<TempDir> temp_;
};

}  // namespace fourbit::test_support
