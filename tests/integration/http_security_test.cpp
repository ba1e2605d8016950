// Security of the HTTP front, against a real node process with curl: TLS
// (and a certificate replaced while it runs), API tokens, JWTs (HS256, RS256,
// expired, bad signature, wrong audience, algorithm confusion), roles per
// route, rate limits, CORS, internal methods, and public addresses.
#include <catch2/catch.hpp>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <jwt.h>

#include "cohort/security/http_auth.hpp"
#include "eventually.hpp"
#include "node_process.hpp"

using namespace cohort;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A JWT signed with `alg` and `key` (libjwt); claims as JSON.
std::string make_jwt(jwt_alg_t alg, const std::string& key, const std::string& claims_json) {
  jwt_t* raw = nullptr;
  REQUIRE(jwt_new(&raw) == 0);
  std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, jwt_free);
  REQUIRE(jwt_add_grants_json(jwt.get(), claims_json.c_str()) == 0);
  REQUIRE(jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(key.data()), static_cast<int>(key.size())) == 0);
  char* text = jwt_encode_str(jwt.get());
  REQUIRE(text);
  std::string out(text);
  free(text);
  return out;
}

std::string claims(const std::string& sub, long exp_in_s, const std::string& aud = "cohort",
                   const std::string& roles = "[]") {
  return R"({"sub":")" + sub + R"(","iss":"https://auth.test","aud":")" + aud + R"(","exp":)" +
         std::to_string(std::time(nullptr) + exp_in_s) + R"(,"roles":)" + roles + "}";
}

/// curl's answer: body and, on the last line, the status code (000 when no HTTP answer came).
std::string curl(std::vector<std::string> extra) {
  std::vector<std::string> argv{"/usr/bin/curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H",
                                "Content-Type: application/json", "--max-time", "10"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run(argv).second;
}

std::string bearer(const std::string& token) { return "Authorization: Bearer " + token; }

/// A self-signed certificate for 127.0.0.1 (the CLI of Debian's openssl).
void make_certificate(const std::string& cert, const std::string& key, const std::string& cn) {
  auto [code, out] = run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                          cert, "-days", "1", "-subj", "/CN=" + cn, "-addext", "subjectAltName=IP:127.0.0.1"});
  REQUIRE(code == 0);
}

}  // namespace

TEST_CASE("HTTPS with the configured certificate, replaced while the node runs", "[integration][http][security]") {
  temp_dir dir;
  const auto cert = dir / "cert.pem", key = dir / "key.pem";
  make_certificate(cert, key, "first");
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"" + cert + "\"\ntls_key_file = \"" + key +
                 "\"\n[services.greeter]\n");
  auto base = http_endpoint(n);
  REQUIRE(base.rfind("https://", 0) == 0);
  const auto first_ca = dir / "first.pem";
  std::filesystem::copy_file(cert, first_ca);
  CHECK_THAT(curl({"--cacert", first_ca, base + "/health"}), Catch::EndsWith("200"));
  CHECK_THAT(curl({"--cacert", first_ca, "-X", "POST", base + "/v1/greeter/hello", "-d", R"({"name":"tls"})"}),
             Catch::Contains("Hello, tls!") && Catch::EndsWith("200"));
  // An unknown certificate is refused by the client; plain HTTP gets no answer.
  CHECK_THAT(curl({base + "/health"}), Catch::EndsWith("000"));
  auto plain = base;
  plain.replace(0, 5, "http");
  CHECK_THAT(curl({plain + "/health"}), Catch::EndsWith("000"));

  // A new certificate: written beside, moved in (as certbot does); no restart.
  make_certificate(dir / "cert2.pem", dir / "key2.pem", "second");
  std::filesystem::rename(dir / "key2.pem", key);
  std::filesystem::rename(dir / "cert2.pem", cert);
  CHECK(eventually([&] { return Catch::EndsWith("200").match(curl({"--cacert", cert, base + "/health"})); }, 5s, 100ms));
  CHECK_THAT(curl({"--cacert", first_ca, base + "/health"}), Catch::EndsWith("000"));
}

