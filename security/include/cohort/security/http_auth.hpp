// http_auth: who an HTTP caller is (API tokens stored hashed, JWTs checked
// with libjwt) and which routes need whom. The HTTP front asks it once per
// request; the identity becomes the request's caller.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cohort/transport/result.hpp"

namespace cohort::security {

/// An API token ([[http.token]]): the token itself is never stored, only its SHA-256.
struct api_token {
  std::string name;    ///< the caller identity
  std::string sha256;  ///< lower-case hex of SHA-256(token)
  std::vector<std::string> roles;
};

/// JWT validation ([http.jwt]).
struct jwt_config {
  std::string algorithm;  ///< "HS256" or "RS256"; empty = no JWTs
  std::string key_file;   ///< HS256: the shared secret; RS256: the issuer's public key (PEM)
  std::string issuer;     ///< required "iss" (empty: not checked)
  std::string audience;   ///< required in "aud" (empty: not checked)
  std::string roles_claim = "roles";
  std::chrono::seconds leeway{30};
};

/// Who may use a route ([[http.route]]): first matching path wins.
struct route_rule {
  std::string path;    ///< exact, or a prefix ending in '*'
  std::string access;  ///< "public", "token" (any authenticated caller) or "role:NAME"
};

struct http_security_config {
  std::vector<api_token> tokens;
  jwt_config jwt;
  std::vector<route_rule> routes;
  /// Requests per second per caller (its identity, or its address when
  /// anonymous); 0 turns it off. Default: 0.
  double rate_per_s = 0;
  /// Bucket size: a burst allowed above the rate; 0 = 2 x rate. Default: 0.
  double rate_burst = 0;
  /// Origins allowed to call from a browser (CORS); "*" = any. Default: none.
  std::vector<std::string> cors_origins;

  /// True when callers can authenticate at all (tokens or JWTs).
  [[nodiscard]] bool enabled() const noexcept { return !tokens.empty() || !jwt.algorithm.empty(); }
};

/// An authenticated HTTP caller.
struct http_identity {
  std::string name;
  std::vector<std::string> roles;
};

/// Lower-case hex SHA-256 (OpenSSL EVP), for storing tokens hashed.
[[nodiscard]] std::string sha256_hex(std::string_view data);

class http_authenticator {
 public:
  /// Reads the JWT key file; fails on an unknown algorithm or a missing key.
  [[nodiscard]] static result<std::unique_ptr<http_authenticator>> make(const http_security_config& cfg);
  ~http_authenticator();

  /// The access rule of `path`: the first matching route's, else "public"
  /// for /health (and below), else "token" when callers can authenticate,
  /// else "public" (a loopback front without tokens: development).
  [[nodiscard]] const std::string& access_of(std::string_view path) const;

  /// The caller of an `Authorization` header value ("Bearer ..."): an API
  /// token or a JWT; `unauthenticated` with the reason otherwise.
  [[nodiscard]] result<http_identity> authenticate(std::string_view authorization) const;

  /// Whether `who` may use a route of `access`; `forbidden` otherwise.
  [[nodiscard]] std::optional<error_info> authorize(const std::optional<http_identity>& who, const std::string& access) const;

 private:
  explicit http_authenticator(http_security_config cfg) : cfg_(std::move(cfg)) {}
  result<http_identity> check_jwt(const std::string& token) const;

  http_security_config cfg_;
  std::string jwt_key_;
  std::string public_ = "public", token_ = "token";
};

}  // namespace cohort::security
