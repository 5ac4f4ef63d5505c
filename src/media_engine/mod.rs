//! RTP sockets, port pool and relay tasks (in progress).
