#include "cohort/core/request.hpp"


#include "cohort/observability/trace_context.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

request::request(envelope h, std::string p, std::chrono::steady_clock::time_point d, reply_sink s)
    : header(std::move(h)), payload(std::move(p)), deadline(d), sink_(std::move(s)) {}

request::~request() {
  if (!answered())
    fail({errc::unavailable, "the actor handling " + header.service + "." + header.method +
                                 " stopped before replying"});
}

envelope reply_header(const envelope& req, bool is_error) {
  envelope h;
  h.kind = is_error ? message_kind::error : message_kind::reply;
  h.id = req.id;
  h.trace = req.trace;
  return h;
}

bool request::claim() noexcept {
  bool expected = false;
  return answered_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
}

void request::release() noexcept {
  if (in_flight_) in_flight_->fetch_sub(1, std::memory_order_relaxed);
  in_flight_ = nullptr;
}

bool request::respond(std::string result) {
  if (!claim()) return false;
  release();
  if (observer) observer(*this, "ok");
  if (sink_ && header.kind == message_kind::request) sink_(reply_header(header, false), std::move(result));
  return true;
}

bool request::fail(const error_info& err) {
  if (!claim()) return false;
  release();
  if (observer) observer(*this, err.code);
  if (sink_ && header.kind == message_kind::request) sink_(reply_header(header, true), encode_error_payload(err));
  return true;
}

void request::hold(std::atomic<std::int64_t>* in_flight) noexcept {
  in_flight_ = in_flight;
  in_flight_->fetch_add(1, std::memory_order_relaxed);
}

std::chrono::milliseconds request::remaining() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
}

std::string new_trace_id() { return observability::new_trace_id(); }

}  // namespace cohort::detail
