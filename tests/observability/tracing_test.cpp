// Traces: W3C trace context, sampling, spans across every hop of a node
// (server, client, store writes, events), and OTLP/HTTP export to a receiver
// checked field by field, including a receiver that is down or stuck.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "cohort/core/request.hpp"
#include "cohort/observability/otlp_exporter.hpp"
#include "cohort/observability/trace_context.hpp"
#include "cohort/observability/tracer.hpp"
#include "cohort/examples/example_messages.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace cohort::observability;
using namespace std::chrono_literals;
using json = nlohmann::json;

TEST_CASE("traceparent is read and written as W3C Trace Context says", "[observability][trace]") {
  auto ok = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  REQUIRE(ok);
  CHECK(ok->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(ok->span_id == "00f067aa0ba902b7");
  CHECK(ok->sampled);
  CHECK(format_traceparent(*ok) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  REQUIRE(unsampled);
  CHECK_FALSE(unsampled->sampled);
  // A later version may append fields; it is read as version 00.
  CHECK(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"));
  for (const char* bad : {"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       // no flags
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // version ff
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       // zero span
                          "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       // uppercase
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",     // 00 is exactly 55
                          "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // separator
                          "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01"})     // not hex
    CHECK_FALSE(parse_traceparent(bad));
  CHECK(is_trace_id(new_trace_id()));
  CHECK(is_span_id(new_span_id()));
  CHECK(sanitize_tracestate("vendor=abc,other=1") == "vendor=abc,other=1");
  CHECK(sanitize_tracestate(std::string(513, 'a')).empty());
  CHECK(sanitize_tracestate("a=\n").empty());
}

TEST_CASE("a hop continues its caller's trace: same trace id, a new span id, the caller's span as parent",
          "[observability][trace]") {
  observability::tracer t(observability::trace_config{}, "n");
  for (const char* caller : {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                             "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",  // a later version, other flags
                             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}) {
    INFO(caller);
    envelope h;
    h.traceparent = caller;
    detail::request req(std::move(h), "", std::chrono::steady_clock::now() + std::chrono::seconds(1), nullptr);
    detail::begin_span(req, &t, observability::span_kind::server);
    auto hop = parse_traceparent(req.header.traceparent);
    REQUIRE(hop);
    CHECK(req.header.traceparent.size() == 55);
    CHECK(req.header.traceparent.substr(0, 3) == "00-");
    CHECK(hop->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(req.header.trace == hop->trace_id);
    CHECK(hop->span_id != "00f067aa0ba902b7");
    CHECK(is_span_id(hop->span_id));
    CHECK(std::string(req.span.parent, sizeof req.span.parent) == "00f067aa0ba902b7");
    const bool sampled = std::string(caller).substr(53, 2) != "00";
    CHECK(hop->sampled == sampled);
    CHECK(req.span.sampled == sampled);
  }
  // Two hops of one caller get different span ids.
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    char id[16];
    fill_span_id(id);
    CHECK(is_span_id(std::string_view(id, 16)));
    ids.emplace(id, 16);
  }
  CHECK(ids.size() == 100);
}

TEST_CASE("head sampling keeps the configured share of new traces, the caller's choice, and every error",
          "[observability][trace]") {
  trace_config cfg;
  cfg.sample = 0.25;
  tracer t(cfg, "n");
  int sampled = 0;
  for (int i = 0; i < 4000; ++i) sampled += t.continue_or_start("", "").sampled;
  CHECK(sampled > 700);   // 1000 expected
  CHECK(sampled < 1300);
  // A caller's decision is followed either way.
  CHECK(t.continue_or_start("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "").sampled);
  CHECK_FALSE(t.continue_or_start("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "").sampled);
  // An invalid traceparent starts a new trace; a trace id given apart is its id.
  auto fresh = t.continue_or_start("garbage", "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(fresh.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(fresh.span_id.empty());

  span ok_span;
  ok_span.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  ok_span.span_id = new_span_id();
  span failed = ok_span;
  failed.span_id = new_span_id();
  failed.code = "timeout";
  t.record(span(ok_span), false);
  t.record(span(failed), false);
  auto kept = t.find("4bf92f3577b34da6a3ce929d0e0e4736");
  REQUIRE(kept.size() == 1);
  CHECK(kept[0].code == "timeout");

  cfg.sample = 0;
  cfg.keep_spans = 3;
  tracer small(cfg, "n");
  CHECK_FALSE(small.continue_or_start("", "").sampled);
  for (int i = 0; i < 10; ++i) small.record(span(ok_span), true);
  CHECK(small.find(ok_span.trace_id).size() == 3);
  CHECK(small.stats().recorded == 10);
}

TEST_CASE("the memory ring keeps the last spans in the order they ended, and a span written in place keeps nothing of the one before",
          "[observability][trace]") {
  trace_config cfg;
  cfg.keep_spans = 3;
  tracer t(cfg, "n");
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  // Spans 1..6 of one trace; 1-3 with a parent, a failure code and a second
  // attribute. The ring keeps 4, 5 and 6, oldest first. Span 5 was written
  // over this thread's span after span 4 took span 1's place in the ring,
  // i.e. over span 1's fields: none of them show.
  for (int i = 1; i <= 6; ++i)
    t.record_with(true, [&](span& s) {
      s.trace_id = trace;
      s.span_id = "000000000000000" + std::to_string(i);
      s.name = "svc.m" + std::to_string(i);
      if (i <= 3) {
        s.parent_span_id = "00f067aa0ba902b7";
        s.code = "timeout";
        s.attributes.emplace_back("early", "yes");
      }
      s.attributes.emplace_back("i", std::to_string(i));
    });
  auto kept = t.find(trace);
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].name == "svc.m4");
  CHECK(kept[1].name == "svc.m5");
  CHECK(kept[2].name == "svc.m6");
  for (const auto& k : kept) {
    CHECK(k.parent_span_id.empty());
    CHECK(k.code == "ok");
    CHECK(k.attributes.size() == 1);
  }
  CHECK(kept[1].attributes[0] == std::pair<std::string, std::string>("i", "5"));
  // Unsampled and ok: not kept, not counted; unsampled and failed: kept.
  t.record_with(false, [&](span& s) { s.trace_id = trace, s.name = "svc.quiet"; });
  t.record_with(false, [&](span& s) { s.trace_id = trace, s.name = "svc.failed", s.code = "internal"; });
  kept = t.find(trace);
  REQUIRE(kept.size() == 3);
  CHECK(kept[2].name == "svc.failed");
  CHECK(t.stats().recorded == 7);
}

TEST_CASE("a steady-clock instant reads as the wall clock at that instant", "[observability][trace]") {
  using namespace std::chrono;
  auto wall = [](system_clock::time_point t) { return static_cast<std::int64_t>(duration_cast<nanoseconds>(t.time_since_epoch()).count()); };
  for (auto ago : {0s, 5s, 3600s}) {
    const auto steady_then = steady_clock::now() - ago;
    const auto got = static_cast<std::int64_t>(unix_ns_at(steady_then));
    const auto expected = wall(system_clock::now() - ago);
    INFO("ago " << ago.count() << " s");
    CHECK(std::llabs(got - expected) < 5'000'000);  // within 5 ms
  }
  // Re-read offsets: instants 200 ms apart (past its 100 ms) still agree.
  const auto a = steady_clock::now();
  std::this_thread::sleep_for(200ms);
  const auto b = steady_clock::now();
  const auto diff = static_cast<std::int64_t>(unix_ns_at(b)) - static_cast<std::int64_t>(unix_ns_at(a));
  CHECK(std::llabs(diff - duration_cast<nanoseconds>(b - a).count()) < 5'000'000);
}

namespace {

const std::string given_trace = "0af7651916cd43dd8448eb211c80319c";
const std::string given_parent = "b7ad6b7169203331";

call_options traced(const std::string& key, bool sampled = true) {
  call_options o;
  o.key = key;
  o.traceparent = "00-" + given_trace + "-" + given_parent + (sampled ? "-01" : "-00");
  return o;
}

const span* named(const std::vector<span>& spans, const std::string& name, span_kind kind) {
  for (const auto& s : spans)
    if (s.name == name && s.kind == kind) return &s;
  return nullptr;
}

std::string attribute(const span& s, const std::string& key) {
  for (const auto& [k, v] : s.attributes)
    if (k == key) return v;
  return {};
}

}  // namespace

TEST_CASE("a request's spans form one tree across services, calls and store writes", "[observability][trace]") {
  temp_dir dir;
  auto cfg = loopback_config(dir / "data");
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  // visits.record calls counter.add (an entity: a durable write) and then greeter.hello.
  const auto before = unix_ns();
  auto r = c.call("visits", "record", pack(hello_args{"ada"}), traced(""));
  const auto after = unix_ns();
  REQUIRE(r.ok());
  CHECK(r.header.trace == given_trace);  // the reply names the trace of the traceparent

  std::vector<span> spans;
  REQUIRE(eventually([&] {
    spans = n->spans(given_trace);
    return spans.size() >= 6;
  }));
  const auto* visit = named(spans, "visits.record", span_kind::server);
  const auto* add_call = named(spans, "counter.add", span_kind::client);
  const auto* add = named(spans, "counter.add", span_kind::server);
  const auto* write = named(spans, "store.commit", span_kind::internal);
  const auto* hello_call = named(spans, "greeter.hello", span_kind::client);
  const auto* hello = named(spans, "greeter.hello", span_kind::server);
  REQUIRE(visit);
  REQUIRE(add_call);
  REQUIRE(add);
  REQUIRE(write);
  REQUIRE(hello_call);
  REQUIRE(hello);
  for (const auto& s : spans) {
    CHECK(s.trace_id == given_trace);
    CHECK(is_span_id(s.span_id));
    CHECK(s.end_ns >= s.start_ns);
    CHECK(s.code == "ok");
  }
  CHECK(visit->parent_span_id == given_parent);  // the caller's span
  CHECK(add_call->parent_span_id == visit->span_id);
  CHECK(add->parent_span_id == add_call->span_id);
  CHECK(write->parent_span_id == add->span_id);
  CHECK(hello_call->parent_span_id == visit->span_id);
  CHECK(hello->parent_span_id == hello_call->span_id);
  CHECK(add_call->end_ns <= hello_call->start_ns);  // one after the other
  // Each span inside its parent, and all inside the call as the client timed
  // it. Spans in progress keep steady time and become Unix time when
  // recorded: an edge may move by the nanoseconds between two clock reads.
  const std::uint64_t slack = 1'000'000;
  auto inside = [&](const span* child, const span* parent) {
    return child->start_ns + slack >= parent->start_ns && child->end_ns <= parent->end_ns + slack;
  };
  CHECK(visit->start_ns + slack >= before);
  CHECK(visit->end_ns <= after + slack);
  CHECK(inside(add_call, visit));
  CHECK(inside(add, add_call));
  CHECK(inside(write, add));
  CHECK(inside(hello_call, visit));
  CHECK(inside(hello, hello_call));
  CHECK(visit->service == "visits");
  CHECK(add->service == "counter");
  CHECK(attribute(*add, "cohort.key") == "ada");
  CHECK(attribute(*visit, "cohort.caller") == "anonymous");
  CHECK(attribute(*write, "db.system") == "rocksdb");
  n->stop();
}

TEST_CASE("an unsampled trace keeps no span but its errors; tracing off keeps none and passes the context on",
          "[observability][trace]") {
  temp_dir dir;
  auto cfg = loopback_config(dir / "data");
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  REQUIRE(c.call("visits", "record", pack(hello_args{"bo"}), traced("", false)).ok());
  // An empty name is refused by visits.record: an error, kept though not sampled.
  auto refused = c.call("visits", "record", pack(hello_args{""}), traced("", false));
  REQUIRE_FALSE(refused.ok());
  std::vector<span> spans;
  REQUIRE(eventually([&] {
    spans = n->spans(given_trace);
    return !spans.empty();
  }));
  std::this_thread::sleep_for(50ms);
  spans = n->spans(given_trace);
  REQUIRE(spans.size() == 1);
  CHECK(spans[0].name == "visits.record");
  CHECK(spans[0].code == "bad_request");
  n->stop();

  temp_dir dir2;
  auto off = loopback_config(dir2 / "data");
  off.trace.enabled = false;
  auto quiet = start_node(off);
  client c2(quiet->endpoints().front());
  auto r = c2.call("visits", "record", pack(hello_args{""}), traced(""));
  REQUIRE_FALSE(r.ok());
  CHECK(r.header.trace == given_trace);
  CHECK(quiet->spans(given_trace).empty());
  CHECK(quiet->trace_stats().recorded == 0);
  quiet->stop();
}

namespace {

/// The Python stand-in collector (tests/observability/otlp_receiver.py).
struct otlp_receiver {
  temp_dir dir;
  std::unique_ptr<child_process> proc;
  std::string endpoint;
  explicit otlp_receiver(bool hang = false) {
    std::vector<std::string> argv{"/usr/bin/python3", COHORT_SOURCE_DIR "/tests/observability/otlp_receiver.py", dir.path()};
    if (hang) argv.push_back("--hang");
    proc = std::make_unique<child_process>(argv);
    auto line = proc->wait_for_line("listening on ");
    REQUIRE(line);
    endpoint = "http://127.0.0.1:" + line->substr(line->find("listening on ") + 13);
  }
  ~otlp_receiver() {
    proc->signal(SIGKILL);
    proc->wait();
  }
  std::vector<json> documents(const std::string& kind) const {
    std::vector<json> out;
    std::ifstream in(dir / (kind + ".jsonl"));
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line));
    return out;
  }
};

/// Every span in the OTLP documents, each with its resource's service.name.
std::vector<std::pair<std::string, json>> exported_spans(const std::vector<json>& docs) {
  std::vector<std::pair<std::string, json>> out;
  for (const auto& d : docs)
    for (const auto& rs : d["resourceSpans"]) {
      std::string service;
      for (const auto& a : rs["resource"]["attributes"])
        if (a["key"] == "service.name") service = a["value"]["stringValue"];
      for (const auto& ss : rs["scopeSpans"])
        for (const auto& s : ss["spans"]) out.emplace_back(service, s);
    }
  return out;
}

}  // namespace

TEST_CASE("spans and log lines are exported as OTLP/HTTP JSON that a collector accepts", "[observability][trace][otlp]") {
  otlp_receiver receiver;
  temp_dir dir;
  auto cfg = loopback_config(dir / "data");
  cfg.trace.otlp_endpoint = receiver.endpoint;
  cfg.trace.export_every = 100ms;
  cfg.trace.export_logs = true;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  REQUIRE(c.call("visits", "record", pack(hello_args{"cy"}), traced("")).ok());
  log::get("test")->warn("a line for the collector");

  std::vector<std::pair<std::string, json>> spans;
  REQUIRE(eventually([&] {
    spans = exported_spans(receiver.documents("traces"));
    return spans.size() >= 6;
  }, 10s));
  std::set<std::string> services;
  bool saw_root = false;
  for (const auto& [service, s] : spans) {
    services.insert(service);
    CHECK(s["traceId"] == given_trace);
    CHECK(is_span_id(s["spanId"].get<std::string>()));
    CHECK(s["startTimeUnixNano"].is_string());  // 64-bit integers are strings in OTLP JSON
    CHECK(std::stoull(s["endTimeUnixNano"].get<std::string>()) >= std::stoull(s["startTimeUnixNano"].get<std::string>()));
    CHECK(s["kind"].is_number_integer());
    CHECK(s["status"]["code"] == 1);
    CHECK(s["attributes"].is_array());
    if (s["name"] == "visits.record") {
      saw_root = true;
      CHECK(s["parentSpanId"] == given_parent);
      CHECK(s["kind"] == 2);  // SERVER
      bool has_method = false;
      for (const auto& a : s["attributes"])
        if (a["key"] == "rpc.method") has_method = a["value"]["stringValue"] == "record";
      CHECK(has_method);
    }
  }
  CHECK(saw_root);
  CHECK(services == std::set<std::string>{"visits", "counter", "greeter"});

  json line;
  REQUIRE(eventually([&] {
    for (const auto& d : receiver.documents("logs"))
      for (const auto& rl : d["resourceLogs"])
        for (const auto& sl : rl["scopeLogs"])
          for (const auto& r : sl["logRecords"])
            if (r["body"]["stringValue"] == "a line for the collector") line = r;
    return !line.is_null();
  }, 10s));
  CHECK(line["severityText"] == "warning");
  CHECK(line["severityNumber"] == 13);
  CHECK(line["timeUnixNano"].is_string());
  CHECK(n->trace_stats().export_failures == 0);
  n->stop();
}

TEST_CASE("a collector that is down or stuck costs failed exports, never a request", "[observability][trace][otlp]") {
  for (bool stuck : {false, true}) {
    DYNAMIC_SECTION((stuck ? "stuck collector" : "collector down")) {
      std::optional<otlp_receiver> hanging;
      std::string endpoint = "http://127.0.0.1:9";  // discard port: nothing listens
      if (stuck) {
        hanging.emplace(true);
        endpoint = hanging->endpoint;
      }
      temp_dir dir;
      auto cfg = loopback_config(dir / "data");
      cfg.trace.otlp_endpoint = endpoint;
      cfg.trace.export_every = 20ms;
      cfg.trace.export_timeout = 300ms;
      cfg.trace.export_queue = 64;
      auto n = start_node(cfg);
      client c(n->endpoints().front());
      // 300 traced requests while every export fails or hangs: each answered
      // (the bound is for the whole run, far above what 300 requests take).
      auto began = std::chrono::steady_clock::now();
      for (int i = 0; i < 300; ++i) {
        auto r = c.call("greeter", "hello", pack(hello_args{"x"}), traced(""));
        REQUIRE(r.ok());
      }
      CHECK(std::chrono::steady_clock::now() - began < 20s);
      REQUIRE(eventually([&] { return n->trace_stats().export_failures > 0; }, 5s));
      // A stuck collector holds the exporter for its timeout: the queue of 64 overflows instead of waiting.
      if (stuck) CHECK(n->trace_stats().export_dropped > 0);
      CHECK(n->trace_stats().exported == 0);
      auto stop_began = std::chrono::steady_clock::now();
      n->stop();
      CHECK(std::chrono::steady_clock::now() - stop_began < 5s);
    }
  }
}

TEST_CASE("write_traceparent lays out version, ids and flags, also over a header in place", "[observability][trace]") {
  using namespace cohort::observability;
  std::string tp(traceparent_size, 'x');
  write_traceparent(&tp[0], "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true);
  CHECK(tp == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  // In place: the trace id is where it goes already; a new span and flags are written around it.
  write_traceparent(&tp[0], std::string_view(tp).substr(traceparent_trace_at, 32), "1111111111111111", false);
  CHECK(tp == "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-00");
  auto back = parse_traceparent(tp);
  REQUIRE(back);
  CHECK(back->span_id == "1111111111111111");
  CHECK_FALSE(back->sampled);
}
