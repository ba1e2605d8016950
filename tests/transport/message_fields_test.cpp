// COHORT_FIELDS against msgpack-c's MSGPACK_DEFINE_MAP: the same bytes out,
// the same values in (unknown, missing, repeated and reordered keys, nested
// messages, renamed fields, bases), the same errors, and no allocation.
// Its own program: it counts operator new for the whole process.
#include <atomic>
#include <cstdlib>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "cohort/transport/message_fields.hpp"

namespace {
std::atomic<long> allocations{0};
}

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

struct inner_std {
  std::int64_t cents = 0;
  std::string currency;
  MSGPACK_DEFINE_MAP(cents, currency);
};
struct inner_fields {
  std::int64_t cents = 0;
  std::string currency;
  COHORT_FIELDS(cents, currency);
};

struct base_std {
  std::string id;
  MSGPACK_DEFINE_MAP(id);
};
struct base_fields {
  std::string id;
  COHORT_FIELDS(id);
};

// `base` names the base in both, so that MSGPACK_BASE_MAP writes the same key.
struct order_std : base_std {
  using base = base_std;
  std::string customer_with_a_long_name;
  std::uint32_t count = 7;
  std::vector<std::string> lines;
  std::map<std::string, std::int64_t> reserved;
  inner_std total;
  std::optional<std::string> note;
  bool renamed = false;
  MSGPACK_DEFINE_MAP(MSGPACK_BASE_MAP(base), customer_with_a_long_name, count, lines, reserved, total, note,
                     MSGPACK_NVP("was-renamed", renamed));
};
struct order_fields : base_fields {
  using base = base_fields;
  std::string customer_with_a_long_name;
  std::uint32_t count = 7;
  std::vector<std::string> lines;
  std::map<std::string, std::int64_t> reserved;
  inner_fields total;
  std::optional<std::string> note;
  bool renamed = false;
  COHORT_FIELDS(MSGPACK_BASE_MAP(base), customer_with_a_long_name, count, lines, reserved, total, note,
                MSGPACK_NVP("was-renamed", renamed));
};

struct flat_std {
  std::int64_t amount_in_cents_of_the_order = 0;
  std::uint32_t attempts_so_far_for_this_order = 0;
  bool captured = false;
  MSGPACK_DEFINE_MAP(amount_in_cents_of_the_order, attempts_so_far_for_this_order, captured);
};
struct flat_fields {
  std::int64_t amount_in_cents_of_the_order = 0;
  std::uint32_t attempts_so_far_for_this_order = 0;
  bool captured = false;
  COHORT_FIELDS(amount_in_cents_of_the_order, attempts_so_far_for_this_order, captured);
};

template <class T>
std::string packed(const T& v) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  return {buf.data(), buf.size()};
}

template <class T>
T decoded(const std::string& bytes) {
  auto h = msgpack::unpack(bytes.data(), bytes.size());
  return h.get().as<T>();
}

template <class A, class B>
void require_same(const A& a, const B& b) {
  REQUIRE(a.id == b.id);
  REQUIRE(a.customer_with_a_long_name == b.customer_with_a_long_name);
  REQUIRE(a.count == b.count);
  REQUIRE(a.lines == b.lines);
  REQUIRE(a.reserved == b.reserved);
  REQUIRE(a.total.cents == b.total.cents);
  REQUIRE(a.total.currency == b.total.currency);
  REQUIRE(a.note == b.note);
  REQUIRE(a.renamed == b.renamed);
}

/// A map written by hand: keys in any order, repeated, unknown or missing.
/// Each value is given packed (`packed(...)`, or `nil`).
std::string map_of(const std::vector<std::pair<std::string, std::string>>& entries) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(static_cast<std::uint32_t>(entries.size()));
  for (const auto& [k, v] : entries) {
    pk.pack(k);
    buf.write(v.data(), v.size());
  }
  return {buf.data(), buf.size()};
}

const std::string nil = packed(msgpack::type::nil_t());

}  // namespace