TEST_CASE("bearer tokens and JWTs: the caller is who the token says, routes need what they say",
          "[integration][http][security]") {
  temp_dir dir;
  const std::string api_token = "tok-3f9a1c0e7d2b4a6f8e1d3c5b7a9f0e2d";
  const std::string secret = "a shared HS256 secret of more than thirty-two bytes";
  std::ofstream(dir / "hs.key") << secret;
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\n"
                 "[[http.token]]\nname = \"shop-web\"\nsha256 = \"" + security::sha256_hex(api_token) + "\"\nroles = [\"counter-writer\"]\n"
                 "[http.jwt]\nalgorithm = \"HS256\"\nkey_file = \"" + (dir / "hs.key") + "\"\nissuer = \"https://auth.test\"\naudience = \"cohort\"\n"
                 "[[http.route]]\npath = \"/v1/counter/*\"\naccess = \"role:counter-writer\"\n"
                 "[services.greeter]\n[services.counter]\n");
  auto base = http_endpoint(n);
  const auto whoami = base + "/v1/greeter/whoami";

  CHECK_THAT(curl({base + "/health"}), Catch::EndsWith("200"));  // health stays open
  auto none = curl({"-X", "POST", whoami, "-d", "null"});
  CHECK_THAT(none, Catch::Contains("unauthenticated") && Catch::EndsWith("401"));
  auto headers = run({"/usr/bin/curl", "-s", "-i", "-X", "POST", "-H", "Content-Type: application/json", whoami, "-d", "null"});
  CHECK_THAT(headers.second, Catch::Contains("WWW-Authenticate: Bearer"));
  CHECK_THAT(curl({"-H", bearer("wrong"), "-X", "POST", whoami, "-d", "null"}), Catch::EndsWith("401"));
  CHECK_THAT(curl({"-H", bearer(api_token), "-X", "POST", whoami, "-d", "null"}),
             Catch::Contains("shop-web") && Catch::EndsWith("200"));

  auto good = make_jwt(JWT_ALG_HS256, secret, claims("user-17", 300));
  CHECK_THAT(curl({"-H", bearer(good), "-X", "POST", whoami, "-d", "null"}), Catch::Contains("user-17") && Catch::EndsWith("200"));
  auto expired = make_jwt(JWT_ALG_HS256, secret, claims("user-17", -3600));
  CHECK_THAT(curl({"-H", bearer(expired), "-X", "POST", whoami, "-d", "null"}), Catch::Contains("expired") && Catch::EndsWith("401"));
  auto forged = make_jwt(JWT_ALG_HS256, "some other secret that is long enough to sign", claims("admin", 300));
  CHECK_THAT(curl({"-H", bearer(forged), "-X", "POST", whoami, "-d", "null"}), Catch::Contains("signature") && Catch::EndsWith("401"));
  auto elsewhere = make_jwt(JWT_ALG_HS256, secret, claims("user-17", 300, "another-api"));
  CHECK_THAT(curl({"-H", bearer(elsewhere), "-X", "POST", whoami, "-d", "null"}), Catch::Contains("audience") && Catch::EndsWith("401"));

  // Roles per route: the JWT's user has none, the API token has counter-writer.
  CHECK_THAT(curl({"-H", bearer(good), "-H", "X-Cohort-Key: c", "-X", "POST", base + "/v1/counter/add", "-d", R"({"n":1})"}),
             Catch::Contains("forbidden") && Catch::EndsWith("403"));
  auto writer = make_jwt(JWT_ALG_HS256, secret, claims("user-18", 300, "cohort", R"(["counter-writer"])"));
  CHECK_THAT(curl({"-H", bearer(writer), "-H", "X-Cohort-Key: c", "-X", "POST", base + "/v1/counter/add", "-d", R"({"n":1})"}),
             Catch::EndsWith("200"));
  CHECK_THAT(curl({"-H", bearer(api_token), "-H", "X-Cohort-Key: c", "-X", "POST", base + "/v1/counter/add", "-d", R"({"n":1})"}),
             Catch::Contains("\"value\":2") && Catch::EndsWith("200"));
  // Internal methods are never reachable over HTTP, whoever asks.
  CHECK_THAT(curl({"-H", bearer(api_token), "-X", "POST", base + "/v1/greeter/crash", "-d", R"({"message":"x"})"}),
             Catch::Contains("internal") && Catch::EndsWith("403"));
}

