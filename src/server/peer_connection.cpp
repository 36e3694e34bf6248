#include "server/peer_connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>

namespace fourbit {

namespace {

// Whether `address` (from getsockname/getpeername) is `text`:`port`.
bool same_address(const sockaddr_storage& address, const std::string& text, int port) {
    char buffer[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
        if (ntohs(v4.sin_port) != port) return false;
        if (!inet_ntop(AF_INET, &v4.sin_addr, buffer, sizeof buffer)) return false;
    } else if (address.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
        if (ntohs(v6.sin6_port) != port) return false;
        if (!inet_ntop(AF_INET6, &v6.sin6_addr, buffer, sizeof buffer)) return false;
    } else {
        return false;
    }
    return text == buffer;
}

}  // namespace

PeerConnection PeerConnection::find(const std::string& local_address, int local_port,
                                    const std::string& remote_address, int remote_port) {
    if (local_port <= 0 || remote_port <= 0) return {};
    DIR* directory = opendir("/proc/self/fd");
    if (!directory) return {};
    int match = -1;
    while (dirent* entry = readdir(directory)) {
        char* end = nullptr;
        const long fd = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == dirfd(directory)) continue;
        struct stat info {};
        if (fstat(static_cast<int>(fd), &info) != 0 || !S_ISSOCK(info.st_mode)) continue;
        sockaddr_storage local{}, peer{};
        socklen_t local_length = sizeof local, peer_length = sizeof peer;
        if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_length) !=
                0 ||
            getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_length) !=
                0) {
            continue;
        }
        if (same_address(local, local_address, local_port) &&
            same_address(peer, remote_address, remote_port)) {
            match = static_cast<int>(fd);
            break;
        }
    }
    closedir(directory);
    return PeerConnection(match);
}

bool PeerConnection::closed() const {
    if (fd_ < 0) return false;
    pollfd request{fd_, POLLRDHUP, 0};
    if (poll(&request, 1, 0) <= 0) return false;
    return (request.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace fourbit
