// poll: zmq::poll that a signal cannot break. A process that supervises
// child processes gets SIGCHLD on whichever thread the kernel picks, and
// cppzmq throws zmq::error_t(EINTR) out of a poll it interrupts: uncaught on
// the I/O thread, that ended the whole node whenever a service process died
// at the wrong moment. An interrupted poll is reported as "nothing ready";
// every caller loops on its own deadlines anyway.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>

#include <poll.h>
#include <zmq.hpp>

namespace cohort {

inline std::size_t poll_ignoring_signals(zmq::pollitem_t* items, std::size_t count, std::chrono::milliseconds timeout) {
  try {
    return static_cast<std::size_t>(zmq::poll(items, count, timeout));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) throw;
    for (std::size_t i = 0; i < count; ++i) items[i].revents = 0;
    return 0;
  }
}

/// poll(2) over plain fds (a socket's ZMQ_FD among them), with the same
/// rule: an interrupted poll is "nothing ready".
inline int poll_fds(::pollfd* fds, std::size_t count, std::chrono::milliseconds timeout) {
  int n = ::poll(fds, static_cast<nfds_t>(count), static_cast<int>(timeout.count()));
  if (n < 0) {
    for (std::size_t i = 0; i < count; ++i) fds[i].revents = 0;
    return 0;
  }
  return n;
}

/// Waits up to `timeout` for `fd` to be readable.
inline bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  ::pollfd p{fd, POLLIN, 0};
  return poll_fds(&p, 1, timeout) > 0;
}

}  // namespace cohort
