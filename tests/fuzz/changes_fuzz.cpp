// libFuzzer harness: the list of changes a new owner receives from an old
// owner at the end of a handoff (storage/changes_list.hpp). What decodes
// must encode and decode to the same puts and deletes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cohort/storage/changes_list.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto batch = cohort::decode_changes(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!batch) return 0;
  cohort::changes_writer w(batch->ops.size());
  for (const auto& op : batch->ops)
    op.value ? w.put(op.space, op.key, *op.value) : w.erase(op.space, op.key);
  auto again = cohort::decode_changes(std::move(w).finish());
  if (!again || again->ops.size() != batch->ops.size()) __builtin_trap();
  for (std::size_t i = 0; i < batch->ops.size(); ++i)
    if (again->ops[i].space != batch->ops[i].space || again->ops[i].key != batch->ops[i].key ||
        again->ops[i].value != batch->ops[i].value)
      __builtin_trap();
  return 0;
}
