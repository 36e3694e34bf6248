#include "quantize/sha256.h"

#include <openssl/evp.h>

#include <fstream>
#include <vector>

#include "util/error.h"

namespace fourbit {

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
    FOURBIT_ASSERT(context_ != nullptr && EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(context_),
                                                            EVP_sha256(), nullptr) == 1,
                   "OpenSSL SHA-256 init");
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_)); }

void Sha256::update(const void* data, size_t size) {
    FOURBIT_ASSERT(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), data, size) == 1,
                   "OpenSSL SHA-256 update");
}

std::string Sha256::hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    FOURBIT_ASSERT(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(context_), digest, &length) == 1,
                   "OpenSSL SHA-256 final");
    static const char* kDigits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
        out += kDigits[digest[i] >> 4];
        out += kDigits[digest[i] & 15];
    }
    return out;
}

std::string sha256_hex(std::string_view bytes) {
    Sha256 hash;
    hash.update(bytes);
    return hash.hex();
}

std::string sha256_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) fail("cannot read {}", path);
    Sha256 hash;
    std::vector<char> buffer(1 << 20);
    while (file) {
        file.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        hash.update(buffer.data(), static_cast<size_t>(file.gcount()));
    }
    return hash.hex();
}

}  // namespace fourbit
