#include "raw_echo.hpp"

#include <cstring>
#include <stdexcept>

namespace cohort::bench {

run_result measure_raw(const std::string& endpoint, int in_flight, std::chrono::milliseconds duration,
                       std::size_t payload_bytes) {
  bench_dealer dealer(endpoint);
  auto& s = dealer.socket;
  std::string payload(payload_bytes, 'x');
  zmq::message_t m;
  return closed_loop(
      in_flight, duration,
      [&](std::size_t slot) {
        const auto id = static_cast<std::uint32_t>(slot);
        std::string msg(reinterpret_cast<const char*>(&id), sizeof id);
        msg += payload;
        s.send(zmq::buffer(msg), zmq::send_flags::none);
      },
      [&]() -> std::size_t {
        if (!s.recv(m) || m.size() < sizeof(std::uint32_t)) throw std::runtime_error("raw echo: no answer");
        std::uint32_t id;
        std::memcpy(&id, m.data(), sizeof id);
        return id;
      });
}

}  // namespace cohort::bench
