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

}  // namespace cohort
