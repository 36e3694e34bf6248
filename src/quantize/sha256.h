// SHA-256 of bytes and files (OpenSSL), as lowercase hex: checkpoint markers and queue identity.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace fourbit {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const void* data, size_t size);
    void update(std::string_view text) { update(text.data(), text.size()); }
    std::string hex();  // finishes

private:
    void* context_;
};

std::string sha256_hex(std::string_view bytes);
// Error naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace fourbit
