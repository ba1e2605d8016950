#include "cohort/transport/json_bridge.hpp"

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "cohort/transport/envelope_codec.hpp"

namespace cohort {

namespace {

using json = nlohmann::json;

/// A SAX pass that builds nothing and stops at the first limit crossed. It
/// runs before the document is built, so the recursive steps after it (the
/// DOM, its msgpack encoding) only ever see bounded input.
class limit_checker final : public nlohmann::json_sax<json> {
 public:
  explicit limit_checker(const wire_limits& limits) : limits_(limits) {}

  std::optional<error_info> failure;

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t& s) override { return check_string(s) && value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override { return value() && open(true); }
  bool key(string_t& k) override { return check_string(k) && count(); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return value() && open(false); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    failure = error_info{errc::bad_request, "not valid JSON at byte " + std::to_string(position) + ": " +
                                                 strip_prefix(e.what())};
    return false;
  }

 private:
  struct level {
    bool is_object;
    std::size_t entries;
  };

  // A value counts as an element of the array it is in; in an object the key counted already.
  bool value() { return open_.empty() || open_.back().is_object || count(); }
  bool count() {
    if (++open_.back().entries <= limits_.max_container) return true;
    return fail(errc::too_large, "a JSON array or object has more than " + std::to_string(limits_.max_container) +
                                     " entries");
  }
  bool open(bool is_object) {
    if (open_.size() >= limits_.max_depth)
      return fail(errc::bad_request, "JSON nests deeper than " + std::to_string(limits_.max_depth) + " levels");
    open_.push_back({is_object, 0});
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }
  bool check_string(const std::string& s) {
    if (s.size() <= limits_.max_string) return true;
    return fail(errc::too_large, "a JSON string of " + std::to_string(s.size()) + " bytes exceeds the limit of " +
                                     std::to_string(limits_.max_string));
  }
  bool fail(errc code, std::string message) {
    failure = error_info{code, std::move(message)};
    return false;
  }
  static std::string strip_prefix(const char* what) {
    std::string s(what);  // "[json.exception.parse_error.101] parse error at ...": keep the readable part
    auto at = s.find("] ");
    return at == std::string::npos ? s : s.substr(at + 2);
  }

  const wire_limits& limits_;
  std::vector<level> open_;
};

}  // namespace

result<std::string> json_to_msgpack(std::string_view json_text, const wire_limits& limits) {
  limit_checker checker(limits);
  if (!json::sax_parse(json_text.begin(), json_text.end(), &checker)) {
    if (checker.failure) return *checker.failure;
    return error_info{errc::bad_request, "not valid JSON"};
  }
  auto doc = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (doc.is_discarded()) return error_info{errc::bad_request, "not valid JSON"};
  auto bytes = json::to_msgpack(doc);
  return std::string(bytes.begin(), bytes.end());
}

result<std::string> msgpack_to_json(std::string_view msgpack_bytes, int indent, const wire_limits& limits) {
  // Bounded decode first: nlohmann's msgpack reader recurses once per level.
  if (auto bounded = decode_payload(msgpack_bytes, limits); !bounded) return bounded.error();
  auto doc = json::from_msgpack(msgpack_bytes.begin(), msgpack_bytes.end(), true, false);
  if (doc.is_discarded()) return error_info{errc::bad_request, "not valid msgpack"};
  return doc.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace cohort
