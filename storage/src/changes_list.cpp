#include "cohort/storage/changes_list.hpp"

#include <msgpack.hpp>

#include "cohort/storage/entity_owner.hpp"

namespace cohort {

namespace {
struct string_buffer {
  std::string* out;
  void write(const char* data, std::size_t n) { out->append(data, n); }
};

void pack_bin(msgpack::packer<string_buffer>& pk, std::string_view bytes) {
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
}
}  // namespace

changes_writer::changes_writer(std::size_t count) {
  string_buffer b{&out_};
  msgpack::packer<string_buffer> pk(b);
  pk.pack_array(static_cast<std::uint32_t>(count));
}

void changes_writer::put(keyspace space, std::string_view key, std::string_view value) {
  string_buffer b{&out_};
  msgpack::packer<string_buffer> pk(b);
  pk.pack_array(3);
  pk.pack(static_cast<std::uint32_t>(space));
  pack_bin(pk, key);
  pack_bin(pk, value);
}

void changes_writer::erase(keyspace space, std::string_view key) {
  string_buffer b{&out_};
  msgpack::packer<string_buffer> pk(b);
  pk.pack_array(3);
  pk.pack(static_cast<std::uint32_t>(space));
  pack_bin(pk, key);
  pk.pack_nil();
}

std::string changes_writer::finish() && { return std::move(out_); }

result<write_batch> decode_changes(std::string_view bytes) {
  const error_info bad{errc::bad_request, "not a list of changes"};
  write_batch batch;
  try {
    // One list of triples at most 2^22 long, keys and values up to 64 MiB.
    std::size_t off = 0;
    auto handle = msgpack::unpack(bytes.data(), bytes.size(), off, nullptr, nullptr,
                                  msgpack::unpack_limit(1u << 22, 0, 64u << 20, 64u << 20, 0, 3));
    const auto& list = handle.get();
    if (list.type != msgpack::type::ARRAY || off != bytes.size()) return bad;
    for (std::uint32_t n = 0; n < list.via.array.size; ++n) {
      const auto& op = list.via.array.ptr[n];
      if (op.type != msgpack::type::ARRAY || op.via.array.size != 3) return bad;
      const auto& space = op.via.array.ptr[0];
      const auto& key = op.via.array.ptr[1];
      const auto& value = op.via.array.ptr[2];
      if (space.type != msgpack::type::POSITIVE_INTEGER || space.via.u64 >= keyspace_count ||
          !is_entity_keyspace(static_cast<keyspace>(space.via.u64)) || key.type != msgpack::type::BIN ||
          (value.type != msgpack::type::BIN && value.type != msgpack::type::NIL))
        return bad;
      const auto s = static_cast<keyspace>(space.via.u64);
      std::string k(key.via.bin.ptr, key.via.bin.size);
      if (!owning_entity(s, k)) return error_info{errc::bad_request, "a change names a key no entity owns"};
      if (value.type == msgpack::type::NIL)
        batch.erase(s, std::move(k));
      else
        batch.put(s, std::move(k), std::string(value.via.bin.ptr, value.via.bin.size));
    }
  } catch (const std::exception&) {
    return bad;
  }
  return batch;
}

}  // namespace cohort
