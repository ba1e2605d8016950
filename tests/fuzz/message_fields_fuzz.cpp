// libFuzzer harness: a payload from outside read into a typed message, as a
// handler's arguments and reply::as read it, once with COHORT_FIELDS and once
// with msgpack-c's MSGPACK_DEFINE_MAP (same fields). Differential: both must
// refuse the same inputs and give the same values for the rest.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/message_fields.hpp"

namespace {

struct money_std {
  std::int64_t cents = 0;
  std::string currency;
  MSGPACK_DEFINE_MAP(cents, currency);
};
struct money_fields {
  std::int64_t cents = 0;
  std::string currency;
  COHORT_FIELDS(cents, currency);
};

struct line_std {
  std::string sku;
  std::uint32_t quantity = 0;
  std::vector<std::string> tags;
  std::map<std::string, std::int64_t> reserved;
  money_std price;
  std::optional<std::string> note;
  bool gift = false;
  double weight = 0;
  MSGPACK_DEFINE_MAP(sku, quantity, tags, reserved, price, note, MSGPACK_NVP("is-gift", gift), weight);
};
struct line_fields {
  std::string sku;
  std::uint32_t quantity = 0;
  std::vector<std::string> tags;
  std::map<std::string, std::int64_t> reserved;
  money_fields price;
  std::optional<std::string> note;
  bool gift = false;
  double weight = 0;
  COHORT_FIELDS(sku, quantity, tags, reserved, price, note, MSGPACK_NVP("is-gift", gift), weight);
};

template <class T>
std::optional<T> read(const msgpack::object& o) {
  try {
    return o.as<T>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool same_double(double a, double b) { return a == b || (a != a && b != b); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cohort::wire_limits limits;
  auto payload = cohort::decode_payload(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!payload) return 0;
  auto a = read<line_std>(payload->get());
  auto b = read<line_fields>(payload->get());
  if (a.has_value() != b.has_value()) __builtin_trap();
  if (!a) return 0;
  if (a->sku != b->sku || a->quantity != b->quantity || a->tags != b->tags || a->reserved != b->reserved ||
      a->price.cents != b->price.cents || a->price.currency != b->price.currency || a->note != b->note ||
      a->gift != b->gift || !same_double(a->weight, b->weight))
    __builtin_trap();
  return 0;
}
