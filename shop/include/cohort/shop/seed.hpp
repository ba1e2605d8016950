// Seeding: the sample catalog and stock, through the services' own methods
// (catalog.seed, inventory.init), so seeding twice changes nothing.
#pragma once

#include "cohort/transport/client.hpp"
#include "cohort/transport/result.hpp"

namespace cohort::shop {

/// Seeds the sample products and their initial stock; the first error, if any.
[[nodiscard]] result<bool> seed_shop(client& c);

}  // namespace cohort::shop
