// COHORT_FIELDS: a message type's fields as a msgpack map, as MSGPACK_DEFINE_MAP
// writes them, read back without allocating.
//
// msgpack-c's MSGPACK_DEFINE_MAP decodes a map by first copying every key into
// a std::map<std::string, const object*> (a node per field, and a string per
// key longer than the short-string buffer), then looking each field up in it
// by a std::string made from its name: every decoded message pays that, on
// every hop. COHORT_FIELDS writes the same bytes (msgpack-c's own packing) and
// reads them by walking the map's entries for each field's name: nothing
// allocated, the same result. Unknown keys are skipped, a missing key leaves
// its field as it was, the first of two equal keys wins, and a value that is
// not a map or a key that is not a string throws msgpack::type_error, as
// msgpack-c does. A message with many fields and a map with many entries cost
// fields x entries comparisons; the wire limits bound the entries.
//
// Usage, as MSGPACK_DEFINE_MAP (MSGPACK_NVP and MSGPACK_BASE_MAP work too):
//   struct hello_args { std::string name; COHORT_FIELDS(name); };
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>
#include <tuple>
#include <utility>

#include <msgpack.hpp>

namespace cohort::detail {

/// The (name, field) pairs of a message, as MSGPACK_DEFINE_MAP_IMPL lists them.
template <class... Args>
class field_map {
  static_assert(sizeof...(Args) % 2 == 0, "COHORT_FIELDS lists (name, field) pairs");

 public:
  explicit field_map(Args&... args) : fields_(args...) {}

  void msgpack_unpack(const msgpack::object& o) const {
    if (o.type != msgpack::type::MAP) throw msgpack::type_error();
    const auto& map = o.via.map;
    for (std::uint32_t i = 0; i < map.size; ++i)
      if (map.ptr[i].key.type != msgpack::type::STR) throw msgpack::type_error();
    unpack_each(map, std::make_index_sequence<sizeof...(Args) / 2>{});
  }

 private:
  template <std::size_t... I>
  void unpack_each(const msgpack::object_map& map, std::index_sequence<I...>) const {
    (unpack_field(map, std::string_view(std::get<2 * I>(fields_)), std::get<2 * I + 1>(fields_)), ...);
  }

  template <class T>
  static void unpack_field(const msgpack::object_map& map, std::string_view name, T& field) {
    for (std::uint32_t i = 0; i < map.size; ++i) {
      const auto& key = map.ptr[i].key.via.str;
      if (key.size == name.size() && std::memcmp(key.ptr, name.data(), name.size()) == 0) {
        msgpack::v1::type::convert_helper(map.ptr[i].val, field);
        return;  // the first of equal keys, as msgpack-c's std::map keeps it
      }
    }
  }

  std::tuple<Args&...> fields_;
};

template <class... Args>
field_map<Args...> make_field_map(Args&... args) {
  return field_map<Args...>(args...);
}

}  // namespace cohort::detail

#define COHORT_FIELDS(...)                                                                         \
  template <typename Packer>                                                                       \
  void msgpack_pack(Packer& msgpack_pk) const {                                                    \
    msgpack::type::make_define_map MSGPACK_DEFINE_MAP_IMPL(__VA_ARGS__).msgpack_pack(msgpack_pk);  \
  }                                                                                                \
  void msgpack_unpack(msgpack::object const& msgpack_o) {                                          \
    cohort::detail::make_field_map MSGPACK_DEFINE_MAP_IMPL(__VA_ARGS__).msgpack_unpack(msgpack_o); \
  }                                                                                                \
  template <typename MSGPACK_OBJECT>                                                               \
  void msgpack_object(MSGPACK_OBJECT* msgpack_o, msgpack::zone& msgpack_z) const {                 \
    msgpack::type::make_define_map MSGPACK_DEFINE_MAP_IMPL(__VA_ARGS__)                            \
        .msgpack_object(msgpack_o, msgpack_z);                                                     \
  }
