// Logs: JSON lines that parse for any input, levels per component, the
// thread's context (service, actor, trace, caller) on lines logged inside a
// handler, and the ring of recent lines behind `cohortctl logs`.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cohort/log/log.hpp"
#include "cohort/log/log_ring.hpp"
#include <spdlog/spdlog.h>
#include "cohort/examples/example_messages.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using json = nlohmann::json;

namespace {

/// What the process writes to stderr while `body` runs.
template <class F>
std::string capture_stderr(F body) {
  temp_dir dir;
  std::fflush(stderr);
  int saved = ::dup(2);
  auto path = dir / "stderr";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ::dup2(::fileno(f), 2);
  body();
  for (const auto& name : {"cohort", "store", "net", "test"})
    if (auto l = spdlog::get(name)) l->flush();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(f);
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line));  // throws (fails the test) if not JSON
  return out;
}

}  // namespace

TEST_CASE("JSON log lines parse whatever the message holds", "[observability][log]") {
  log::config cfg;
  cfg.output = log::format::json;
  log::configure(cfg, "node-\"q\"");
  const std::string hostile = std::string("quote \" backslash \\ newline \n tab \t nul ") + '\0' +
                              " bell \x07 invalid \xff\xfe utf8 \xe2\x82 end";
  const std::string caller = "eve\"\n\x01";
  std::string out = capture_stderr([&] {
    log::context ctx;
    ctx.service = "greeter";
    ctx.caller = caller;
    ctx.trace_id = "0af7651916cd43dd8448eb211c80319c";
    log::scope scope(ctx);
    log::get("test")->warn("{}", hostile);
    log::get("test")->info("second {}", 2);
  });
  auto lines = json_lines(out);
  REQUIRE(lines.size() == 2);
  const auto& l = lines[0];
  CHECK(l["level"] == "warning");
  CHECK(l["node"] == "node-\"q\"");
  CHECK(l["component"] == "test");
  CHECK(l["service"] == "greeter");
  CHECK(l["caller"] == "eve\"\n\x01");
  CHECK(l["trace_id"] == "0af7651916cd43dd8448eb211c80319c");
  auto msg = l["msg"].get<std::string>();
  CHECK(msg.find("quote \" backslash \\ newline \n tab \t nul ") == 0);
  CHECK(msg.find(std::string(1, '\0')) != std::string::npos);   // escaped as \u0000, read back
  CHECK(msg.find("\xef\xbf\xbd") != std::string::npos);         // invalid bytes became U+FFFD
  CHECK(msg.find("\xff") == std::string::npos);
  CHECK(l["time"].get<std::string>().size() == 27);             // 2026-11-26T05:40:00.123456Z
  CHECK(lines[1]["msg"] == "second 2");
  CHECK(lines[1]["service"] == "greeter");                      // still inside the scope
  log::configure({}, "test");
}

TEST_CASE("levels are set per component", "[observability][log]") {
  log::config cfg;
  cfg.level = "warn";
  cfg.levels = {{"store", "debug"}};
  cfg.output = log::format::json;
  log::configure(cfg, "n");
  auto out = capture_stderr([] {
    log::get("store")->debug("store detail");
    log::get("net")->info("net chatter");
    log::get("net")->warn("net warning");
  });
  auto lines = json_lines(out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["msg"] == "store detail");
  CHECK(lines[1]["msg"] == "net warning");
  log::configure({}, "test");
}

TEST_CASE("a handler's log lines carry its service, actor, trace and caller; the ring keeps them",
          "[observability][log]") {
  auto logging = worker_service("logging")
                     .method("say",
                             [](method_context&, const hello_args& a) {
                               log::get("app")->info("said {}", a.name);
                               return hello_reply{a.name};
                             })
                     .build();
  auto hosted = example_services();
  hosted.push_back(logging);
  temp_dir dir;
  auto cfg = loopback_config(dir / "data", hosted);
  auto started = node::start(cfg, hosted);
  REQUIRE(started);
  auto& n = *started;
  client c(n->endpoints().front());
  call_options o;
  o.traceparent = "00-5e1a7651916cd43dd8448eb211c8031a-b7ad6b7169203331-01";
  REQUIRE(c.call("logging", "say", pack(hello_args{"hi-ring"}), o).ok());

  log::query q;
  q.trace_id = "5e1a7651916cd43dd8448eb211c8031a";
  auto lines = log::recent(q);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].message == "said hi-ring");
  CHECK(lines[0].component == "app");
  CHECK(lines[0].service == "logging");
  CHECK(lines[0].actor == "worker");
  CHECK(lines[0].caller == "anonymous");
  CHECK(lines[0].span_id.size() == 16);
  CHECK(lines[0].span_id != "b7ad6b7169203331");  // the request's own span, child of the caller's
  q.trace_id.clear();
  q.service = "logging";
  CHECK(log::recent(q).size() == 1);
  q.service = "greeter";
  q.since_us = lines[0].time_us;
  CHECK(log::recent(q).empty());
  q = {};
  q.since_us = lines[0].time_us + 1;
  q.component = "app";
  CHECK(log::recent(q).empty());
  n->stop();
}
