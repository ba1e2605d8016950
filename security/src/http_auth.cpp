#include "cohort/security/http_auth.hpp"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <iterator>

#include <boost/algorithm/hex.hpp>

namespace cohort::security {

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  boost::algorithm::hex_lower(digest, digest + len, std::back_inserter(out));
  return out;
}

result<std::unique_ptr<http_authenticator>> http_authenticator::make(const http_security_config& cfg) {
  std::unique_ptr<http_authenticator> a(new http_authenticator(cfg));
  for (const auto& t : cfg.tokens)
    if (t.sha256.size() != 64 || t.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
      return error_info{errc::bad_request, "http.token '" + t.name + "': 'sha256' must be 64 lower-case hex digits "
                                           "(sha256sum of the token)"};
  if (!cfg.jwt.algorithm.empty()) {
    if (cfg.jwt.algorithm != "HS256" && cfg.jwt.algorithm != "RS256")
      return error_info{errc::bad_request, "http.jwt.algorithm must be \"HS256\" or \"RS256\""};
    std::ifstream in(cfg.jwt.key_file, std::ios::binary);
    if (!in) return error_info{errc::bad_request, "http.jwt.key_file: cannot read '" + cfg.jwt.key_file + "'"};
    std::stringstream ss;
    ss << in.rdbuf();
    a->jwt_key_ = ss.str();
    if (cfg.jwt.algorithm == "HS256" && a->jwt_key_.size() < 32)
      return error_info{errc::bad_request, "http.jwt.key_file: an HS256 secret needs at least 32 bytes"};
  }
  for (const auto& r : cfg.routes)
    if (r.access != "public" && r.access != "token" && r.access.rfind("role:", 0) != 0)
      return error_info{errc::bad_request, "http.route '" + r.path + "': access must be public, token or role:NAME"};
  return a;
}

http_authenticator::~http_authenticator() = default;

const std::string& http_authenticator::access_of(std::string_view path) const {
  for (const auto& r : cfg_.routes) {
    const bool prefix = !r.path.empty() && r.path.back() == '*';
    if (prefix ? path.substr(0, r.path.size() - 1) == std::string_view(r.path).substr(0, r.path.size() - 1)
               : path == r.path)
      return r.access;
  }
  if (path == "/health" || path.rfind("/health/", 0) == 0) return public_;
  return cfg_.enabled() ? token_ : public_;
}

result<http_identity> http_authenticator::authenticate(std::string_view authorization) const {
  constexpr std::string_view bearer = "Bearer ";
  if (authorization.empty())
    return error_info{errc::unauthenticated, "this route needs a bearer token (Authorization: Bearer ...)"};
  if (authorization.size() <= bearer.size() || authorization.substr(0, bearer.size()) != bearer)
    return error_info{errc::unauthenticated, "the Authorization header must be 'Bearer <token>'"};
  std::string token(authorization.substr(bearer.size()));
  if (token.size() > 8192) return error_info{errc::unauthenticated, "the token is longer than 8192 bytes"};
  // API tokens first, compared by hash in constant time.
  const auto hashed = sha256_hex(token);
  for (const auto& t : cfg_.tokens)
    if (CRYPTO_memcmp(t.sha256.data(), hashed.data(), hashed.size()) == 0) return http_identity{t.name, t.roles};
  if (!cfg_.jwt.algorithm.empty() && std::count(token.begin(), token.end(), '.') == 2) return check_jwt(token);
  return error_info{errc::unauthenticated, "the token is not one this gateway accepts"};
}

result<http_identity> http_authenticator::check_jwt(const std::string& token) const {
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(jwt_key_.data()),
                            static_cast<int>(jwt_key_.size()));
  std::unique_ptr<jwt_t, void (*)(jwt_t*)> jwt(raw, jwt_free);
  if (rc != 0 || !jwt) return error_info{errc::unauthenticated, "the JWT's signature does not verify"};
  // The algorithm is ours to choose, never the token's: an HS256 token signed
  // with an RS256 public key as its secret must not pass.
  if (std::string(jwt_alg_str(jwt_get_alg(jwt.get()))) != cfg_.jwt.algorithm)
    return error_info{errc::unauthenticated, std::string("the JWT is signed with ") + jwt_alg_str(jwt_get_alg(jwt.get())) +
                                                 ", this gateway accepts " + cfg_.jwt.algorithm};
  const long now = static_cast<long>(std::time(nullptr));
  const long leeway = static_cast<long>(cfg_.jwt.leeway.count());
  errno = 0;
  const long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno == ENOENT) return error_info{errc::unauthenticated, "the JWT has no expiry ('exp')"};
  if (exp + leeway < now) return error_info{errc::unauthenticated, "the JWT expired " + std::to_string(now - exp) + " s ago"};
  errno = 0;
  const long nbf = jwt_get_grant_int(jwt.get(), "nbf");
  if (errno != ENOENT && nbf - leeway > now) return error_info{errc::unauthenticated, "the JWT is not valid yet ('nbf')"};
  if (!cfg_.jwt.issuer.empty()) {
    const char* iss = jwt_get_grant(jwt.get(), "iss");
    if (!iss || cfg_.jwt.issuer != iss)
      return error_info{errc::unauthenticated, "the JWT's issuer is not " + cfg_.jwt.issuer};
  }
  // "aud" and the roles claim may be a string or an array of strings.
  auto strings_of = [&](const char* claim) {
    std::vector<std::string> out;
    char* text = jwt_get_grants_json(jwt.get(), claim);
    if (!text) return out;
    auto j = nlohmann::json::parse(text, nullptr, false);
    free(text);
    if (j.is_string()) out.push_back(j.get<std::string>());
    if (j.is_array())
      for (const auto& e : j)
        if (e.is_string()) out.push_back(e.get<std::string>());
    return out;
  };
  if (!cfg_.jwt.audience.empty()) {
    auto aud = strings_of("aud");
    if (std::find(aud.begin(), aud.end(), cfg_.jwt.audience) == aud.end())
      return error_info{errc::unauthenticated, "the JWT is not meant for audience " + cfg_.jwt.audience};
  }
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (!sub || !*sub) return error_info{errc::unauthenticated, "the JWT has no subject ('sub')"};
  return http_identity{sub, strings_of(cfg_.jwt.roles_claim.c_str())};
}

std::optional<error_info> http_authenticator::authorize(const std::optional<http_identity>& who,
                                                        const std::string& access) const {
  if (access == "public") return std::nullopt;
  if (!who) return error_info{errc::unauthenticated, "this route needs a bearer token"};
  if (access == "token") return std::nullopt;
  const auto role = access.substr(5);
  if (std::find(who->roles.begin(), who->roles.end(), role) != who->roles.end()) return std::nullopt;
  return error_info{errc::forbidden, "'" + who->name + "' lacks the role '" + role + "' this route needs"};
}

}  // namespace cohort::security
