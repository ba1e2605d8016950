#include "cohort/transport/envelope_codec.hpp"

#include <chrono>
#include <cstring>
#include <vector>

#include <boost/locale/utf.hpp>

namespace cohort {

std::string_view to_string(message_kind kind) noexcept {
  switch (kind) {
    case message_kind::request: return "request";
    case message_kind::reply: return "reply";
    case message_kind::error: return "error";
    case message_kind::oneway: return "oneway";
    case message_kind::event: return "event";
  }
  return "request";
}

namespace {

bool kind_from_string(std::string_view s, message_kind& out) {
  for (auto k : {message_kind::request, message_kind::reply, message_kind::error,
                 message_kind::oneway, message_kind::event})
    if (to_string(k) == s) {
      out = k;
      return true;
    }
  return false;
}

msgpack::unpack_limit to_unpack_limit(const wire_limits& l) {
  return msgpack::unpack_limit(l.max_container, l.max_container, l.max_string, l.max_string,
                               l.max_string, l.max_depth);
}

std::string_view as_view(const msgpack::object& o) { return {o.via.str.ptr, o.via.str.size}; }

error_info field_error(std::string_view field, std::string_view expected) {
  return {errc::bad_request,
          "header field '" + std::string(field) + "' must be " + std::string(expected)};
}

}  // namespace

bool is_valid_utf8(std::string_view s) noexcept {
  using traits = boost::locale::utf::utf_traits<char>;
  auto it = s.begin();
  while (it != s.end()) {
    // ASCII runs, 8 bytes at a time (most text, and every large payload the
    // bench sends): only a byte with its high bit set needs the decoder.
    while (s.end() - it >= 8) {
      std::uint64_t word;
      std::memcpy(&word, &*it, sizeof word);
      if (word & 0x8080808080808080ull) break;
      it += 8;
    }
    if (it == s.end()) break;
    if (static_cast<unsigned char>(*it) < 0x80) {
      ++it;
      continue;
    }
    auto c = traits::decode(it, s.end());  // rejects overlong forms, surrogates and values past U+10FFFF
    if (c == boost::locale::utf::illegal || c == boost::locale::utf::incomplete) return false;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  using traits = boost::locale::utf::utf_traits<char>;
  std::string out;
  auto it = s.begin();
  while (it != s.end()) {
    auto start = it;
    auto c = traits::decode(it, s.end());
    if (c == boost::locale::utf::illegal || c == boost::locale::utf::incomplete) {
      out += "\xef\xbf\xbd";  // U+FFFD for the first byte; go on from the next
      it = start + 1;
    } else {
      out.append(start, it);
    }
  }
  return out;
}

namespace {

/// The first string (or map key) in `root` that is not UTF-8, if any. Walks
/// with an explicit stack: the value's depth was bounded by the unpacker.
bool all_strings_utf8(const msgpack::object& root) {
  if (root.type == msgpack::type::STR) return is_valid_utf8({root.via.str.ptr, root.via.str.size});
  if (root.type != msgpack::type::ARRAY && root.type != msgpack::type::MAP) return true;
  // The walk's stack is kept per thread: every payload of every call is
  // walked, and a fresh vector cost two allocations each time. A stack that
  // grew for a very large payload is given back.
  thread_local std::vector<const msgpack::object*> todo;
  struct give_back_large {
    ~give_back_large() {
      todo.clear();
      if (todo.capacity() > 4096) todo.shrink_to_fit();
    }
  } at_exit;
  todo.push_back(&root);
  while (!todo.empty()) {
    const auto* o = todo.back();
    todo.pop_back();
    switch (o->type) {
      case msgpack::type::STR:
        if (!is_valid_utf8({o->via.str.ptr, o->via.str.size})) return false;
        break;
      case msgpack::type::ARRAY:
        for (std::uint32_t i = 0; i < o->via.array.size; ++i) todo.push_back(&o->via.array.ptr[i]);
        break;
      case msgpack::type::MAP:
        for (std::uint32_t i = 0; i < o->via.map.size; ++i) {
          todo.push_back(&o->via.map.ptr[i].key);
          todo.push_back(&o->via.map.ptr[i].val);
        }
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace

std::uint64_t wall_clock_ms() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t transit_ms(const envelope& env, std::uint64_t now_ms, std::uint64_t max_skew_ms) noexcept {
  if (env.sent_ms == 0 || now_ms <= env.sent_ms) return 0;
  auto elapsed = now_ms - env.sent_ms;
  return elapsed > max_skew_ms ? elapsed - max_skew_ms : 0;
}

std::string encode_envelope(const envelope& env) {
  string_buffer buf;
  msgpack::packer<string_buffer> pk(buf);
  const bool addressed = !env.service.empty();
  std::uint32_t n = 3 + (addressed ? 2 : 0) + (env.deadline_ms ? 1 : 0) + (env.sent_ms ? 1 : 0) + (!env.trace.empty()) +
                    (!env.traceparent.empty()) + (!env.tracestate.empty()) + (!env.key.empty()) + (!env.idempotency_key.empty()) + (!env.caller.empty()) + (env.seq ? 1 : 0) +
                    (env.shard != envelope::no_shard ? 1 : 0) + (env.epoch ? 1 : 0);
  pk.pack_map(n);
  pk.pack(std::string_view("v")), pk.pack(env.version);
  pk.pack(std::string_view("kind")), pk.pack(to_string(env.kind));
  pk.pack(std::string_view("id")), pk.pack(env.id);
  if (addressed) {
    pk.pack(std::string_view("service")), pk.pack(env.service);
    pk.pack(std::string_view("method")), pk.pack(env.method);
  }
  if (env.deadline_ms) pk.pack(std::string_view("deadline_ms")), pk.pack(env.deadline_ms);
  if (env.sent_ms) pk.pack(std::string_view("sent_ms")), pk.pack(env.sent_ms);
  if (!env.trace.empty()) pk.pack(std::string_view("trace")), pk.pack(env.trace);
  if (!env.traceparent.empty()) pk.pack(std::string_view("traceparent")), pk.pack(env.traceparent);
  if (!env.tracestate.empty()) pk.pack(std::string_view("tracestate")), pk.pack(env.tracestate);
  if (!env.key.empty()) pk.pack(std::string_view("key")), pk.pack(env.key);
  if (!env.idempotency_key.empty()) pk.pack(std::string_view("idem")), pk.pack(env.idempotency_key);
  if (!env.caller.empty()) pk.pack(std::string_view("caller")), pk.pack(env.caller);
  if (env.seq) pk.pack(std::string_view("seq")), pk.pack(env.seq);
  if (env.shard != envelope::no_shard) pk.pack(std::string_view("shard")), pk.pack(env.shard);
  if (env.epoch) pk.pack(std::string_view("epoch")), pk.pack(env.epoch);
  return buf.take();
}

namespace {

bool reference_every_string(msgpack::type::object_type, std::size_t, void*) { return true; }

/// The zone's first (and usually only) block, sized to the value instead of
/// msgpack's 8 KiB default: the objects of a small message take a few
/// hundred bytes, and a block past glibc's per-thread cache is slower to get
/// and give back. A value that needs more gets more blocks, as always.
std::size_t zone_chunk_for(std::size_t bytes, bool strings_copied) {
  constexpr std::size_t smallest = 256, largest = MSGPACK_ZONE_CHUNK_SIZE;
  const std::size_t estimate = 64 + bytes * (strings_copied ? 3 : 2);
  return estimate < smallest ? smallest : estimate > largest ? largest : estimate;
}

/// One msgpack value within the limits, no trailing bytes; strings unchecked;
/// its objects made in `zone`. `in_place`: strings, bins and exts point into
/// `bytes` instead of being copied.
result<msgpack::object> unpack_into(msgpack::zone& zone, std::string_view bytes, const wire_limits& limits,
                                    bool in_place) {
  if (bytes.size() > limits.max_payload_bytes)
    return error_info{errc::too_large, "payload of " + std::to_string(bytes.size()) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(limits.max_payload_bytes)};
  if (bytes.empty()) return error_info{errc::bad_request, "empty payload frame (send nil instead)"};
  try {
    std::size_t off = 0;
    bool referenced = false;
    auto value = msgpack::unpack(zone, bytes.data(), bytes.size(), off, referenced,
                                 in_place ? &reference_every_string : nullptr, nullptr, to_unpack_limit(limits));
    if (off != bytes.size())
      return error_info{errc::bad_request, "payload has trailing bytes after one msgpack value"};
    return value;
  } catch (const msgpack::depth_size_overflow&) {
    return error_info{errc::bad_request, "payload nests deeper than " +
                                             std::to_string(limits.max_depth) + " levels"};
  } catch (const msgpack::size_overflow& e) {
    return error_info{errc::too_large, std::string("payload exceeds a size limit: ") + e.what()};
  } catch (const std::exception& e) {
    return error_info{errc::bad_request, std::string("payload is not valid msgpack: ") + e.what()};
  }
}

/// unpack_into a zone of its own, which the handle keeps.
result<msgpack::object_handle> unpack_bounded(std::string_view bytes, const wire_limits& limits,
                                              bool in_place = false) {
  auto zone = std::make_unique<msgpack::zone>(zone_chunk_for(bytes.size(), !in_place));
  auto value = unpack_into(*zone, bytes, limits, in_place);
  if (!value) return value.error();
  return msgpack::object_handle(*value, std::move(zone));
}

/// A payload within the limits whose strings are all UTF-8: msgpack strings
/// are text (bytes travel as bin), the same rule as JSON on the HTTP front.
error_info not_utf8() {
  return {errc::bad_request, "payload holds a string that is not valid UTF-8 (send bytes as bin)"};
}

result<msgpack::object_handle> decode_checked(std::string_view bytes, const wire_limits& limits, bool in_place) {
  auto handle = unpack_bounded(bytes, limits, in_place);
  if (handle && !all_strings_utf8(handle->get())) return not_utf8();
  return handle;
}

}  // namespace

result<msgpack::object_handle> decode_payload(std::string_view bytes, const wire_limits& limits) {
  return decode_checked(bytes, limits, false);
}

result<msgpack::object_handle> decode_payload_in_place(std::string_view bytes, const wire_limits& limits) {
  return decode_checked(bytes, limits, true);
}

result<msgpack::object> decode_payload_in_place(std::string_view bytes, const wire_limits& limits,
                                                msgpack::zone& zone) {
  auto decoded = unpack_into(zone, bytes, limits, true);
  if (decoded && !all_strings_utf8(*decoded)) return not_utf8();
  return decoded;
}

std::size_t payload_zone_block(std::size_t bytes) noexcept { return zone_chunk_for(bytes, false); }

result<msgpack::object> decode_payload_scratch(std::string_view bytes, const wire_limits& limits) {
  // One zone per thread, emptied at the start of each use (so a conversion
  // that throws leaves nothing behind for long); it keeps its first block.
  thread_local msgpack::zone scratch(1024);
  scratch.clear();
  return decode_payload_in_place(bytes, limits, scratch);
}

result<envelope> decode_envelope(std::string_view bytes, const wire_limits& limits,
                                 std::uint64_t* partial_id) {
  if (bytes.size() > limits.max_header_bytes)
    return error_info{errc::too_large, "header frame exceeds " +
                                           std::to_string(limits.max_header_bytes) + " bytes"};
  // Strings in place (they are copied into the envelope below); checked
  // field by field, after the id. The objects go into a zone this thread
  // keeps for headers (emptied at each use): every message has a header, and
  // a zone of its own cost two allocations each time.
  thread_local msgpack::zone header_zone(1024);
  header_zone.clear();
  auto value = unpack_into(header_zone, bytes, limits, true);
  if (!value) {
    return error_info{value.error().code, "header: " + value.error().message};
  }
  const msgpack::object& obj = *value;
  if (obj.type != msgpack::type::MAP) return error_info{errc::bad_request, "header is not a msgpack map"};

  envelope env;
  bool has_v = false, has_kind = false, has_id = false;
  const auto& map = obj.via.map;
  // The id first: once we know it, every later rejection can be answered.
  for (std::uint32_t i = 0; i < map.size; ++i) {
    const auto& k = map.ptr[i].key;
    const auto& v = map.ptr[i].val;
    if (k.type == msgpack::type::STR && as_view(k) == "id") {
      if (v.type != msgpack::type::POSITIVE_INTEGER) return field_error("id", "a non-negative integer");
      env.id = v.via.u64;
      has_id = true;
      if (partial_id) *partial_id = env.id;
    }
  }
  for (std::uint32_t i = 0; i < map.size; ++i) {
    const auto& k = map.ptr[i].key;
    const auto& v = map.ptr[i].val;
    if (k.type != msgpack::type::STR || !is_valid_utf8(as_view(k)))
      return error_info{errc::bad_request, "header keys must be UTF-8 strings"};
    auto name = as_view(k);
    auto want_str = [&](std::string& out) -> bool {
      if (v.type != msgpack::type::STR || !is_valid_utf8({v.via.str.ptr, v.via.str.size})) return false;
      out.assign(v.via.str.ptr, v.via.str.size);
      return true;
    };
    if (name == "v") {
      if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 > 0xffffffffu)
        return field_error("v", "a non-negative integer");
      env.version = static_cast<std::uint32_t>(v.via.u64);
      has_v = true;
    } else if (name == "kind") {
      std::string s;
      if (!want_str(s) || !kind_from_string(s, env.kind))
        return field_error("kind", "one of request, reply, error, oneway, event");
      has_kind = true;
    } else if (name == "id") {
      // read above
    } else if (name == "service") {
      if (!want_str(env.service)) return field_error("service", "a UTF-8 string");
    } else if (name == "method") {
      if (!want_str(env.method)) return field_error("method", "a UTF-8 string");
    } else if (name == "deadline_ms") {
      if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 > 0xffffffffu)
        return field_error("deadline_ms", "a non-negative integer below 2^32");
      env.deadline_ms = static_cast<std::uint32_t>(v.via.u64);
    } else if (name == "sent_ms") {
      if (v.type != msgpack::type::POSITIVE_INTEGER) return field_error("sent_ms", "a non-negative integer");
      env.sent_ms = v.via.u64;
    } else if (name == "trace") {
      if (!want_str(env.trace) || env.trace.size() > 128) return field_error("trace", "a string of at most 128 bytes");
    } else if (name == "traceparent") {
      // Its syntax is checked where it is used: an invalid one starts a new trace (W3C), it is not an error.
      if (!want_str(env.traceparent) || env.traceparent.size() > 128)
        return field_error("traceparent", "a string of at most 128 bytes");
    } else if (name == "tracestate") {
      if (!want_str(env.tracestate) || env.tracestate.size() > 512)
        return field_error("tracestate", "a string of at most 512 bytes");
    } else if (name == "key") {
      if (!want_str(env.key) || env.key.size() > 1024) return field_error("key", "a string of at most 1024 bytes");
    } else if (name == "idem") {
      if (!want_str(env.idempotency_key) || env.idempotency_key.size() > 256)
        return field_error("idem", "a string of at most 256 bytes");
    } else if (name == "caller") {
      if (!want_str(env.caller) || env.caller.size() > 256) return field_error("caller", "a string of at most 256 bytes");
    } else if (name == "seq") {
      if (v.type != msgpack::type::POSITIVE_INTEGER) return field_error("seq", "a non-negative integer");
      env.seq = v.via.u64;
    } else if (name == "shard") {
      if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 >= envelope::no_shard)
        return field_error("shard", "a non-negative integer below 2^32 - 1");
      env.shard = static_cast<std::uint32_t>(v.via.u64);
    } else if (name == "epoch") {
      if (v.type != msgpack::type::POSITIVE_INTEGER) return field_error("epoch", "a non-negative integer");
      env.epoch = v.via.u64;
    }
    // Unknown keys are ignored: newer peers may add optional fields.
  }
  if (!has_v) return error_info{errc::bad_request, "header lacks the protocol version 'v'"};
  if (env.version != protocol_version)
    return error_info{errc::unsupported_version,
                      "protocol version " + std::to_string(env.version) + " is not supported; this node speaks " +
                          std::to_string(protocol_version)};
  if (!has_kind) return error_info{errc::bad_request, "header lacks 'kind'"};
  if (!has_id) return error_info{errc::bad_request, "header lacks the correlation id 'id'"};
  if ((env.kind == message_kind::request || env.kind == message_kind::oneway) &&
      (env.service.empty() || env.method.empty()))
    return error_info{errc::bad_request, "a request needs non-empty 'service' and 'method'"};
  return env;
}

std::string encode_error_payload(const error_info& err) {
  string_buffer buf;
  msgpack::packer<string_buffer> pk(buf);
  pk.pack_map(err.owner ? 3 : 2);
  pk.pack(std::string_view("code")), pk.pack(to_valid_utf8(err.code));
  pk.pack(std::string_view("message")), pk.pack(to_valid_utf8(err.message));
  if (const auto& o = err.owner) {
    pk.pack(std::string_view("owner"));
    pk.pack_map(6);
    pk.pack(std::string_view("node")), pk.pack(to_valid_utf8(o->node));
    pk.pack(std::string_view("endpoint")), pk.pack(to_valid_utf8(o->endpoint));
    pk.pack(std::string_view("server_key")), pk.pack(to_valid_utf8(o->server_key));
    pk.pack(std::string_view("shard")), pk.pack(o->shard);
    pk.pack(std::string_view("shards")), pk.pack(o->shards);
    pk.pack(std::string_view("epoch")), pk.pack(o->epoch);
  }
  return buf.take();
}

namespace {
/// The `owner` map of a `wrong_shard` error: every field checked, strings bounded.
result<shard_owner> decode_shard_owner(const msgpack::object& m) {
  constexpr std::size_t max_field = 1024;
  shard_owner o;
  for (std::uint32_t i = 0; i < m.via.map.size; ++i) {
    const auto& k = m.via.map.ptr[i].key;
    const auto& v = m.via.map.ptr[i].val;
    if (k.type != msgpack::type::STR) continue;
    const auto name = as_view(k);
    if (name == "node" || name == "endpoint" || name == "server_key") {
      if (v.type != msgpack::type::STR || v.via.str.size > max_field)
        return error_info{errc::bad_request, "error payload: owner." + std::string(name) + " is not a short string"};
      auto& field = name == "node" ? o.node : name == "endpoint" ? o.endpoint : o.server_key;
      field.assign(v.via.str.ptr, v.via.str.size);
    } else if (name == "shard" || name == "shards" || name == "epoch") {
      if (v.type != msgpack::type::POSITIVE_INTEGER || (name != "epoch" && v.via.u64 > 0xffffffffu))
        return error_info{errc::bad_request, "error payload: owner." + std::string(name) + " is not an unsigned int"};
      if (name == "shard") o.shard = static_cast<std::uint32_t>(v.via.u64);
      if (name == "shards") o.shards = static_cast<std::uint32_t>(v.via.u64);
      if (name == "epoch") o.epoch = v.via.u64;
    }
  }
  if (o.shards != 0 && o.shard >= o.shards) return error_info{errc::bad_request, "error payload: owner.shard >= owner.shards"};
  return o;
}
}  // namespace

error_info decode_error_payload(std::string_view bytes, const wire_limits& limits) {
  auto handle = decode_payload(bytes, limits);
  if (!handle) return handle.error();
  const auto& obj = handle->get();
  error_info out;
  if (obj.type != msgpack::type::MAP) return {errc::bad_request, "error payload is not a map"};
  for (std::uint32_t i = 0; i < obj.via.map.size; ++i) {
    const auto& k = obj.via.map.ptr[i].key;
    const auto& v = obj.via.map.ptr[i].val;
    if (k.type != msgpack::type::STR) continue;
    if (v.type == msgpack::type::MAP && as_view(k) == "owner") {
      auto owner = decode_shard_owner(v);
      if (!owner) return owner.error();
      out.owner = std::make_shared<const shard_owner>(std::move(*owner));
      continue;
    }
    if (v.type != msgpack::type::STR) continue;
    if (as_view(k) == "code") out.code.assign(v.via.str.ptr, v.via.str.size);
    if (as_view(k) == "message") out.message.assign(v.via.str.ptr, v.via.str.size);
  }
  if (out.code.empty()) return {errc::bad_request, "error payload lacks 'code'"};
  if (out.owner && (!out.is(errc::wrong_shard) || out.owner->endpoint.empty())) out.owner.reset();
  return out;
}

}  // namespace cohort