TEST_CASE("RS256 JWTs: the issuer's public key verifies, and an HS256 token keyed with it is refused",
          "[integration][http][security]") {
  temp_dir dir;
  REQUIRE(run({"/usr/bin/openssl", "genrsa", "-out", dir / "rs.pem", "2048"}).first == 0);
  REQUIRE(run({"/usr/bin/openssl", "rsa", "-in", dir / "rs.pem", "-pubout", "-out", dir / "rs.pub.pem"}).first == 0);
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\n[http.jwt]\nalgorithm = \"RS256\"\nkey_file = \"" + (dir / "rs.pub.pem") +
                 "\"\naudience = \"cohort\"\n[services.greeter]\n");
  auto base = http_endpoint(n);
  const auto whoami = base + "/v1/greeter/whoami";
  auto good = make_jwt(JWT_ALG_RS256, slurp(dir / "rs.pem"), claims("svc-a", 300));
  CHECK_THAT(curl({"-H", bearer(good), "-X", "POST", whoami, "-d", "null"}), Catch::Contains("svc-a") && Catch::EndsWith("200"));
  // The classic confusion: HMAC with the (public) key as its secret.
  auto confused = make_jwt(JWT_ALG_HS256, slurp(dir / "rs.pub.pem"), claims("admin", 300));
  CHECK_THAT(curl({"-H", bearer(confused), "-X", "POST", whoami, "-d", "null"}), Catch::EndsWith("401"));
}

TEST_CASE("per-caller rate limits answer 429 with Retry-After; CORS answers allowed origins only",
          "[integration][http][security]") {
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\nrate_per_s = 1\nrate_burst = 3\n"
                 "cors_origins = [\"https://shop.example\"]\n[services.greeter]\n");
  auto base = http_endpoint(n);
  const auto hello = base + "/v1/greeter/hello";
  int ok = 0, limited = 0;
  std::string last;
  for (int i = 0; i < 6; ++i) {
    auto r = run({"/usr/bin/curl", "-s", "-i", "-X", "POST", "-H", "Content-Type: application/json", hello, "-d", R"({"name":"x"})"}).second;
    if (r.find(" 200 ") != std::string::npos) ok++;
    if (r.find(" 429 ") != std::string::npos) {
      limited++;
      last = r;
    }
  }
  CHECK(ok >= 3);
  CHECK(ok <= 4);  // the burst, and at most one token refilled meanwhile
  CHECK(limited >= 2);
  CHECK_THAT(last, Catch::Contains("Retry-After: 1") && Catch::Contains("rate_limited"));

  auto pre = run({"/usr/bin/curl", "-s", "-i", "-X", "OPTIONS", "-H", "Origin: https://shop.example", "-H",
                  "Access-Control-Request-Method: POST", hello}).second;
  CHECK_THAT(pre, Catch::Contains(" 204 ") && Catch::Contains("Access-Control-Allow-Origin: https://shop.example") &&
                      Catch::Contains("Authorization"));
  auto other = run({"/usr/bin/curl", "-s", "-i", "-X", "OPTIONS", "-H", "Origin: https://evil.example", hello}).second;
  CHECK_THAT(other, Catch::Contains(" 403 "));
  CHECK_THAT(other, !Catch::Contains("Access-Control-Allow-Origin"));
}

TEST_CASE("an HTTP front on a public address needs TLS and callers that authenticate", "[integration][http][security]") {
  temp_dir dir;
  auto cfg = dir / "n.toml";
  std::ofstream(cfg) << "[node]\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"tcp://127.0.0.1:*\"\ndata_dir = \"" << (dir / "d")
                     << "\"\n[http]\nlisten = \"0.0.0.0:0\"\n[services.greeter]\n";
  child_process p({COHORT_BINARY, "run", "--config", cfg});
  auto code = p.wait(20s);
  REQUIRE(code);
  CHECK(*code != 0);
  CHECK_THAT(p.err() + p.out(), Catch::Contains("refusing") && Catch::Contains("0.0.0.0"));
}
