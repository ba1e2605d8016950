#include "cohort/observability/trace_context.hpp"

#include <cstdint>
#include <cstring>
#include <random>

namespace cohort::observability {

namespace {

bool lower_hex(std::string_view s) noexcept {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool all_zero(std::string_view s) noexcept { return s.find_first_not_of('0') == std::string_view::npos; }

int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/// Random words for ids, one generator per thread: ids are made on every
/// traced hop, on every thread, and must not contend.
std::uint64_t random_word() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

/// Each byte's two lowercase hex digits.
struct hex_pairs {
  char pairs[256][2];
  constexpr hex_pairs() : pairs() {
    constexpr char digits[] = "0123456789abcdef";
    for (int b = 0; b < 256; ++b) pairs[b][0] = digits[b >> 4], pairs[b][1] = digits[b & 0xf];
  }
};
constexpr hex_pairs hex{};

/// `word` as 16 lowercase hex digits at `out`, a byte at a time (ids are
/// written on every traced hop: half the steps of a digit at a time).
void write_hex(std::uint64_t word, char* out) {
  for (int i = 7; i >= 0; --i, word >>= 8) std::memcpy(out + 2 * i, hex.pairs[word & 0xff], 2);
}

}  // namespace

bool is_trace_id(std::string_view s) noexcept { return s.size() == 32 && lower_hex(s) && !all_zero(s); }
bool is_span_id(std::string_view s) noexcept { return s.size() == 16 && lower_hex(s) && !all_zero(s); }

std::optional<traceparent_view> parse_traceparent_view(std::string_view h) {
  if (h.size() < 55) return std::nullopt;
  auto version = h.substr(0, 2);
  if (!lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" && h.size() != 55) return std::nullopt;
  if (h.size() > 55 && h[55] != '-') return std::nullopt;  // a later version's extra fields follow a dash
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  auto trace = h.substr(3, 32), span = h.substr(36, 16), flags = h.substr(53, 2);
  if (!is_trace_id(trace) || !is_span_id(span) || !lower_hex(flags)) return std::nullopt;
  return traceparent_view{trace, span, (hex_value(flags[1]) & 1) != 0};
}

std::optional<trace_context> parse_traceparent(std::string_view h) {
  auto v = parse_traceparent_view(h);
  if (!v) return std::nullopt;
  return trace_context{std::string(v->trace_id), std::string(v->span_id), v->sampled};
}

void fill_span_id(char* out) {
  std::uint64_t word = 0;
  while (word == 0) word = random_word();  // all zero is not a valid id
  write_hex(word, out);
}

void write_traceparent(char* out, std::string_view trace_id, std::string_view span_id, bool sampled) noexcept {
  std::memcpy(out, "00-", 3);
  std::memmove(out + traceparent_trace_at, trace_id.data(), 32);  // memmove: it may be there already
  out[35] = '-';
  std::memmove(out + traceparent_span_at, span_id.data(), 16);
  std::memcpy(out + 52, sampled ? "-01" : "-00", 3);
}

std::string format_traceparent(const trace_context& ctx) {
  if (ctx.trace_id.size() == 32 && ctx.span_id.size() == 16) {
    std::string out(traceparent_size, '0');
    write_traceparent(&out[0], ctx.trace_id, ctx.span_id, ctx.sampled);
    return out;
  }
  // Ids of another length make no valid header; written as given all the same.
  return "00-" + ctx.trace_id + "-" + ctx.span_id + (ctx.sampled ? "-01" : "-00");
}

std::string sanitize_tracestate(std::string_view h) {
  if (h.size() > 512) return {};
  for (char c : h)
    if (c < 0x20 || c > 0x7e) return {};
  return std::string(h);
}

std::string new_trace_id() {
  std::uint64_t high = 0, low = 0;
  while ((high | low) == 0) high = random_word(), low = random_word();  // all zero is not a valid id
  std::string id(32, '0');
  write_hex(high, &id[0]);
  write_hex(low, &id[16]);
  return id;
}

std::string new_span_id() {
  std::string id(16, '0');
  fill_span_id(&id[0]);
  return id;
}

}  // namespace cohort::observability
