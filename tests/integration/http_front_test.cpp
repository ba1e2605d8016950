// The HTTP/JSON front of a real node process: curl, wrk (bounded, loopback),
// and raw sockets for malformed HTTP and slow clients.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <thread>

#include "node_process.hpp"

using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

/// Reads the http endpoint from the node's output.
int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/// Everything the server sends until it closes (or 3 s pass).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

}  // namespace

TEST_CASE("POST /v1/<service>/<method> answers JSON and errors map to HTTP statuses", "[integration][http]") {
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4096\n[services.greeter]\n[services.counter]\n");
  auto base = http_endpoint(n);
  auto curl = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{"/usr/bin/curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H",
                                  "Content-Type: application/json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv).second;
  };
  auto ok = curl({"-X", "POST", base + "/v1/greeter/hello", "-d", R"({"name":"web"})"});
  CHECK_THAT(ok, Catch::Contains(R"({"greeting":"Hello, web!"})") && Catch::EndsWith("200"));
  auto keyed = curl({"-X", "POST", "-H", "X-Cohort-Key: cart-1", base + "/v1/counter/add", "-d", R"({"n":2})"});
  CHECK_THAT(keyed, Catch::Contains(R"("value":2)"));
  CHECK_THAT(curl({"-X", "POST", base + "/v1/nosuch/x", "-d", "{}"}),
             Catch::Contains("\"code\":\"unknown_service\"") && Catch::EndsWith("404"));
  CHECK_THAT(curl({"-X", "POST", base + "/v1/greeter/nosuch", "-d", "{}"}), Catch::EndsWith("404"));
  CHECK_THAT(curl({"-X", "POST", base + "/v1/greeter/hello", "-d", "{not json"}),
             Catch::Contains("not valid JSON") && Catch::EndsWith("400"));
  CHECK_THAT(curl({"-X", "POST", base + "/v1/greeter/hello", "-d", R"({"name":7})"}), Catch::EndsWith("400"));
  CHECK_THAT(curl({"-X", "POST", base + "/v1/greeter/fail", "-d", R"({"code":"out_of_stock","message":"none"})"}),
             Catch::Contains("out_of_stock") && Catch::EndsWith("422"));
  CHECK_THAT(curl({"-X", "POST", "-H", "X-Timeout-Ms: 50", base + "/v1/greeter/sleep", "-d", R"({"ms":400})"}),
             Catch::Contains("\"code\":\"timeout\"") && Catch::EndsWith("504"));
  // Crashing on purpose is internal: never reachable over HTTP.
  CHECK_THAT(curl({"-X", "POST", base + "/v1/greeter/crash", "-d", R"({"message":"x"})"}), Catch::EndsWith("403"));
  CHECK_THAT(curl({"-X", "POST", base + "/v1/greeter/hello", "-d", std::string(5000, ' ')}),
             Catch::Contains("too_large") && Catch::EndsWith("413"));
  CHECK_THAT(curl({base + "/v1/greeter/hello"}), Catch::EndsWith("405"));
  CHECK_THAT(curl({base + "/health"}), Catch::Contains("\"status\":\"ready\"") && Catch::EndsWith("200"));
  CHECK_THAT(curl({base + "/health/greeter"}), Catch::EndsWith("200"));
  CHECK_THAT(curl({base + "/elsewhere"}), Catch::EndsWith("404"));
  // Request and trace ids: assigned at the edge, or kept when the client sends them.
  auto headers = run({"/usr/bin/curl", "-s", "-i", "-X", "POST", "-H", "X-Request-Id: req-42", "-H",
                      "Content-Type: application/json", base + "/v1/greeter/hello",
                      "-d", R"({"name":"id"})"})
                     .second;
  CHECK_THAT(headers, Catch::Contains("X-Request-Id: req-42") && Catch::Contains("X-Trace-Id: "));
  // Idempotency-Key: a retried POST is applied once and answered alike; the
  // same key with other arguments is a 409.
  auto once = curl({"-X", "POST", "-H", "X-Cohort-Key: idem-http", "-H", "Idempotency-Key: add-7",
                    base + "/v1/counter/add", "-d", R"({"n":7})"});
  auto again = curl({"-X", "POST", "-H", "X-Cohort-Key: idem-http", "-H", "Idempotency-Key: add-7",
                     base + "/v1/counter/add", "-d", R"({"n":7})"});
  CHECK_THAT(once, Catch::Contains(R"("value":7)") && Catch::EndsWith("200"));
  CHECK(again == once);
  CHECK_THAT(curl({"-X", "POST", "-H", "X-Cohort-Key: idem-http", "-H", "Idempotency-Key: add-7",
                   base + "/v1/counter/add", "-d", R"({"n":8})"}),
             Catch::Contains("idempotency_key_reused") && Catch::EndsWith("409"));
  CHECK_THAT(curl({"-X", "POST", "-H", "X-Cohort-Key: idem-http", base + "/v1/counter/add", "-d", R"({"n":0})"}),
             Catch::Contains(R"("value":7)"));
}

