// trace_context: W3C Trace Context (https://www.w3.org/TR/trace-context/), the
// `traceparent` that travels in the envelope and the HTTP headers.
//   traceparent = 00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cohort::observability {

struct trace_context {
  std::string trace_id;  ///< 32 lowercase hex digits, not all zero
  std::string span_id;   ///< 16 lowercase hex digits, not all zero: the span the receiver's is a child of
  bool sampled = false;  ///< flag 01: the caller records this trace
};

/// Reads a traceparent header. Per the spec: version ff is invalid; version 00
/// is exactly 55 characters; a later version may append fields after a dash
/// (read as version 00). Ids must be lowercase hex and not all zero.
/// nullopt for anything else (the receiver then starts a new trace).
[[nodiscard]] std::optional<trace_context> parse_traceparent(std::string_view header);

/// parse_traceparent without copies: views into `header`, valid as long as it is.
struct traceparent_view {
  std::string_view trace_id, span_id;
  bool sampled = false;
};
[[nodiscard]] std::optional<traceparent_view> parse_traceparent_view(std::string_view header);
/// The views of a version-00 traceparent known to be valid (one this process
/// wrote with write_traceparent): nothing is checked.
[[nodiscard]] inline std::optional<traceparent_view> traceparent_view_unchecked(std::string_view header) noexcept {
  return traceparent_view{header.substr(3, 32), header.substr(36, 16), header[54] == '1'};
}

/// Writes a random, non-zero span id (16 lowercase hex digits) at `out`.
void fill_span_id(char* out);

/// A version-00 traceparent's length, and where its ids sit in it.
inline constexpr std::size_t traceparent_size = 55;
inline constexpr std::size_t traceparent_trace_at = 3, traceparent_span_at = 36;

/// Writes "00-<trace id>-<span id>-<01|00>" over the traceparent_size
/// characters at `out`: the one place the layout is written. The ids (32 and
/// 16 hex digits) may already sit where they go, so a header is rewritten in
/// place without a new string.
void write_traceparent(char* out, std::string_view trace_id, std::string_view span_id, bool sampled) noexcept;

/// "00-<trace>-<span>-<01|00>".
[[nodiscard]] std::string format_traceparent(const trace_context& ctx);

/// tracestate is passed on as given when it is at most 512 bytes of printable ASCII
/// (the spec's limit); otherwise it is dropped (empty).
[[nodiscard]] std::string sanitize_tracestate(std::string_view header);

[[nodiscard]] bool is_trace_id(std::string_view s) noexcept;
[[nodiscard]] bool is_span_id(std::string_view s) noexcept;
/// Random, non-zero ids.
[[nodiscard]] std::string new_trace_id();
[[nodiscard]] std::string new_span_id();

}  // namespace cohort::observability
