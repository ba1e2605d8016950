// cohort-bench-codec: what the protocol itself costs a request, on one warm
// thread with no wake-ups: the encoding and decoding of a 64-byte echo's
// headers and payloads that Cohort's client and node do and a raw ZeroMQ echo
// does not. Baseline in the same run: copying the same bytes (all a raw echo
// could be said to do with them). Together with `make budget` (CPU per
// request by thread) it says how much of the distance to raw ZeroMQ at 64 B
// is the protocol's work, which no scheduling or batching removes.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cohort/core/request.hpp"
#include "cohort/examples/example_messages.hpp"
#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/message_fields.hpp"
#include "stats.hpp"

using namespace cohort;

namespace {

/// A message of the shop's size (eight fields, as an order line with its
/// customer), once with each macro: the same bytes on the wire.
struct order_line_std {
  std::string sku, name, customer, card, status;
  std::int64_t quantity = 0, unit_cents = 0, created_ms = 0;
  MSGPACK_DEFINE_MAP(sku, name, customer, card, status, quantity, unit_cents, created_ms);
};
struct order_line_fields {
  std::string sku, name, customer, card, status;
  std::int64_t quantity = 0, unit_cents = 0, created_ms = 0;
  COHORT_FIELDS(sku, name, customer, card, status, quantity, unit_cents, created_ms);
};

/// Keeps the optimizer from dropping work whose result is unused.
volatile std::size_t sink_value = 0;

struct step {
  const char* who;
  const char* what;
  std::function<std::size_t()> run;  ///< one operation; returns something that depends on its result
};

/// ns per operation: `repeats` runs of `iterations`, median and spread.
bench::spread time_step(const step& s, int iterations, int repeats) {
  std::vector<double> ns;
  for (int r = 0; r < repeats; ++r) {
    std::size_t acc = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) acc += s.run();
    auto t1 = std::chrono::steady_clock::now();
    sink_value = sink_value + acc;
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / iterations);
  }
  return bench::spread_of(ns);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort's protocol work per request (64 B echo), one thread, beside copying the same bytes"};
  int iterations = 200000, repeats = 7;
  std::size_t payload_size = 64;
  app.add_option("--iterations", iterations, "operations per run")->check(CLI::Range(1000, 100000000));
  app.add_option("--repeats", repeats, "runs per step")->check(CLI::Range(1, 100));
  app.add_option("--payload", payload_size, "bytes of the echoed string")->check(CLI::Range(1, 1 << 20));
  bool quick = false;
  app.add_flag("--quick", quick, "fewer operations (a smoke run)");
  CLI11_PARSE(app, argc, argv);
  if (quick) iterations = 20000, repeats = 3;

  // A request as cohort::client sends it (its traceparent: a sampled caller's).
  envelope req;
  req.id = 123456;
  req.service = "echo";
  req.method = "echo";
  req.deadline_ms = 5000;
  req.sent_ms = wall_clock_ms();
  req.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const examples::echo_args args{std::string(payload_size, 'x')};
  const std::string req_header = encode_envelope(req);
  const std::string req_payload = pack(args);
  // What the node made of it, and its reply.
  envelope admitted = *decode_envelope(req_header, {});
  admitted.caller = "anonymous";
  admitted.trace = "0af7651916cd43dd8448eb211c80319c";
  const envelope reply_env = detail::reply_header(admitted, false);
  const std::string rep_header = encode_envelope(reply_env);
  const std::string rep_payload = req_payload;
  const wire_limits limits;

  std::vector<step> steps = {
      {"client", "encode the request header", [&] { return encode_envelope(req).size(); }},
      {"client", "pack the arguments", [&] { return pack(args).size(); }},
      {"node", "decode the request header", [&] { return decode_envelope(req_header, limits)->id; }},
      {"node", "decode the arguments (in place, UTF-8 checked) and convert",
       [&] { return decode_payload_in_place(req_payload, limits)->get().as<examples::echo_args>().data.size(); }},
      {"node", "pack the result", [&] { return pack(args).size(); }},
      {"node", "make and encode the reply header",
       [&] { return encode_envelope(detail::reply_header(admitted, false)).size(); }},
      {"client", "decode the reply header", [&] { return decode_envelope(rep_header, limits)->id; }},
      {"client", "decode the reply (in place, as reply::as does) and convert",
       [&] { return decode_payload_scratch(rep_payload, limits)->as<examples::echo_args>().data.size(); }},
  };
  // The baseline: the same four frames' bytes copied once each.
  const std::size_t message_bytes = req_header.size() + req_payload.size() + rep_header.size() + rep_payload.size();
  std::vector<char> into(message_bytes);
  step copy{"raw", "copy the same bytes (request and reply, header and payload)", [&] {
              std::size_t at = 0;
              for (const auto* s : {&req_header, &req_payload, &rep_header, &rep_payload}) {
                std::memcpy(into.data() + at, s->data(), s->size());
                at += s->size();
              }
              return static_cast<std::size_t>(into[at - 1]);
            }};

  std::printf("codec bench: %zu B echo, %d x %d operations per step, one thread\n", payload_size, repeats, iterations);
  std::printf("request header %zu B, reply header %zu B, payload %zu B\n\n", req_header.size(), rep_header.size(),
              req_payload.size());
  std::printf("%-7s %-62s %10s %22s\n", "where", "step", "ns (p50)", "spread [min..max]");
  double total = 0, node = 0, client = 0;
  for (const auto& s : steps) {
    auto t = time_step(s, iterations, repeats);
    total += t.median;
    (std::string(s.who) == "node" ? node : client) += t.median;
    std::printf("%-7s %-62s %10.1f %10.1f..%-10.1f\n", s.who, s.what, t.median, t.min, t.max);
  }
  auto base = time_step(copy, iterations, repeats);
  std::printf("%-7s %-62s %10.1f %10.1f..%-10.1f\n", copy.who, copy.what, base.median, base.min, base.max);
  std::printf("\nper request: %.2f us of protocol work (node %.2f, client %.2f); copying the bytes: %.3f us (%.0fx)\n",
              total / 1000, node / 1000, client / 1000, base.median / 1000, base.median > 0 ? total / base.median : 0);

  // Reading a message into its type: COHORT_FIELDS against msgpack-c's
  // MSGPACK_DEFINE_MAP (the baseline), the same bytes decoded in place.
  const order_line_std line{"sku-000123", "Espresso cups, set of 6", "customer-000042", "4242-4242-4242-4242",
                            "reserved", 2, 1899, 1764547200000};
  const std::string line_bytes = pack(line);
  step fields{"message", "decode an 8-field message, COHORT_FIELDS", [&] {
                return decode_payload_scratch(line_bytes, limits)->as<order_line_fields>().name.size();
              }};
  step define_map{"message", "decode the same, MSGPACK_DEFINE_MAP (baseline)", [&] {
                    return decode_payload_scratch(line_bytes, limits)->as<order_line_std>().name.size();
                  }};
  auto f = time_step(fields, iterations, repeats);
  auto d = time_step(define_map, iterations, repeats);
  std::printf("\n%-7s %-62s %10.1f %10.1f..%-10.1f\n", fields.who, fields.what, f.median, f.min, f.max);
  std::printf("%-7s %-62s %10.1f %10.1f..%-10.1f\n", define_map.who, define_map.what, d.median, d.min, d.max);
  std::printf("message decode: COHORT_FIELDS %.2fx the time of MSGPACK_DEFINE_MAP\n", d.median > 0 ? f.median / d.median : 0);
  return 0;
}
