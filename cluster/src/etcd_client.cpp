#include "cohort/cluster/etcd_client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

namespace cohort::cluster {

namespace {

using json = nlohmann::json;

// etcd's gateway takes keys and values as base64 and 64-bit numbers as strings.
std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> unbase64(const std::string& in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3 + 1, '\0');
  auto n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (!in.empty() && in.back() == '=') pad++;
  if (in.size() > 1 && in[in.size() - 2] == '=') pad++;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::int64_t number(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return 0;
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

/// The range end that selects every key starting with `prefix`.
std::string prefix_end(std::string p) {
  while (!p.empty()) {
    auto c = static_cast<unsigned char>(p.back());
    if (c < 0xff) {
      p.back() = static_cast<char>(c + 1);
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::size_t collect(char* data, std::size_t size, std::size_t n, void* out) {
  auto* s = static_cast<std::string*>(out);
  if (s->size() + size * n > (16u << 20)) return 0;  // bounded: an answer over 16 MiB is refused
  s->append(data, size * n);
  return size * n;
}

result<json> parse(const result<std::string>& text) {
  if (!text) return text.error();
  auto j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return error_info{errc::unavailable, "etcd answered something that is not JSON"};
  if (j.contains("error") || (j.contains("code") && !j.contains("header")))
    return error_info{errc::unavailable, "etcd refused the call: " + j.value("message", j.value("error", text.value()))};
  return j;
}

}  // namespace

etcd_client::etcd_client(std::vector<std::string> endpoints, std::chrono::milliseconds timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout) {
  static const bool initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)initialised;
  curl_ = curl_easy_init();
}

etcd_client::~etcd_client() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string etcd_client::endpoint() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return endpoints_.empty() ? std::string() : endpoints_[current_];
}

result<std::string> etcd_client::call(const std::string& path, const std::string& body) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (!curl_) return error_info{errc::internal, "cannot create an HTTP client for etcd"};
  auto* c = static_cast<CURL*>(curl_);
  std::string last_error = "no etcd endpoint configured";
  for (std::size_t tries = 0; tries < endpoints_.size(); ++tries) {
    const auto& ep = endpoints_[(current_ + tries) % endpoints_.size()];
    std::string url = ep + path, answer;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
    auto rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status >= 200 && status < 500) {
      current_ = (current_ + tries) % endpoints_.size();
      return answer;
    }
    last_error = ep + ": " + (rc != CURLE_OK ? std::string(curl_easy_strerror(rc)) : "HTTP " + std::to_string(status));
  }
  return error_info{errc::unavailable, "etcd is unreachable (" + last_error + ")"};
}

result<etcd_range> etcd_client::range_prefix(const std::string& prefix) {
  auto j = parse(call("/v3/kv/range", json{{"key", base64(prefix)}, {"range_end", base64(prefix_end(prefix))}}.dump()));
  if (!j) return j.error();
  etcd_range out;
  out.revision = number(j->value("header", json::object()), "revision");
  for (const auto& kv : j->value("kvs", json::array())) {
    auto k = unbase64(kv.value("key", ""));
    auto v = unbase64(kv.value("value", ""));
    if (!k || !v) return error_info{errc::unavailable, "etcd answered a key that is not base64"};
    out.kvs.push_back({std::move(*k), std::move(*v), number(kv, "create_revision"), number(kv, "mod_revision"),
                       number(kv, "lease")});
  }
  return out;
}

result<bool> etcd_client::put(const std::string& key, const std::string& value, std::int64_t lease) {
  json body{{"key", base64(key)}, {"value", base64(value)}};
  if (lease) body["lease"] = std::to_string(lease);
  auto j = parse(call("/v3/kv/put", body.dump()));
  if (!j) return j.error();
  return true;
}

result<bool> etcd_client::put_if(const std::string& key, const std::string& value, std::int64_t expected,
                                 std::int64_t lease) {
  json put{{"key", base64(key)}, {"value", base64(value)}};
  if (lease) put["lease"] = std::to_string(lease);
  json body{{"compare", json::array({{{"key", base64(key)},
                                      {"result", "EQUAL"},
                                      {"target", "MOD"},
                                      {"mod_revision", std::to_string(expected)}}})},
            {"success", json::array({{{"request_put", put}}})}};
  auto j = parse(call("/v3/kv/txn", body.dump()));
  if (!j) return j.error();
  return j->value("succeeded", false);
}

result<bool> etcd_client::erase(const std::string& key) {
  auto j = parse(call("/v3/kv/deleterange", json{{"key", base64(key)}}.dump()));
  if (!j) return j.error();
  return true;
}

result<std::int64_t> etcd_client::lease_grant(std::chrono::seconds ttl) {
  auto j = parse(call("/v3/lease/grant", json{{"TTL", std::to_string(ttl.count())}}.dump()));
  if (!j) return j.error();
  auto id = number(*j, "ID");
  if (!id) return error_info{errc::unavailable, "etcd granted no lease"};
  return id;
}

result<std::int64_t> etcd_client::lease_keepalive(std::int64_t id) {
  // A stream in gRPC; the gateway answers one renewal per call.
  auto j = parse(call("/v3/lease/keepalive", json{{"ID", std::to_string(id)}}.dump()));
  if (!j) return j.error();
  return number(j->value("result", json::object()), "TTL");
}

namespace {
struct watch_state {
  std::string buffer;
  const std::function<void(std::int64_t)>* changed;
  std::atomic<int>* fd;
  std::atomic<bool>* stopped;
  bool canceled = false;
};

std::size_t watch_chunk(char* data, std::size_t size, std::size_t n, void* user) {
  auto* w = static_cast<watch_state*>(user);
  w->buffer.append(data, size * n);
  if (w->buffer.size() > (16u << 20)) return 0;  // one line over 16 MiB: not etcd
  for (std::size_t nl; (nl = w->buffer.find('\n')) != std::string::npos;) {
    auto j = json::parse(w->buffer.substr(0, nl), nullptr, false);
    w->buffer.erase(0, nl + 1);
    if (!j.is_object()) continue;
    const auto& r = j.value("result", json::object());
    if (r.value("canceled", false) || j.contains("error")) w->canceled = true;
    if (r.contains("events")) (*w->changed)(number(r.value("header", json::object()), "revision"));
  }
  return w->canceled || w->stopped->load() ? 0 : size * n;
}

curl_socket_t watch_socket(void* user, curlsocktype, struct curl_sockaddr* a) {
  auto* w = static_cast<watch_state*>(user);
  auto fd = ::socket(a->family, a->socktype, a->protocol);
  w->fd->store(fd);
  if (w->stopped->load()) {  // stop_watching() ran before the socket existed
    ::close(fd);
    w->fd->store(-1);
    return CURL_SOCKET_BAD;
  }
  return fd;
}
}  // namespace

result<bool> etcd_client::watch_prefix(const std::string& prefix, std::int64_t start_revision,
                                       const std::function<void(std::int64_t)>& changed) {
  if (watching_stopped_) return false;
  auto* c = curl_easy_init();
  if (!c) return error_info{errc::internal, "cannot create an HTTP client for etcd"};
  const auto url = endpoint() + "/v3/watch";
  json create{{"key", base64(prefix)}, {"range_end", base64(prefix_end(prefix))}};
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  const auto body = json{{"create_request", create}}.dump();
  watch_state w{{}, &changed, &watch_fd_, &watching_stopped_};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_chunk);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, watch_socket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &w);
  // A silent stream (etcd paused, a partition) is noticed by TCP keepalive.
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 5L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 2L);
  auto rc = watching_stopped_ ? CURLE_ABORTED_BY_CALLBACK : curl_easy_perform(c);
  watch_fd_ = -1;
  curl_easy_cleanup(c);
  if (watching_stopped_) return false;
  if (w.canceled) return error_info{errc::unavailable, "etcd ended the watch (compacted, or refused)"};
  return error_info{errc::unavailable, std::string("the watch on etcd broke: ") + curl_easy_strerror(rc)};
}

void etcd_client::stop_watching() {
  watching_stopped_ = true;
  // The transfer is blocked in a read: ending the socket ends it now.
  if (auto fd = watch_fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

result<bool> etcd_client::lease_revoke(std::int64_t id) {
  auto j = parse(call("/v3/lease/revoke", json{{"ID", std::to_string(id)}}.dump()));
  if (!j) return j.error();
  return true;
}

}  // namespace cohort::cluster
