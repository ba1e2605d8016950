#include "cohort/security/zap_handler.hpp"

#include <array>
#include <vector>

#include <zmq_addon.hpp>
#include "cohort/transport/poll.hpp"

namespace cohort::security {

zap_handler::zap_handler(zmq::context_t& ctx, std::function<zap_verdict(const zap_request&)> decide)
    : socket_(ctx, zmq::socket_type::rep), decide_(std::move(decide)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this] { run(); });
}

zap_handler::~zap_handler() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void zap_handler::run() {
  std::vector<zmq::message_t> frames;
  while (!stopping_.load()) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (poll_ignoring_signals(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
      frames.clear();
      if (!zmq::recv_multipart(socket_, std::back_inserter(frames))) continue;
    } catch (const zmq::error_t&) {
      if (stopping_.load()) return;
      continue;
    }
    // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
    zap_verdict verdict;
    std::string version = frames.size() > 0 ? frames[0].to_string() : "";
    std::string request_id = frames.size() > 1 ? frames[1].to_string() : "";
    if (frames.size() < 6 || version != "1.0") {
      verdict.reason = "malformed ZAP request";
    } else {
      zap_request r;
      r.domain = frames[2].to_string();
      r.address = frames[3].to_string();
      r.mechanism = frames[5].to_string();
      if (r.mechanism == "CURVE" && frames.size() >= 7 && frames[6].size() == 32) {
        std::array<char, 41> z85{};
        zmq_z85_encode(z85.data(), frames[6].data<std::uint8_t>(), 32);
        r.public_key.assign(z85.data(), 40);
      }
      try {
        verdict = decide_(r);
      } catch (const std::exception& e) {
        verdict = {false, "", std::string("authentication failed: ") + e.what()};
      }
    }
    if (!verdict.accepted) refused_++;
    std::array<zmq::const_buffer, 6> reply{zmq::str_buffer("1.0"), zmq::buffer(request_id),
                                           verdict.accepted ? zmq::str_buffer("200") : zmq::str_buffer("400"),
                                           zmq::buffer(verdict.reason), zmq::buffer(verdict.user_id), zmq::const_buffer()};
    try {
      zmq::send_multipart(socket_, reply);
    } catch (const zmq::error_t&) {
    }
  }
}

}  // namespace cohort::security
