#include "cohort/storage/reminder_keys.hpp"

#include "cohort/storage/store.hpp"

namespace cohort {

std::string encode_reminder_due(std::uint64_t due_ms) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, due_ms >>= 8) out[static_cast<std::size_t>(i)] = static_cast<char>(due_ms & 0xff);
  return out;
}

std::uint64_t decode_reminder_due(std::string_view bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8 && i < bytes.size(); ++i) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

std::string reminder_schedule_key(std::uint64_t due_ms, std::string_view key, std::string_view name) {
  std::string out(reminder_schedule_prefix);
  out += encode_reminder_due(due_ms);
  out += entity_key(key);
  out += name;
  return out;
}

std::uint64_t reminder_schedule_due(std::string_view schedule_key) {
  return decode_reminder_due(schedule_key.substr(reminder_schedule_prefix.size()));
}

std::string reminder_index_prefix(std::string_view key) { return "i" + entity_key(key); }

std::string reminder_index_key(std::string_view key, std::string_view name) {
  auto out = reminder_index_prefix(key);
  out += name;
  return out;
}

}  // namespace cohort
