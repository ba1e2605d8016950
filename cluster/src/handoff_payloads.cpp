#include "handoff_payloads.hpp"

#include <algorithm>

#include <msgpack.hpp>

#include "cohort/transport/envelope_codec.hpp"

namespace cohort::cluster {

std::string pack_string(const std::string& s) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, s);
  return std::string(buf.data(), buf.size());
}

std::string pack_bin(const char* data, std::size_t n) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_bin(static_cast<std::uint32_t>(n));
  pk.pack_bin_body(data, static_cast<std::uint32_t>(n));
  return std::string(buf.data(), buf.size());
}

std::string pack_inline(const std::string& manifest, const std::vector<std::pair<std::string, std::string>>& files) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(2);
  pk.pack(std::string("manifest"));
  pk.pack(manifest);
  pk.pack(std::string("files"));
  pk.pack_map(static_cast<std::uint32_t>(files.size()));
  for (const auto& [name, body] : files) {
    pk.pack(name);
    pk.pack_bin(static_cast<std::uint32_t>(body.size()));
    pk.pack_bin_body(body.data(), static_cast<std::uint32_t>(body.size()));
  }
  return std::string(buf.data(), buf.size());
}

wire_limits handoff_limits(std::string_view payload) {
  wire_limits limits;
  limits.max_payload_bytes = std::max(limits.max_payload_bytes, payload.size());
  limits.max_string = limits.max_payload_bytes;
  return limits;
}

std::optional<manifest_answer> unpack_manifest(std::string_view payload) {
  auto oh = decode_payload_in_place(payload, handoff_limits(payload));  // copied out below
  if (!oh) return std::nullopt;
  const auto& o = oh->get();
  if (o.type == msgpack::type::STR) return manifest_answer{std::string(o.via.str.ptr, o.via.str.size), {}};
  if (o.type != msgpack::type::MAP) return std::nullopt;
  manifest_answer out;
  for (const auto& kv : o.via.map) {
    if (kv.key.type != msgpack::type::STR) return std::nullopt;
    const std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
    if (k == "manifest" && kv.val.type == msgpack::type::STR) out.text.assign(kv.val.via.str.ptr, kv.val.via.str.size);
    if (k == "files" && kv.val.type == msgpack::type::MAP)
      for (const auto& f : kv.val.via.map) {
        if (f.key.type != msgpack::type::STR || f.val.type != msgpack::type::BIN) return std::nullopt;
        out.files.emplace(std::string(f.key.via.str.ptr, f.key.via.str.size),
                          std::string(f.val.via.bin.ptr, f.val.via.bin.size));
      }
  }
  return out;
}

std::optional<std::string> unpack_bytes(std::string_view payload) {
  auto oh = decode_payload_in_place(payload, handoff_limits(payload));  // copied out below
  if (!oh) return std::nullopt;
  const auto& o = oh->get();
  if (o.type == msgpack::type::STR) return std::string(o.via.str.ptr, o.via.str.size);
  if (o.type == msgpack::type::BIN) return std::string(o.via.bin.ptr, o.via.bin.size);
  return std::nullopt;
}

}  // namespace cohort::cluster