TEST_CASE("COHORT_FIELDS writes what MSGPACK_DEFINE_MAP writes", "[message_fields]") {
  order_std s;
  s.id = "o-1";
  s.customer_with_a_long_name = "customer-0000000000000001";
  s.count = 3;
  s.lines = {"a", "b"};
  s.reserved = {{"sku-1", 2}, {"sku-2", -5}};
  s.total = {1299, "EUR"};
  s.note = "leave at the door";
  s.renamed = true;
  order_fields f;
  f.id = s.id;
  f.customer_with_a_long_name = s.customer_with_a_long_name;
  f.count = s.count;
  f.lines = s.lines;
  f.reserved = s.reserved;
  f.total = {1299, "EUR"};
  f.note = s.note;
  f.renamed = true;
  REQUIRE(packed(f) == packed(s));
  require_same(decoded<order_fields>(packed(s)), s);
  require_same(decoded<order_std>(packed(f)), f);

  // msgpack::object with a zone (msgpack_object) as well.
  msgpack::zone z;
  msgpack::object of(f, z), os(s, z);
  REQUIRE(of == os);
}

TEST_CASE("COHORT_FIELDS reads unknown, missing, repeated and reordered keys as msgpack-c does",
          "[message_fields]") {
  const std::vector<std::string> inputs = {
      map_of({}),
      map_of({{"count", packed(9u)}, {"id", packed(std::string("x"))}}),
      map_of({{"unknown", packed(std::string("skipped"))}, {"count", packed(1u)}}),
      map_of({{"count", packed(1u)}, {"count", packed(2u)}}),  // the first wins
      map_of({{"was-renamed", packed(true)}, {"renamed", packed(false)}}),
      map_of({{"customer_with_a_long_name", packed(std::string("c"))},
              {"customer_with_a_long_nam", packed(std::string("prefix"))},
              {"customer_with_a_long_name_", packed(std::string("longer"))}}),
      map_of({{"note", nil}}),  // nil into an optional
      map_of({{"total", map_of({{"currency", packed(std::string("USD"))}, {"cents", packed(-1)}})}}),
  };
  for (const auto& bytes : inputs) {
    INFO("input of " << bytes.size() << " bytes");
    require_same(decoded<order_fields>(bytes), decoded<order_std>(bytes));
  }
  auto first = decoded<order_fields>(inputs[3]);
  REQUIRE(first.count == 1);
  REQUIRE(decoded<order_fields>(inputs[4]).renamed);
  REQUIRE(decoded<order_fields>(inputs[0]).count == 7);  // missing: left as it was
}

TEST_CASE("COHORT_FIELDS refuses what msgpack-c refuses", "[message_fields]") {
  auto throws_both = [](const std::string& bytes) {
    REQUIRE_THROWS_AS(decoded<order_std>(bytes), msgpack::type_error);
    REQUIRE_THROWS_AS(decoded<order_fields>(bytes), msgpack::type_error);
  };
  throws_both(packed(std::vector<int>{1, 2}));  // not a map
  throws_both(packed(std::string("text")));
  throws_both(packed(std::map<int, int>{{1, 2}}));  // a key that is not a string
  // A field of the wrong type.
  throws_both(map_of({{"count", packed(std::string("three"))}}));
  throws_both(map_of({{"total", packed(5u)}}));
}

TEST_CASE("COHORT_FIELDS decodes without allocating", "[message_fields]") {
  // A message whose fields are not heap-backed: what is allocated is the
  // decoder's own (msgpack-c's map allocates a node per key).
  auto bytes = packed(flat_std{-42, 3, true});
  auto handle = msgpack::unpack(bytes.data(), bytes.size());
  const auto& obj = handle.get();

  flat_fields f;
  auto before = allocations.load();
  obj.convert(f);
  REQUIRE(allocations.load() - before == 0);
  REQUIRE(f.amount_in_cents_of_the_order == -42);
  REQUIRE(f.attempts_so_far_for_this_order == 3);
  REQUIRE(f.captured);

  flat_std s;
  before = allocations.load();
  obj.convert(s);
  REQUIRE(allocations.load() - before >= 3);  // the baseline this replaces: a map node (and key) per field
}
