#include "cohort/core/request.hpp"

#include <cstring>


#include "cohort/observability/trace_context.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

request::request(envelope&& h, payload_bytes p, std::chrono::steady_clock::time_point d, reply_sink s)
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
  h.shard = req.shard;  // a sharded service's reply names the shard and epoch that served it
  h.epoch = req.epoch;
  return h;
}

bool request::claim() noexcept {
  bool expected = false;
  return answered_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
}

void request::release() noexcept {
  // Only after a successful claim(): once per request.
  if (held_by_) held_by_->remove(this);
  held_by_ = nullptr;
}

bool request::respond(payload_bytes result) {
  if (!claim()) return false;
  release();
  if (observer) observer(*this, "ok");
  if (span.tracer) record_span("ok");
  if (sink_ && header.kind == message_kind::request) sink_(reply_header(header, false), std::move(result));
  return true;
}

bool request::fail(const error_info& err) {
  if (!claim()) return false;
  release();
  if (observer) observer(*this, err.code);
  if (span.tracer) record_span(err.code);
  if (sink_ && header.kind == message_kind::request) sink_(reply_header(header, true), encode_error_payload(err));
  return true;
}

void begin_span(request& req, observability::tracer* tracer, observability::span_kind kind) {
  if (!tracer || !tracer->enabled()) return;
  auto& h = req.header;
  auto& span = req.span;
  span.tracer = tracer;
  span.kind = kind;
  span.start = req.made_or_now();
  // The common case, a caller's valid traceparent of 55 characters: this
  // hop's span id is written over the caller's in place (what the general
  // path below makes with four allocations: parse, new id, format).
  namespace obs = observability;
  char span_id[16];
  if (h.traceparent.size() == obs::traceparent_size)
    if (auto v = req.from_handler ? obs::traceparent_view_unchecked(h.traceparent)
                                  : obs::parse_traceparent_view(h.traceparent)) {
      span.sampled = v->sampled;
      std::memcpy(span.parent, v->span_id.data(), sizeof span.parent);
      obs::fill_span_id(span_id);
      obs::write_traceparent(&h.traceparent[0], v->trace_id, {span_id, sizeof span_id}, span.sampled);
      if (h.trace.empty()) h.trace.assign(h.traceparent, obs::traceparent_trace_at, 32);
      return;
    }
  // A new trace under the id the request already carries (the I/O thread
  // gives every request one): its traceparent written in place, as above.
  if (h.traceparent.empty() && obs::is_trace_id(h.trace)) {
    span.sampled = tracer->sample_new_trace();
    obs::fill_span_id(span_id);
    h.traceparent.resize(obs::traceparent_size);
    obs::write_traceparent(&h.traceparent[0], h.trace, {span_id, sizeof span_id}, span.sampled);
    return;
  }
  auto ctx = tracer->continue_or_start(h.traceparent, h.trace);
  span.sampled = ctx.sampled;
  if (ctx.span_id.size() == sizeof span.parent) std::memcpy(span.parent, ctx.span_id.data(), sizeof span.parent);
  ctx.span_id = observability::new_span_id();
  h.traceparent = observability::format_traceparent(ctx);
  if (h.trace.empty()) h.trace = ctx.trace_id;
}

void request::record_span(std::string_view code) const {
  if (!span.sampled && code == "ok") return;
  const auto& h = header;
  if (h.traceparent.size() != 55) return;
  const auto end = std::chrono::steady_clock::now();
  span.tracer->record_with(span.sampled, [&](observability::span& s) {
    s.trace_id.assign(h.traceparent, observability::traceparent_trace_at, 32);
    s.span_id.assign(h.traceparent, observability::traceparent_span_at, 16);
    if (span.parent[0] != 0) s.parent_span_id.assign(span.parent, sizeof span.parent);
    s.name.assign(h.service).append(".").append(h.method);
    s.kind = span.kind;
    const auto& node = span.tracer->node();
    s.service.assign(span.kind == observability::span_kind::server ? h.service : node);
    s.start_ns = observability::unix_ns_at(span.start);
    s.end_ns = observability::unix_ns_at(end);
    s.code.assign(code);
    s.attributes.emplace_back("rpc.system", "cohort");
    s.attributes.emplace_back("rpc.service", h.service);
    s.attributes.emplace_back("rpc.method", h.method);
    s.attributes.emplace_back("cohort.node", node);
    s.attributes.emplace_back("cohort.caller", h.caller);
    if (!h.key.empty()) s.attributes.emplace_back("cohort.key", h.key);
    if (span.kind == observability::span_kind::client) s.attributes.emplace_back("cohort.forwarded", "true");
  });
}

void request::hold(in_flight_set* in_flight) noexcept {
  held_by_ = in_flight;
  in_flight->add(this);
}

void in_flight_set::add(request* r) noexcept {
  std::lock_guard<std::mutex> guard(mutex_);
  r->prev_ = nullptr;
  r->next_ = head_;
  if (head_) head_->prev_ = r;
  head_ = r;
  count_.fetch_add(1, std::memory_order_relaxed);
}

void in_flight_set::remove(request* r) noexcept {
  std::lock_guard<std::mutex> guard(mutex_);
  if (r->prev_) r->prev_->next_ = r->next_;
  else if (head_ == r) head_ = r->next_;
  if (r->next_) r->next_->prev_ = r->prev_;
  r->prev_ = r->next_ = nullptr;
  count_.fetch_sub(1, std::memory_order_relaxed);
}

std::size_t in_flight_set::fail_all(const error_info& err) {
  // Owners taken under the lock: a request whose last owner is letting go
  // (its destructor waits for this lock to unlist itself) is skipped; its
  // destructor answers it.
  std::vector<request_ptr> held;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    for (auto* r = head_; r; r = r->next_)
      if (auto owner = r->weak_from_this().lock()) held.push_back(std::move(owner));
  }
  std::size_t answered = 0;
  for (auto& r : held) answered += r->fail(err);
  return answered;
}

std::chrono::milliseconds request::remaining() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
}

std::string new_trace_id() { return observability::new_trace_id(); }

}  // namespace cohort::detail