TEST_CASE("hostile HTTP requests get a 4xx with a stable code and the node keeps serving", "[integration][http]") {
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\n[services.greeter]\n[services.counter]\n");
  auto base = http_endpoint(n);
  auto curl = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{"/usr/bin/curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv).second;
  };
  const std::string json = "Content-Type: application/json";
  // Nested deeper than any stack: before the fix the node died with SIGSEGV here.
  auto deep = n.dir / "deep.json";
  std::ofstream(deep) << std::string(200000, '[') << std::string(200000, ']');
  CHECK_THAT(curl({"-H", json, "--data-binary", "@" + deep, base + "/v1/greeter/echo"}),
             Catch::Contains("nests deeper than 32") && Catch::EndsWith("400"));
  auto deep_obj = n.dir / "deep-obj.json";
  {
    std::ofstream o(deep_obj);
    for (int i = 0; i < 100000; ++i) o << "{\"a\":";
    o << "1";
    for (int i = 0; i < 100000; ++i) o << "}";
  }
  CHECK_THAT(curl({"-H", json, "--data-binary", "@" + deep_obj, base + "/v1/greeter/echo"}),
             Catch::EndsWith("400"));
  // A form a browser could post cross-site is refused.
  CHECK_THAT(curl({"-d", "name=x", base + "/v1/greeter/hello"}),
             Catch::Contains("application/json") && Catch::EndsWith("415"));
  CHECK_THAT(curl({"-H", "Content-Type: text/plain", "-d", R"({"name":"x"})", base + "/v1/greeter/hello"}),
             Catch::EndsWith("415"));
  CHECK_THAT(curl({"-H", "Content-Type: application/json; charset=utf-8", "-d", R"({"name":"q"})",
                   base + "/v1/greeter/hello?trace=1"}),
             Catch::Contains("Hello, q!") && Catch::EndsWith("200"));
  CHECK_THAT(curl({"-H", json, "-H", "X-Cohort-Key: " + std::string(2000, 'k'), "-d", R"({"n":1})",
                   base + "/v1/counter/add"}),
             Catch::Contains("X-Cohort-Key") && Catch::EndsWith("400"));
  CHECK_THAT(curl({"-H", json, "-H", "Idempotency-Key: " + std::string(300, 'i'), "-d", R"({"n":1})",
                   base + "/v1/counter/add"}),
             Catch::EndsWith("400"));
  for (std::string bad : {"-5", "0", "99999999999", "12abc", "1e3"})
    CHECK_THAT(curl({"-H", json, "-H", "X-Timeout-Ms: " + bad, "-d", R"({"name":"t"})", base + "/v1/greeter/hello"}),
               Catch::Contains("X-Timeout-Ms") && Catch::EndsWith("400"));
  // Invalid UTF-8 in JSON is refused, as it is in native strings.
  CHECK_THAT(curl({"-H", json, "-d", "{\"name\":\"\xff\xfe\"}", base + "/v1/greeter/hello"}), Catch::EndsWith("400"));
  // The node is alive and serving.
  CHECK_THAT(curl({"-H", json, "-d", R"({"name":"after"})", base + "/v1/greeter/hello"}),
             Catch::Contains("Hello, after!") && Catch::EndsWith("200"));
  CHECK_FALSE(n.proc->wait(50ms));  // still running
}

TEST_CASE("malformed HTTP and slow clients are cut off while others are served", "[integration][http]") {
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\nread_timeout_ms = 300\n[services.greeter]\n");
  auto base = http_endpoint(n);
  int port = std::stoi(base.substr(base.rfind(':') + 1));

  int garbage = connect_to(port);
  std::string junk = "GARBAGE \x01\x02 NOT HTTP\r\n\r\n";
  ::send(garbage, junk.data(), junk.size(), 0);
  CHECK_THAT(read_all(garbage), Catch::StartsWith("HTTP/1.1 400"));
  ::close(garbage);

  // A client that sends half a request and stalls is dropped after the read timeout.
  int slow = connect_to(port);
  std::string half = "POST /v1/greeter/hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na";
  ::send(slow, half.data(), half.size(), 0);
  auto start = std::chrono::steady_clock::now();
  // Meanwhile another client is served.
  auto [code, out] = run({"/usr/bin/curl", "-s", "-X", "POST", "-H", "Content-Type: application/json",
                              base + "/v1/greeter/hello", "-d", R"({"name":"b"})"});
  CHECK_THAT(out, Catch::Contains("Hello, b!"));
  auto rest = read_all(slow);  // the server closes the stalled connection
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(rest.empty());
  CHECK(took < 2500ms);
  ::close(slow);

  // Keep-alive: two requests on one connection.
  int kept = connect_to(port);
  std::string two = "POST /v1/greeter/hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"name\":\"1\"}"
                    "POST /v1/greeter/hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"name\":\"2\"}";
  ::send(kept, two.data(), two.size(), 0);
  auto both = read_all(kept);
  CHECK_THAT(both, Catch::Contains("Hello, 1!") && Catch::Contains("Hello, 2!"));
  ::close(kept);
}

TEST_CASE("wrk through the HTTP front: bounded run, every response 200", "[integration][http]") {
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\n[services.greeter]\n");
  auto base = http_endpoint(n);
  temp_dir dir;
  auto script = dir / "post.lua";
  std::ofstream(script) << "wrk.method = \"POST\"\nwrk.body = '{\"name\":\"wrk\"}'\n"
                          << "wrk.headers[\"Content-Type\"] = \"application/json\"\n";
  auto [code, out] = run({"/usr/bin/wrk", "-t1", "-c16", "-d1s", "-s", script, base + "/v1/greeter/hello"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains("Requests/sec"));
  CHECK_THAT(out, !Catch::Contains("Non-2xx"));
  CHECK_THAT(out, !Catch::Contains("Socket errors"));
}
