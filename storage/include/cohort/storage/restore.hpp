// restore: putting a backup (a checkpoint directory) in the place of a store,
// atomically. Nothing may have the store open meanwhile.
#pragma once

#include <string>

#include "cohort/transport/result.hpp"

namespace cohort {

/// Copies `backup_dir` beside `store_dir` (as `<store_dir>.restoring`), syncs
/// it, swaps the two with one renameat2(RENAME_EXCHANGE) and deletes the old
/// store. A crash before the swap leaves the old store, after it the new one;
/// clean_interrupted_restore() removes what is left either way. Errors:
/// `bad_request` (no backup there), `storage_unavailable` (copy or swap failed:
/// the old store is untouched).
[[nodiscard]] result<bool> restore_store(const std::string& backup_dir, const std::string& store_dir);

/// A backup name is one plain path component (no '/', not '.' or '..', at
/// most 200 bytes), so no name can point outside the backup root: `bad_request` otherwise.
[[nodiscard]] result<bool> check_backup_name(const std::string& name);

/// True when a process holds the store open (RocksDB's lock on its LOCK file).
[[nodiscard]] bool store_in_use(const std::string& store_dir);

/// Removes the other half of a restore that was interrupted; the store in place wins.
void clean_interrupted_restore(const std::string& store_dir);

}  // namespace cohort
