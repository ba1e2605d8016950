// changes_list: the records of some entities written since a handoff's
// pre-copy (store::export_changes), as they travel to the new owner: a
// msgpack array of [keyspace, key (bin), value (bin) or nil for a deletion].
// It comes from another node: decoding is bounded and checks every entry.
#pragma once

#include <string>
#include <string_view>

#include "cohort/storage/store.hpp"
#include "cohort/transport/result.hpp"

namespace cohort {

/// Appends one change to `out` (a list started with begin_changes).
class changes_writer {
 public:
  explicit changes_writer(std::size_t count);
  void put(keyspace space, std::string_view key, std::string_view value);
  void erase(keyspace space, std::string_view key);
  [[nodiscard]] std::string finish() &&;

 private:
  std::string out_;
};

/// The changes as one batch of puts and deletes; `bad_request` when the bytes
/// are not such a list, or name a keyspace or key that no entity owns.
[[nodiscard]] result<write_batch> decode_changes(std::string_view bytes);

}  // namespace cohort
