// Noticing a client that went away while its request waits for the engine.
//
// cpp-httplib 0.11 tells a handler nothing about its connection: a write to a closed socket
// fails, but a request still queued or prefilling writes nothing, and a non-streaming one
// writes only at the end. So the handler finds its own socket, once, from the addresses the
// request carries (the one socket whose local and peer addresses are the request's), and polls
// it for hang-up while it waits.
// NOTE: the socket stays open while the handler runs (cpp-httplib closes it after), so the
// descriptor found cannot be reused under us.
#pragma once

#include <string>

namespace fourbit {

class PeerConnection {
public:
    PeerConnection() = default;
    // The connection whose addresses these are; none found (unknown family, exotic transport):
    // closed() is always false.
    static PeerConnection find(const std::string& local_address, int local_port,
                               const std::string& remote_address, int remote_port);
    bool found() const { return fd_ >= 0; }
    // The client closed its side or the connection broke. Data the client sent meanwhile (a
    // pipelined request) does not count.
    bool closed() const;

private:
    explicit PeerConnection(int fd) : fd_(fd) {}
    int fd_ = -1;
};

}  // namespace fourbit
